"""Writes a PNG grid of samples from the (EMA) model during training and sends it to the loggers."""

import math
import shutil
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from lightning.pytorch.loggers import WandbLogger

from diffusion_lab.grids import save_grid
from diffusion_lab.guidance import CaptionClassifierFreeGuidance
from diffusion_lab.sampling import sample


class SampleGrid(pl.Callback):
    """Draws `num_samples` images with a fixed seed at validations at least `every_n_steps` apart.

    Sampling happens inside the validation epoch, when `EMA` has swapped the averaged weights in,
    and at the end of training (`final.png`), when the final (averaged) weights are in place.

    Args:
        num_samples: images per grid.
        every_n_steps: least number of optimizer steps between two grids.
        sampler: keyword arguments of `diffusion_lab.sampling.sample` (`name`, `steps`, options).
        seed: seed of the starting noise (and labels), the same for every grid.
        output_dir: where `step_0001000.png` and `final.png` are written.
        scale: whole-pixel upscaling of each image; None: enough for a grid >= 512 px wide.
        prompts: a text-conditioned module's fixed prompts, one per grid row (cycled when
            fewer than rows); None: the first distinct captions of the training data.
        guidance_scale: classifier-free guidance scale w on the prompts (1: unguided).
    """

    def __init__(
        self,
        num_samples: int,
        every_n_steps: int,
        sampler: dict,
        seed: int,
        output_dir: str,
        scale: int | None = None,
        prompts: list[str] | None = None,
        guidance_scale: float = 1.0,
    ):
        self.num_samples = num_samples
        self.every_n_steps = every_n_steps
        self.sampler = dict(sampler)
        self.seed = seed
        self.output_dir = Path(output_dir)
        self.scale = scale
        self.prompts = None if prompts is None else list(prompts)
        self.guidance_scale = guidance_scale
        self._last_step: int | None = None
        self._max_steps = 0

    def on_validation_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        due = self._last_step is None or trainer.global_step - self._last_step >= self.every_n_steps
        if batch_idx == 0 and due and not trainer.sanity_checking:
            self._last_step = trainer.global_step
            self.write_grid(trainer, pl_module, f"step_{trainer.global_step:07d}")

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._max_steps = trainer.max_steps

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        """`final.png` once training reached max_steps (not after a stop signal): the grid of
        that step when one was drawn there (the same EMA weights), else a new one."""
        if not trainer.is_global_zero or trainer.global_step < self._max_steps:
            return
        last = self.output_dir / f"step_{trainer.global_step:07d}.png"
        if self._last_step == trainer.global_step and last.is_file():
            shutil.copyfile(last, self.output_dir / "final.png")
        else:
            self.write_grid(trainer, pl_module, "final")

    @torch.no_grad()
    def write_grid(self, trainer: pl.Trainer, pl_module: pl.LightningModule, name: str) -> None:
        if not trainer.is_global_zero:
            return
        images = self.draw(pl_module)
        self.output_dir.mkdir(parents=True, exist_ok=True)
        path = self.output_dir / f"{name}.png"
        nrow = self.row_length(pl_module.num_classes)
        save_grid((images + 1) / 2, path, nrow=nrow, scale=self.scale)
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.log_image("samples", [str(path)], step=trainer.global_step)

    def row_length(self, num_classes: int | None) -> int:
        """Images per grid row: num_samples // K for a class-conditional model, else square."""
        if num_classes is None:
            return math.ceil(math.sqrt(self.num_samples))
        return max(self.num_samples // num_classes, 1)

    def draw(self, pl_module: pl.LightningModule) -> torch.Tensor:
        """Samples with the module's current weights, restoring its train/eval mode afterwards."""
        datamodule = pl_module.trainer.datamodule
        shape = (
            self.num_samples,
            datamodule.channels,
            datamodule.image_size,
            datamodule.image_size,
        )
        generator = torch.Generator(device=pl_module.device).manual_seed(self.seed)
        model_kwargs = {}
        if pl_module.num_classes is not None:  # one row per class, like sample.py's grid.png
            index = torch.arange(self.num_samples, device=pl_module.device)
            labels = index // self.row_length(pl_module.num_classes) % pl_module.num_classes
            model_kwargs = {"y": labels}
        net = pl_module.net
        was_training = pl_module.training
        pl_module.eval()
        if getattr(pl_module, "text_encoder", None) is not None:
            nrow = self.row_length(None)
            prompts = self.row_prompts(datamodule, math.ceil(self.num_samples / nrow))
            captions = [prompts[i // nrow] for i in range(self.num_samples)]
            model_kwargs["text"] = pl_module.text_encoder(captions)
            empty = pl_module.text_encoder([""])
            net = CaptionClassifierFreeGuidance(net, self.guidance_scale, empty)
        options = dict(self.sampler)
        try:
            out = sample(
                net,
                pl_module.diffusion,
                shape,
                sampler=options.pop("name"),
                generator=generator,
                model_kwargs=model_kwargs,
                **options,
            )
        finally:
            pl_module.train(was_training)
        return out.images.float().cpu()

    def row_prompts(self, datamodule, rows: int) -> list[str]:
        """`rows` prompts: the given ones cycled, else the first distinct training captions."""
        prompts = self.prompts or list(dict.fromkeys(datamodule.captions()))
        return [prompts[i % len(prompts)] for i in range(rows)]
