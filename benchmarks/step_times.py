"""A training callback that records when every optimizer step ends, for throughput after warm-up.

    PYTHONPATH=benchmarks python -m diffusion_lab.train ... \\
        +callbacks.step_times._target_=step_times.StepTimes +callbacks.step_times.path=steps.json

On CUDA the marks are device events, read once at the end: no synchronisation inside the run, so
the host keeps queueing work ahead of the GPU as it does without the callback. The JSON holds the
marks (seconds from the start of training; the first step includes compilation), the batch sizes,
the peak memory and the speed switches as the module applied them.
"""

import json
import time
from pathlib import Path

import lightning.pytorch as pl
import torch
from unet_benchmark import vm_hwm_kb


class StepTimes(pl.Callback):
    """Writes `path` (JSON) at the end of training."""

    def __init__(self, path: str):
        self.path = Path(path)
        self.marks: list = []
        self.batch_sizes: list[int] = []

    def _mark(self, pl_module: pl.LightningModule) -> None:
        if pl_module.device.type == "cuda":
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            self.marks.append(event)
        else:
            self.marks.append(time.perf_counter())

    def _seconds(self) -> list[float]:
        """Each mark's time after the first, in seconds."""
        first = self.marks[0]
        if isinstance(first, torch.cuda.Event):
            torch.cuda.synchronize()
            return [first.elapsed_time(event) / 1000 for event in self.marks]
        return [mark - first for mark in self.marks]

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if pl_module.device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats(pl_module.device)
        self.marks, self.batch_sizes = [], []
        self._mark(pl_module)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx: int) -> None:
        self._mark(pl_module)
        self.batch_sizes.append(len(batch[0]))

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.is_global_zero:
            return
        device = pl_module.device
        if device.type == "cuda":
            memory = "cuda_max_allocated"
            peak = torch.cuda.max_memory_allocated(device) / 2**20
            reserved = torch.cuda.max_memory_reserved(device) / 2**20
        else:
            memory, peak, reserved = "cpu_peak_rss", vm_hwm_kb() / 1024, None
        conv = next(m for m in pl_module.net.modules() if isinstance(m, torch.nn.Conv2d))
        record = {
            "device": str(device),
            "precision": str(trainer.precision),
            "compiled": pl_module.train_net is not pl_module.net,
            "channels_last": conv.weight.is_contiguous(memory_format=torch.channels_last),
            "fused": trainer.optimizers[0].defaults.get("fused"),
            "step_ends_s": self._seconds()[1:],
            "batch_sizes": self.batch_sizes,
            "memory_kind": memory,
            "peak_memory_mb": peak,
            "peak_reserved_mb": reserved,
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text(json.dumps(record, indent=2) + "\n")
