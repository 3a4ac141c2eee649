"""Exponential moving average of the weights, on Lightning's `WeightAveraging`.

Validation, sample grids, checkpoints' `state_dict` and the final model use the averaged weights;
checkpoints keep the raw weights under `current_model_state` so training resumes exactly.
"""

import torch
from lightning.pytorch.callbacks import WeightAveraging


class EMA(WeightAveraging):
    """EMA of all parameters and buffers: θ̄ ← d·θ̄ + (1 − d)·θ after each optimizer step.

    Args:
        decay: d, e.g. 0.9999 for DDPM's CIFAR-10 runs.
        warmup: use d_n = min(decay, (1 + n) / (10 + n)) for the n-th update, so that short runs
            are not dominated by the initial weights.
        update_every_n_steps: update the average every N optimizer steps.
        update_starting_at_step: first optimizer step that updates the average (before it: copy).
    """

    def __init__(
        self,
        decay: float = 0.9999,
        warmup: bool = False,
        update_every_n_steps: int = 1,
        update_starting_at_step: int = 0,
    ):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"callbacks.ema.decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.warmup = warmup
        self.update_every_n_steps = update_every_n_steps
        self.update_starting_at_step = update_starting_at_step
        self._trained = False
        super().__init__(use_buffers=True, multi_avg_fn=self._multi_avg)

    def setup(self, trainer, pl_module, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        self._trained = False

    def on_fit_start(self, trainer, pl_module) -> None:
        """The average in the dtype the precision plugin gave the module (64-true: float64)."""
        if self._average_model is not None:
            self._average_model.to(dtype=next(pl_module.parameters()).dtype)

    def on_train_end(self, trainer, pl_module) -> None:
        """The module ends with the averaged weights; the raw ones stay in the averaged model's
        place, so a checkpoint written after training (last.ckpt) can still resume exactly."""
        self._swap_models(pl_module)
        self._trained = True

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict) -> None:
        super().on_save_checkpoint(trainer, pl_module, checkpoint)
        if self._trained and self._average_model is not None:
            checkpoint["state_dict"], checkpoint["current_model_state"] = (
                checkpoint["current_model_state"],
                checkpoint["state_dict"],
            )

    def averaged_state_dict(self) -> dict[str, torch.Tensor]:
        """The averaged module's `state_dict` (the keys of the LightningModule's own)."""
        return self._average_model.module.state_dict()

    def current_decay(self, num_averaged: int) -> float:
        if not self.warmup:
            return self.decay
        return min(self.decay, (1 + num_averaged) / (10 + num_averaged))

    @torch.no_grad()
    def _multi_avg(
        self, averaged: list[torch.Tensor], current: list[torch.Tensor], num_averaged: torch.Tensor
    ) -> None:
        decay = self.current_decay(int(num_averaged))
        if averaged[0].is_floating_point():
            torch._foreach_lerp_(averaged, current, 1.0 - decay)
        else:  # integer buffers (e.g. counters) are copied, not averaged
            torch._foreach_copy_(averaged, current)

    def should_update(self, step_idx: int | None = None, epoch_idx: int | None = None) -> bool:
        return (
            step_idx is not None
            and step_idx >= self.update_starting_at_step
            and step_idx % self.update_every_n_steps == 0
        )
