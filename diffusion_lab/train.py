"""Train a diffusion model: `python -m diffusion_lab.train [group=option ...] [key=value ...]`.

Composes the config, then instantiates data, module, callbacks, loggers and trainer, and fits.
"""

from pathlib import Path

import hydra
import lightning.pytorch as pl
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from diffusion_lab.cli import to_plain, user_errors
from diffusion_lab.lightning import DiffusionModule


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
    )


def instantiate_each(group: DictConfig | None) -> list:
    """Instantiates every entry of a group such as `callbacks` or `logger`, skipping nulls."""
    return [instantiate(node) for node in (group or {}).values() if node is not None]


def train(cfg: DictConfig) -> dict[str, float]:
    """Fits the configured model and returns the final logged metrics."""
    if cfg.seed is not None:
        pl.seed_everything(cfg.seed, workers=True)
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, output_dir / "config.yaml", resolve=True)

    datamodule = instantiate(cfg.data)
    module = build_module(cfg)
    trainer = instantiate(
        cfg.trainer,
        callbacks=instantiate_each(cfg.callbacks),
        logger=instantiate_each(cfg.logger) or False,
        default_root_dir=str(output_dir),
    )
    trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.ckpt_path)
    return {name: float(value) for name, value in trainer.callback_metrics.items()}


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> None:
    with user_errors():
        train(cfg)


if __name__ == "__main__":
    main()
