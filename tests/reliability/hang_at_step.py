"""Test callbacks: wait at given steps so a test can kill or signal the training processes, and
record the step each process stopped at."""

import time
from pathlib import Path

import lightning.pytorch as pl

from diffusion_lab.runs.signals import RECEIVED


class HangAtStep(pl.Callback):
    """Before the batch that follows `steps[i]` optimizer steps, rank 0 touches
    `<marker_dir>/<step>` and waits (up to `timeout` s, or until a stop signal) — once: not when
    the marker already exists. The other ranks wait for it in the step's collectives."""

    def __init__(self, steps: list[int], marker_dir: str, timeout: float = 300):
        self.steps, self.marker_dir, self.timeout = list(steps), Path(marker_dir), timeout

    def on_train_batch_start(self, trainer: pl.Trainer, *args) -> None:
        marker = self.marker_dir / str(trainer.global_step)
        if trainer.global_rank != 0 or trainer.global_step not in self.steps or marker.exists():
            return
        marker.touch()
        deadline = time.monotonic() + self.timeout
        while not RECEIVED.received and time.monotonic() < deadline:
            time.sleep(0.05)


class RecordStep(pl.Callback):
    """Writes `<record_dir>/rank<r>` = the global step at which process r's training ended."""

    def __init__(self, record_dir: str):
        self.record_dir = Path(record_dir)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.record_dir.mkdir(parents=True, exist_ok=True)
        (self.record_dir / f"rank{trainer.global_rank}").write_text(str(trainer.global_step))
