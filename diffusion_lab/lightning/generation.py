"""Sample generation as Lightning prediction: every process draws a disjoint share of the indices.

Used by `diffusion_lab.sample` and evaluation; with `trainer.devices=N` the work spreads over N
devices, and the unrepeated distributed sampler that Lightning uses for prediction gives each index
to exactly one process.
"""

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch
from lightning.pytorch.callbacks import BasePredictionWriter

from diffusion_lab.metrics import batch_seed, per_sample_noise, to_uint8
from diffusion_lab.sampling import sample


def draw(
    net: torch.nn.Module,
    diffusion: Any,
    sampler: dict,
    indices: Sequence[int],
    image_shape: tuple[int, int, int],
    seed: int,
    device: torch.device,
    num_classes: int | None = None,
    model_kwargs: dict | None = None,
    cond_fn: Any = None,
    prompts: Sequence[str] | None = None,
    text_encoder: torch.nn.Module | None = None,
) -> tuple[torch.Tensor, dict]:
    """Samples `indices` of a seeded run, in [-1, 1], and the model kwargs they were drawn with.

    Sample i starts from noise seeded by (seed, i), so it does not depend on the batch or process
    that draws it; the noise the sampler adds later comes from a stream seeded by (seed, first
    index). Class-conditional models get balanced labels i mod num_classes; text-conditioned
    ones prompt i mod P of `prompts`, encoded by `text_encoder`.
    """
    kwargs = dict(model_kwargs or {})
    if num_classes is not None:
        kwargs["y"] = torch.tensor(list(indices), device=device) % num_classes
    if prompts is not None:
        kwargs["text"] = text_encoder([prompts[i % len(prompts)] for i in indices])
    options = dict(sampler)
    out = sample(
        net,
        diffusion,
        (len(indices), *image_shape),
        sampler=options.pop("name"),
        noise=per_sample_noise(indices, image_shape, seed, device),
        generator=torch.Generator(device=device).manual_seed(batch_seed(seed, indices[0])),
        model_kwargs=kwargs,
        cond_fn=cond_fn,
        **options,
    )
    return out.images, kwargs


class SampleGenerator(pl.LightningModule):
    """Draws the samples whose indices arrive as prediction batches (see `draw`)."""

    def __init__(
        self,
        net: torch.nn.Module,
        diffusion: Any,
        image_shape: tuple[int, int, int],
        sampler: dict,
        seed: int = 0,
        num_classes: int | None = None,
        model_kwargs: dict | None = None,
        cond_fn: Any = None,
        prompts: Sequence[str] | None = None,
        text_encoder: torch.nn.Module | None = None,
    ):
        super().__init__()
        self.net = net
        self.diffusion = diffusion
        self.image_shape = tuple(image_shape)
        self.sampler = dict(sampler)
        self.seed = seed
        self.num_classes = num_classes
        self.extra_model_kwargs = dict(model_kwargs or {})
        self.cond_fn = cond_fn
        self.prompts = None if prompts is None else list(prompts)
        self.text_encoder = text_encoder

    @torch.no_grad()
    def predict_step(self, indices: torch.Tensor, batch_idx: int) -> dict[str, torch.Tensor]:
        images, model_kwargs = draw(
            self.net,
            self.diffusion,
            self.sampler,
            indices.tolist(),
            self.image_shape,
            self.seed,
            self.device,
            num_classes=self.num_classes,
            model_kwargs=self.extra_model_kwargs,
            cond_fn=self.cond_fn,
            prompts=self.prompts,
            text_encoder=self.text_encoder,
        )
        pixels = to_uint8(images).permute(0, 2, 3, 1)  # [N,H,W,C], as ADM's .npz holds them
        result = {"index": indices.cpu(), "images": pixels.contiguous().cpu()}
        if "y" in model_kwargs:
            result["labels"] = model_kwargs["y"].cpu()
        if self.prompts is not None:
            result["prompt_index"] = indices.cpu() % len(self.prompts)
        return result


class NpzSampleWriter(BasePredictionWriter):
    """Writes each process's samples to a shard, then merges them in index order on rank 0.

    The merged file holds `arr_0` (uint8 [N,H,W,C], the format of the improved-diffusion / ADM
    evaluators) and, for conditional models, `arr_1` (labels); with prompts, `prompts` (the P
    prompts) and `prompt_index` (sample i's prompt: i mod P).
    """

    def __init__(self, path: str | Path, prompts: Sequence[str] | None = None):
        super().__init__(write_interval="epoch")
        self.path = Path(path)
        self.prompts = None if prompts is None else list(prompts)

    def write_on_epoch_end(self, trainer, pl_module, predictions, batch_indices) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        shard = self.path.with_suffix(f".rank{trainer.global_rank}.pt")
        merged = {key: torch.cat([p[key] for p in predictions]) for key in predictions[0]}
        torch.save(merged, shard)
        trainer.strategy.barrier()
        if trainer.is_global_zero:
            self._merge(trainer.world_size)
        trainer.strategy.barrier()

    def _merge(self, world_size: int) -> None:
        shards = [self.path.with_suffix(f".rank{rank}.pt") for rank in range(world_size)]
        parts = [torch.load(shard, weights_only=True) for shard in shards]
        merged = {key: torch.cat([part[key] for part in parts]) for key in parts[0]}
        order = torch.argsort(merged["index"])
        if not torch.equal(merged["index"][order], torch.arange(len(order))):
            raise RuntimeError("sample indices from the processes are not exactly 0..N-1")
        arrays = [merged["images"][order].numpy()]
        if "labels" in merged:
            arrays.append(merged["labels"][order].numpy())
        named = {}
        if self.prompts is not None:
            named = {
                "prompts": np.array(self.prompts),
                "prompt_index": merged["prompt_index"][order].numpy(),
            }
        np.savez(self.path, *arrays, **named)
        for shard in shards:
            shard.unlink()
