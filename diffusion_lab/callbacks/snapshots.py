"""EMA snapshots: the averaged weights every N steps, for quality-against-step curves."""

import os
from pathlib import Path

import lightning.pytorch as pl
import torch

from diffusion_lab.callbacks.ema import EMA


class Snapshots(pl.Callback):
    """Every `every_n_steps` optimizer steps, rank 0 writes `<dirpath>/step_<step>.ckpt`: the EMA
    weights (the raw ones without an `EMA` callback) as `state_dict`, the module's
    hyperparameters and `global_step` — what `sample`, `evaluate` and `load_module` read, at a
    fraction of a training checkpoint's size. `keep_last`: how many to keep (-1: all).
    """

    def __init__(self, dirpath: str, every_n_steps: int = 0, keep_last: int = -1):
        if every_n_steps < 0 or keep_last == 0 or keep_last < -1:
            raise ValueError(
                f"callbacks.snapshots needs every_n_steps >= 0 (0 = off) and keep_last >= 1 or "
                f"-1 (all), got {every_n_steps} and {keep_last}"
            )
        self.dirpath, self.every_n_steps, self.keep_last = Path(dirpath), every_n_steps, keep_last

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        step = trainer.global_step
        if not self.every_n_steps or step % self.every_n_steps or not trainer.is_global_zero:
            return
        ema = next((c for c in trainer.callbacks if isinstance(c, EMA)), None)
        weights = ema.averaged_state_dict() if ema is not None else pl_module.state_dict()
        snapshot = {
            "state_dict": {name: value.detach().cpu() for name, value in weights.items()},
            "hyper_parameters": dict(pl_module.hparams),
            "global_step": step,
        }
        self.dirpath.mkdir(parents=True, exist_ok=True)
        path = self.dirpath / f"step_{step:07d}.ckpt"
        partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
        torch.save(snapshot, partial)
        os.replace(partial, path)
        if self.keep_last > 0:
            for old in sorted(self.dirpath.glob("step_*.ckpt"))[: -self.keep_last]:
                old.unlink()
