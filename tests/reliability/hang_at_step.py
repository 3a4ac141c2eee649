"""A test callback: waits at given steps so a test can kill or signal the training process."""

import time
from pathlib import Path

import lightning.pytorch as pl


class HangAtStep(pl.Callback):
    """Before the batch that follows `steps[i]` optimizer steps, touches `<marker_dir>/<step>`
    and waits (up to `timeout` s, or until SIGTERM) — once: not when the marker already exists."""

    def __init__(self, steps: list[int], marker_dir: str, timeout: float = 300):
        self.steps, self.marker_dir, self.timeout = list(steps), Path(marker_dir), timeout

    def on_train_batch_start(self, trainer: pl.Trainer, *args) -> None:
        marker = self.marker_dir / str(trainer.global_step)
        if trainer.global_step not in self.steps or marker.exists():
            return
        marker.touch()
        deadline = time.monotonic() + self.timeout
        while not trainer.received_sigterm and time.monotonic() < deadline:
            time.sleep(0.05)
