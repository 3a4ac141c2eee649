"""Train a diffusion model: `python -m diffusion_lab.train [group=option ...] [key=value ...]`.

Composes the config, then instantiates module, data, callbacks, loggers and trainer, and fits.
"""

import os
import signal
from pathlib import Path

import hydra
import lightning.pytorch as pl
import yaml
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from diffusion_lab.checkpoints import resolve_checkpoint
from diffusion_lab.cli import to_plain, user_errors
from diffusion_lab.errors import ConfigError
from diffusion_lab.lightning import DiffusionModule
from diffusion_lab.sampling import validate_sampler_config


def build_module(cfg: DictConfig) -> DiffusionModule:
    """The LightningModule from the model, schedule, loss and optimizer groups."""
    diffusion = {
        "schedule": cfg.schedule.name,
        "num_timesteps": cfg.schedule.num_timesteps,
        "model_mean_type": cfg.loss.model_mean_type,
        "model_var_type": cfg.loss.model_var_type,
        "loss_type": cfg.loss.loss_type,
    }
    return DiffusionModule(
        net=to_plain(cfg.model),
        diffusion=diffusion,
        optimizer=to_plain(cfg.optimizer),
        warmup_steps=cfg.warmup_steps,
        timestep_sampler=cfg.loss.timestep_sampler,
        cond_drop_prob=cfg.cond_drop_prob,
        max_nonfinite_steps=cfg.max_nonfinite_steps,
    )


def instantiate_each(group: DictConfig | None) -> list:
    """Instantiates every entry of a group such as `callbacks` or `logger`, skipping nulls."""
    return [instantiate(node) for node in (group or {}).values() if node is not None]


def train(cfg: DictConfig) -> dict[str, float]:
    """Fits the configured model and returns the final logged metrics."""
    if cfg.seed is not None:
        pl.seed_everything(cfg.seed, workers=True)
    module = build_module(cfg)  # validates model, schedule and loss before any data is read
    validate_sampler_config(to_plain(cfg.sampler), cfg.schedule.num_timesteps)
    output_dir = Path(cfg.paths.output_dir)
    if int(os.environ.get("LOCAL_RANK", 0)) == 0:
        output_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(cfg, output_dir / "config.yaml", resolve=True)

    datamodule = instantiate(cfg.data)
    trainer = instantiate(
        cfg.trainer,
        callbacks=instantiate_each(cfg.callbacks),
        logger=instantiate_each(cfg.logger) or False,
        default_root_dir=str(output_dir),
    )
    trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.ckpt_path)
    return {name: float(value) for name, value in trainer.callback_metrics.items()}


def resume_config(cfg: DictConfig) -> DictConfig:
    """The config of run dir `cfg.resume`, set to continue from its `checkpoints/last.ckpt`.

    Dotted overrides given with `resume=` (e.g. `trainer.max_steps=...`) still apply.
    """
    run_dir = Path(cfg.resume).expanduser().resolve()
    saved = run_dir / "config.yaml"
    if not saved.is_file():
        raise ConfigError(
            f"resume={run_dir}: no config.yaml there; pass the run dir of a training job"
        )
    resumed = OmegaConf.load(saved)
    resumed.ckpt_path = str(resolve_checkpoint(run_dir))
    resumed.paths.output_dir = str(run_dir)
    resumed.resume = None
    for override in HydraConfig.get().overrides.task:
        key, _, value = override.partition("=")
        if "." in key and not key.startswith(("hydra.", "paths.")):
            OmegaConf.update(resumed, key, yaml.safe_load(value))
    return resumed


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> None:
    if "SLURM_JOB_ID" not in os.environ:  # a scheduler's early warning stops the run cleanly
        signal.signal(signal.SIGUSR1, lambda *_: os.kill(os.getpid(), signal.SIGTERM))
    with user_errors():
        train(resume_config(cfg) if cfg.resume else cfg)


if __name__ == "__main__":
    main()
