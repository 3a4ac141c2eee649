"""Train a diffusion model: `python -m diffusion_lab.train [group=option ...] [key=value ...]`.

Composes the config, then instantiates module, data, callbacks, loggers and trainer, and fits.
"""

import contextlib
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import hydra
import lightning.pytorch as pl
import torch.distributed as dist
import yaml
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import instantiate
from lightning.fabric.utilities.seed import reset_seed
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf

from diffusion_lab.checkpoints import load_checkpoint, resolve_checkpoint
from diffusion_lab.cli import to_plain, user_errors
from diffusion_lab.errors import ConfigError
from diffusion_lab.lightning import DiffusionModule
from diffusion_lab.sampling import validate_sampler_config

RUN_DIR_ENV = "DIFFUSION_LAB_RUN_DIR"  # set by rank 0 for the DDP processes Lightning starts
RANK_ENV = ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID")
POSITIVE = (
    "trainer.max_steps",
    "max_nonfinite_steps",
    "callbacks.last_checkpoint.every_n_train_steps",
)


def is_rank_zero() -> bool:
    """Whether this process is rank 0 of the job, before any process group exists."""
    return all(os.environ.get(key, "0") == "0" for key in RANK_ENV)


def check_steps(cfg: DictConfig) -> None:
    """Step counts must be positive integers (the model, schedule and sampler check the rest)."""
    for key in POSITIVE:
        value = OmegaConf.select(cfg, key)
        bad = isinstance(value, bool) or not isinstance(value, int) or value < 1
        if value is not None and bad:
            raise ConfigError(f"{key}={value!r} must be an integer >= 1")


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


class LogConfig(pl.Callback):
    """Sends the whole resolved run config to the loggers (W&B's run config, CSV's hparams.yaml);
    at fit start, in the training processes, where loggers write on rank 0 only."""

    def __init__(self, config: dict):
        self.config = config

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        for logger in trainer.loggers:
            logger.log_hyperparams(self.config)


def wandb_group(cfg: DictConfig) -> str:
    """`<task_name>/<sweep dir name>` for the jobs of a Hydra multirun, else `<task_name>`."""
    if HydraConfig.initialized() and HydraConfig.get().mode == RunMode.MULTIRUN:
        return f"{cfg.task_name}/{Path(HydraConfig.get().sweep.dir).name}"
    return cfg.task_name


def requeued_checkpoint(output_dir: Path) -> str | None:
    """A requeued SLURM job's own `last.ckpt` (Lightning resumes its `hpc_ckpt_*` by itself)."""
    last = output_dir / "checkpoints" / "last.ckpt"
    requeued = int(os.environ.get("SLURM_RESTART_COUNT", 0)) > 0
    if requeued and last.is_file() and not any(output_dir.glob("hpc_ckpt_*.ckpt")):
        return str(last)
    return None


@contextlib.contextmanager
def own_environment() -> Iterator[None]:
    """Undoes what a run adds to `os.environ` (Lightning's DDP launcher sets ranks and ports
    there, which would make the next job of a multirun wait for processes it never starts)."""
    saved = dict(os.environ)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)
        if dist.is_initialized():
            dist.destroy_process_group()


def finish_wandb_run(loggers: list) -> None:
    """Closes this process's W&B run, which Lightning leaves open (and `ddp_spawn` opens in the
    launching process): the next job of an in-process multirun would otherwise log into it."""
    if any(isinstance(logger, WandbLogger) for logger in loggers):
        import wandb

        wandb.finish()


def train(cfg: DictConfig) -> dict[str, float]:
    """Fits the configured model and returns the final logged metrics."""
    with own_environment():
        return fit(cfg)


def fit(cfg: DictConfig) -> dict[str, float]:
    """`train` without the environment bookkeeping."""
    if cfg.seed is not None:
        pl.seed_everything(cfg.seed, workers=True)
    check_steps(cfg)
    module = build_module(cfg)  # validates model, schedule and loss before any data is read
    validate_sampler_config(to_plain(cfg.sampler), cfg.schedule.num_timesteps)
    output_dir = Path(cfg.paths.output_dir)
    ckpt_path = cfg.ckpt_path or requeued_checkpoint(output_dir)
    if ckpt_path is not None:
        load_checkpoint(ckpt_path, mmap=True)  # a clear error for a bad file, before any data
    if cfg.logger and cfg.logger.get("wandb") and cfg.logger.wandb.group is None:
        cfg.logger.wandb.group = wandb_group(cfg)
    if is_rank_zero():
        output_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(cfg, output_dir / "config.yaml", resolve=True)

    datamodule = instantiate(cfg.data)
    trainer = instantiate(
        cfg.trainer,
        callbacks=[*instantiate_each(cfg.callbacks), LogConfig(to_plain(cfg))],
        logger=instantiate_each(cfg.logger) or False,
        default_root_dir=str(output_dir),
    )
    os.environ[RUN_DIR_ENV] = str(output_dir)
    reset_seed()  # as DDP does in each process: any process count starts from the same RNG state
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
    except SIGTERMException as exc:  # preemption: Lightning wrote last.ckpt, but exits with 0
        raise SystemExit(
            f"stopped by SIGTERM at step {trainer.global_step}; continue with resume={output_dir}"
        ) from exc
    finally:
        finish_wandb_run(trainer.loggers)
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


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg: DictConfig) -> None:
    if "SLURM_JOB_ID" not in os.environ:  # a scheduler's early warning stops the run cleanly
        signal.signal(signal.SIGUSR1, lambda *_: os.kill(os.getpid(), signal.SIGTERM))
    with user_errors():
        train(resume_config(cfg) if cfg.resume else cfg)


def run() -> None:
    """The command. Lightning's DDP launcher re-runs it for ranks > 0: those skip Hydra (which
    would make a run dir per rank, or replay a whole multirun) and train with rank 0's saved
    config, in rank 0's run dir (Lightning #11300, lightning-hydra-template #393)."""
    run_dir = os.environ.get(RUN_DIR_ENV)
    if run_dir and not is_rank_zero():
        with user_errors():
            train(OmegaConf.load(Path(run_dir) / "config.yaml"))
        return
    main()


if __name__ == "__main__":
    run()
