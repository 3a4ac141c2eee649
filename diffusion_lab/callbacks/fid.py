"""FID (and IS) of EMA samples during training, logged as e.g. `fid_5k` or `fid_digits_1k`."""

import os
from collections.abc import Mapping

import lightning.pytorch as pl
import torch

from diffusion_lab.evaluation import reference_for
from diffusion_lab.lightning.generation import draw
from diffusion_lab.metrics import (
    Features,
    PRCSettings,
    build_feature_extractor,
    compute_metrics,
    gather_samples,
    metric_key,
    shard_indices,
)


def log_name(metric: str, num_samples: int) -> str:
    """What a metric of `num_samples` samples is logged as: `fid_5k`, `fid_digits_0.5k`."""
    return f"{metric}_{num_samples / 1000:g}k"


def best_metric(fid: dict) -> str:
    """What `best.ckpt` minimises: the FID callback's FID when it is on, else val/loss."""
    if not fid or not fid.get("every_n_steps"):
        return "val/loss"
    return log_name(metric_key("fid", fid.get("features", "inception")), fid["num_samples"])


class FID(pl.Callback):
    """Scores `num_samples` samples (Heusel et al. 2017) at validations `every_n_steps` apart.

    The scores are computed at the first validation batch, while `EMA` has the averaged weights
    swapped in, so they rate the EMA model. Each process draws its exact share of the samples
    (sample i from noise seeded by (seed, i)); features are gathered, so every process holds the
    same scores. The feature network and the reference statistics (of the datamodule's
    `reference_split`, cached in `cache_dir`) are built once, at fit start.

    Args:
        every_n_steps: least number of optimizer steps between two scorings; 0 turns it off.
        num_samples: K samples per scoring; the logged name carries K in thousands (`fid_5k`).
        sampler: keyword arguments of `diffusion_lab.sampling.sample` (`name`, `steps`, ...).
        features: inception | fmnist | digits; small nets add their name (`fid_digits_1k`).
        metrics: any of fid, is, precision, recall.
        prc: precision/recall's num_reference, num_generated, k and seed (seeded random subsets,
            as `evaluate`'s metrics.prc); default: num_samples on each side, k = 3, seed 0.
    """

    def __init__(
        self,
        every_n_steps: int,
        num_samples: int,
        sampler: dict,
        features: str = "inception",
        inception_weights: str | None = None,
        reference_split: str = "train",
        cache_dir: str | os.PathLike = "cache/metrics",
        batch_size: int = 250,
        seed: int = 0,
        metrics: tuple[str, ...] = ("fid", "is"),
        prc: Mapping | None = None,
    ):
        if every_n_steps < 0 or num_samples < 2:
            raise ValueError(
                f"callbacks.fid needs every_n_steps >= 0 and num_samples >= 2, "
                f"got {every_n_steps} and {num_samples}"
            )
        self.every_n_steps = every_n_steps
        self.num_samples = num_samples
        self.sampler = dict(sampler)
        self.features = features
        self.inception_weights = inception_weights
        self.reference_split = reference_split
        self.cache_dir = cache_dir
        self.batch_size = batch_size
        self.seed = seed
        self.metrics = list(metrics)
        equal_sizes = {"num_reference": num_samples, "num_generated": num_samples}
        self.prc = PRCSettings.from_config(prc or equal_sizes, "callbacks.fid.prc")
        self.extractor = None
        self.reference = None
        self._last_step: int | None = None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage != "fit" or self.every_n_steps == 0 or self.reference is not None:
            return
        extractor = build_feature_extractor(self.features, self.inception_weights)
        self.extractor = extractor.to(trainer.strategy.root_device)

        scores_pr = {"precision", "recall"} & set(self.metrics)

        def reference():
            return reference_for(
                trainer.datamodule,
                self.reference_split,
                self.extractor,
                self.cache_dir,
                self.batch_size,
                self.prc if scores_pr else None,
            )

        if trainer.is_global_zero:
            reference()  # computes and caches the statistics once; the other ranks read them
        trainer.strategy.barrier()
        self.reference = reference()

    def on_validation_batch_end(
        self, trainer, pl_module, outputs, batch, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        if self.every_n_steps == 0 or batch_idx != 0 or trainer.sanity_checking:
            return
        last = self._last_step
        if last is not None and trainer.global_step - last < self.every_n_steps:
            return
        self._last_step = trainer.global_step
        for name, value in self.compute(trainer, pl_module).items():
            pl_module.log(self.log_name(name), value)

    def log_name(self, name: str) -> str:
        """`fid` -> `fid_5k` for 5,000 samples (`fid_0.5k` for 500)."""
        return log_name(name, self.num_samples)

    @torch.no_grad()
    def compute(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, float]:
        """Scores of the current weights' samples, the same on every process."""
        mine = shard_indices(self.num_samples, trainer.world_size, trainer.global_rank)
        parts = [
            self.extractor(self.draw(pl_module, mine[start : start + self.batch_size]))
            for start in range(0, len(mine), self.batch_size)
        ]
        local = Features.cat(parts)
        generated = Features(
            gather_samples(local.features, self.num_samples),
            gather_samples(local.logits, self.num_samples),
        )
        scores = compute_metrics(generated, self.reference, self.metrics, self.prc)
        scores.pop(metric_key("is_std", self.features), None)
        return scores

    def draw(self, pl_module: pl.LightningModule, indices: range) -> torch.Tensor:
        """Samples `indices` in [-1, 1], as `python -m diffusion_lab.sample` draws them."""
        net = pl_module.hparams.net
        image_shape = (net["in_channels"], net["image_size"], net["image_size"])
        images, _ = draw(
            pl_module.net,
            pl_module.diffusion,
            self.sampler,
            indices,
            image_shape,
            self.seed,
            pl_module.device,
            num_classes=pl_module.num_classes,
        )
        return images
