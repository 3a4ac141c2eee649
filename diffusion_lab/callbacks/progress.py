"""One progress bar over the whole run: optimizer steps out of `max_steps`, with rate and ETA;
and one over the samples a prediction run draws (`PredictionProgress`).

Lightning's bars count batches per epoch ("Epoch 153/-2" when training is bounded by steps). In
a terminal this draws a rich bar; otherwise (a log file, a cluster job) it writes a line every
`log_every_percent` of the run.
"""

import logging
import sys
import time

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback, ProgressBar
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from diffusion_lab.progress import Bar

log = logging.getLogger(__name__)


class StepProgressBar(ProgressBar):
    """Steps done / `trainer.max_steps` (from the resumed step after a resume), the loss, the
    rate and the time left. `log_every_percent`: how often, without a terminal."""

    def __init__(self, log_every_percent: float = 10.0):
        super().__init__()
        self.log_every_percent = log_every_percent
        self.enabled = True
        self.bar: Progress | None = None
        self.start = (0, 0.0)  # (step, time) when this process started training
        self.next_line = 0.0

    def disable(self) -> None:
        self.enabled = False

    def enable(self) -> None:
        self.enabled = True

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not (self.enabled and trainer.is_global_zero):
            return
        self.start = (trainer.global_step, time.monotonic())
        self.next_line = trainer.global_step
        if sys.stderr.isatty():
            self.bar = Progress(
                TextColumn("[bold]step"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[metrics]}"),
                TimeRemainingColumn(),
            )
            self.bar.add_task(
                "train", total=trainer.max_steps, completed=trainer.global_step, metrics=""
            )
            self.bar.start()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        if not (self.enabled and trainer.is_global_zero):
            return
        step, total = trainer.global_step, trainer.max_steps
        metrics = self.get_metrics(trainer, pl_module)
        shown = "  ".join(f"{k} {v}" for k, v in metrics.items() if k in ("train/loss", "val/loss"))
        if self.bar is not None:
            self.bar.update(self.bar.task_ids[0], completed=step, metrics=shown)
        elif step >= self.next_line or step == total:
            self.next_line = step + max(1, round(total * self.log_every_percent / 100))
            percent = 100 * step / total
            log.info("step %d/%d (%.0f%%) %s%s", step, total, percent, shown, self.eta(step, total))

    def eta(self, step: int, total: int) -> str:
        done, elapsed = step - self.start[0], time.monotonic() - self.start[1]
        if done <= 0 or elapsed <= 0:
            return ""
        rate = done / elapsed
        return f"  {rate:.2f} steps/s, {(total - step) / rate / 60:.1f} min left"

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.bar is not None:
            self.bar.stop()
            self.bar = None

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        self.on_train_end(trainer, pl_module)


class PredictionProgress(Callback):
    """One bar over the `total` samples of a prediction run: each process counts its share
    (the unrepeated distributed sampler's indices rank, rank + world size, ...); rank 0 shows it."""

    def __init__(self, total: int, enabled: bool = True):
        self.total, self.enabled = total, enabled
        self.bar: Bar | None = None

    def on_predict_start(self, trainer, pl_module) -> None:
        share = len(range(trainer.global_rank, self.total, trainer.world_size))
        shown = self.enabled and trainer.is_global_zero
        self.bar = Bar("sampling", share, "samples", enabled=shown)

    def on_predict_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, *args) -> None:
        self.bar.advance(len(batch))

    def on_predict_end(self, trainer, pl_module) -> None:
        self.bar.close()

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        if self.bar is not None:
            self.bar.close()
