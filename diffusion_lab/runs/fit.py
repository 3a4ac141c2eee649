"""Fitting a LightningModule as a run: its dir and config, loggers, stop signals, requeue, summary.

Shared by `train` and `train_classifier`: rank 0 writes `config.yaml`; every process trains; a
stop signal ends every process after the same step with `last.ckpt` written (`LastCheckpoint`),
then the job requeues itself under SLURM or says how to resume, and exits with 128 + signal.
"""

import contextlib
import logging
import os
import secrets
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import lightning.pytorch as pl
import torch
import torch.distributed as dist
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from hydra.utils import instantiate
from lightning.fabric.utilities.seed import reset_seed
from lightning.pytorch.loggers import WandbLogger
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf
from torch.utils.flop_counter import FlopCounterMode

from diffusion_lab.callbacks import LastCheckpoint
from diffusion_lab.checkpoints import AtomicCheckpointIO, load_checkpoint
from diffusion_lab.cli import to_plain
from diffusion_lab.errors import ConfigError
from diffusion_lab.runs import slurm
from diffusion_lab.runs.signals import signal_name, stop_signals

log = logging.getLogger(__name__)

RUN_DIR_ENV = "DIFFUSION_LAB_RUN_DIR"  # set by rank 0 for the DDP processes Lightning starts
RANK_ENV = ("RANK", "LOCAL_RANK", "NODE_RANK", "SLURM_PROCID")


def is_rank_zero() -> bool:
    """Whether this process is rank 0 of the job, before any process group exists."""
    return all(os.environ.get(key, "0") == "0" for key in RANK_ENV)


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


def name_wandb_run(cfg: DictConfig) -> None:
    """Fixes the W&B run's group and id in the config, so a resumed run logs into the same run."""
    run = cfg.logger.get("wandb") if cfg.get("logger") else None
    if run is None:
        return
    if run.get("group") is None:
        run.group = wandb_group(cfg)
    if run.get("id") is None:
        run.id = secrets.token_hex(4)
    # the processes ddp_spawn starts attach to the run; their media goes to WANDB_DIR, else ./
    os.environ["WANDB_DIR"] = str(run.save_dir)


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


def continues(cfg: DictConfig, output_dir: Path) -> bool:
    """Whether this run continues the one in `output_dir` (resume, or a requeued SLURM job)."""
    ckpt = cfg.get("ckpt_path")
    own = ckpt is not None and Path(ckpt).resolve().parent.parent == output_dir.resolve()
    return own or slurm.requeued()


def save_config(cfg: DictConfig, output_dir: Path) -> None:
    """`config.yaml` (resolved), written whole or not at all: other ranks may be reading it."""
    output_dir.mkdir(parents=True, exist_ok=True)
    if (output_dir / "config.yaml").is_file() and not continues(cfg, output_dir):
        raise ConfigError(
            f"{output_dir} already holds a run; continue it with resume={output_dir}, "
            f"or give the new run its own dir (hydra.run.dir=...)"
        )
    partial = output_dir / f".config.yaml.{os.getpid()}"
    OmegaConf.save(cfg, partial, resolve=True)
    os.replace(partial, output_dir / "config.yaml")


def fit_run(cfg: DictConfig, module: pl.LightningModule, command: str) -> dict[str, float]:
    """Fits `module` on `cfg.data` in run dir `cfg.paths.output_dir`; returns the final metrics.

    `command` (e.g. `diffusion_lab.train`) is named in the hints printed for the user.
    """
    output_dir = Path(cfg.paths.output_dir)
    ckpt_path = cfg.get("ckpt_path")
    if ckpt_path is not None:
        if Path(ckpt_path).suffix == ".safetensors":
            raise ConfigError(
                f"ckpt_path={ckpt_path} is an export (EMA weights only); training continues from "
                "a checkpoint: <run dir>/checkpoints/last.ckpt"
            )
        load_checkpoint(ckpt_path, mmap=True)  # a clear error for a bad file, before any data
    name_wandb_run(cfg)
    if is_rank_zero():
        save_config(cfg, output_dir)
    datamodule = instantiate(cfg.data)
    callbacks = instantiate_each(cfg.get("callbacks"))
    if not any(isinstance(callback, LastCheckpoint) for callback in callbacks):
        callbacks.append(LastCheckpoint(str(output_dir / "checkpoints")))  # acts on signals
    trainer = instantiate(
        cfg.trainer,
        callbacks=[*callbacks, LogConfig(to_plain(cfg))],
        logger=instantiate_each(cfg.get("logger")) or False,
        plugins=[AtomicCheckpointIO(), *slurm.cluster_plugins(cfg.trainer.get("strategy"))],
        default_root_dir=str(output_dir),
    )
    os.environ[RUN_DIR_ENV] = str(output_dir)
    reset_seed()  # as DDP does in each process: any process count starts from the same RNG state
    if is_rank_zero():
        start = f", continuing from {ckpt_path}" if ckpt_path else ""
        log.info("run dir: %s%s", output_dir, start)
        log.info(describe(module))
    signum = 0
    with stop_signals() as received:
        try:
            trainer.fit(module, datamodule=datamodule, ckpt_path=ckpt_path, weights_only=True)
        except SIGTERMException:  # Lightning's own handler, before the lab's took over
            signum = received.received or signal.SIGTERM
        finally:
            finish_wandb_run(trainer.loggers)
    signum = signum or int(trainer.callback_metrics.get("train/stop_signal", 0))
    if signum:
        stopped(signum, output_dir, command)
    if is_rank_zero():
        summarise(output_dir, command)
    return {name: float(value) for name, value in trainer.callback_metrics.items()}


def describe(module: pl.LightningModule) -> str:
    """`UNetModel: 651,137 parameters, 30.5 MFLOP per image (forward)`."""
    net = module.net
    text = f"{type(net).__name__}: {sum(p.numel() for p in net.parameters()):,} parameters"
    example = module.example_input_array
    if isinstance(example, dict):
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            module(**example)  # forward(x_t, t, **model_kwargs): the net's
        text += f", {counter.get_total_flops() / 1e6:,.1f} MFLOP per image (forward)"
    return text


def stopped(signum: int, output_dir: Path, command: str) -> None:
    """After a stop signal: rank 0 requeues the SLURM job (once) or says how to resume; every
    process then exits with 128 + the signal, as a process killed by it would."""
    if is_rank_zero():
        last = output_dir / "checkpoints" / LastCheckpoint.FILENAME
        step = load_checkpoint(last, mmap=True)["global_step"] if last.is_file() else 0
        what = f"stopped by {signal_name(signum)} at step {step} ({last} holds the state)"
        job = slurm.job_id()
        if slurm.should_requeue(signum) and slurm.requeue(job):
            what += f"; requeued SLURM job {job}: it continues in {output_dir}"
        else:
            what += f"; continue with: python -m {command} resume={output_dir}"
        print(what, file=sys.stderr)
    raise SystemExit(128 + signum)


def summarise(output_dir: Path, command: str) -> None:
    """Where the run's results are, and how to sample or evaluate it."""
    found = [
        output_dir / "checkpoints" / "best.ckpt",
        output_dir / "checkpoints" / LastCheckpoint.FILENAME,
        output_dir / "samples" / "final.png",
        output_dir / "csv" / "metrics.csv",
    ]
    lines = [f"finished: {output_dir}", *(f"  {path}" for path in found if path.is_file())]
    if command == "diffusion_lab.train":
        lines += [
            f"sample it:   python -m diffusion_lab.sample ckpt={output_dir}",
            f"evaluate it: python -m diffusion_lab.evaluate ckpt={output_dir}",
        ]
    log.info("\n".join(lines))
