"""`last.ckpt`: the latest training state, written periodically, at the end and on stop signals."""

from pathlib import Path

import lightning.pytorch as pl
import torch

from diffusion_lab.runs.signals import RECEIVED


class LastCheckpoint(pl.Callback):
    """Keeps `<dirpath>/last.ckpt` the latest consistent state: every `every_n_train_steps`
    optimizer steps, at the end of training, and when any process gets a stop signal
    (`diffusion_lab.runs.signals`). An error mid-step leaves the last one written.

    After every optimizer step the processes agree (one all-reduce) on the strongest stop signal
    any of them received; if there is one, every process stops after that same step, `last.ckpt`
    is written there once, training ends there (a validation due at that step still runs; a
    resume would run it again), and `train/stop_signal` is logged for the launcher to act on.
    Writes go through `AtomicCheckpointIO`: a kill mid-write leaves the previous file readable.
    """

    FILENAME = "last.ckpt"

    def __init__(self, dirpath: str, every_n_train_steps: int = 1000):
        self.path = Path(dirpath) / self.FILENAME
        self.every_n_train_steps = every_n_train_steps
        self.saved_step: int | None = None
        self.stopped_by = 0

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        RECEIVED.install()  # after Lightning's own SIGTERM handler, which would exit mid-step
        self.stopped_by = 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        signum = self.agreed_signal(trainer)
        step = trainer.global_step
        # the last step's state is written here too, not after the loop: Lightning resumes a
        # checkpoint of a finished loop one logging step late
        if signum or step % self.every_n_train_steps == 0 or step >= trainer.max_steps:
            self.save(trainer)
        if signum:
            self.stopped_by = signum
            pl_module.log("train/stop_signal", float(signum))
            # end as at max_steps: `should_stop` would first run a validation (early stopping's)
            trainer.fit_loop.epoch_loop.max_steps = trainer.global_step

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.saved_step != trainer.global_step:
            self.save(trainer)

    def agreed_signal(self, trainer: pl.Trainer) -> int:
        """The largest signal number any process received (0: none), the same on all."""
        if trainer.world_size == 1:
            return RECEIVED.received
        local = torch.tensor(float(RECEIVED.received), device=trainer.strategy.root_device)
        return int(trainer.strategy.reduce(local, reduce_op="max"))

    def save(self, trainer: pl.Trainer) -> None:
        """Every process calls this at the same step: rank 0 writes, the others wait."""
        trainer.save_checkpoint(self.path, weights_only=False)
        self.saved_step = trainer.global_step
