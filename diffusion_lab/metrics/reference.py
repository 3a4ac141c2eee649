"""Reference statistics of a dataset (cached as .npz); scoring generated features against them."""

import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from diffusion_lab.errors import ConfigError
from diffusion_lab.metrics.extractors import metric_key
from diffusion_lab.metrics.features import FeatureExtractor, Features
from diffusion_lab.metrics.scores import (
    FeatureStats,
    frechet_distance,
    inception_score,
    precision_recall,
)

METRICS = ("fid", "is", "precision", "recall")


@dataclass
class ReferenceStats:
    """What the metrics need of the real data under one feature extractor.

    mu [D], sigma [D, D] (float64) over all `num_samples` images; `features` [M, D] float32, a
    seeded random subset of the images' features for precision/recall.
    """

    dataset_key: str
    extractor: str
    num_samples: int
    mu: np.ndarray
    sigma: np.ndarray
    features: np.ndarray

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f"{path.stem}.{os.getpid()}.partial.npz")
        np.savez(partial, **vars(self))
        os.replace(partial, path)  # other ranks or jobs never read a half-written file

    @classmethod
    def load(cls, path: Path) -> "ReferenceStats":
        with np.load(path) as f:
            return cls(
                dataset_key=str(f["dataset_key"]),
                extractor=str(f["extractor"]),
                num_samples=int(f["num_samples"]),
                mu=f["mu"],
                sigma=f["sigma"],
                features=f["features"],
            )


def image_batches(data: Dataset | DataLoader, batch_size: int) -> Iterator[torch.Tensor]:
    """Image tensors from a dataset or loader whose items are images or (images, labels)."""
    loader = data if isinstance(data, DataLoader) else DataLoader(data, batch_size=batch_size)
    for batch in loader:
        yield batch[0] if isinstance(batch, list | tuple) else batch


@torch.no_grad()
def extract_features(
    extractor: FeatureExtractor, batches: Iterable[torch.Tensor]
) -> Iterator[Features]:
    """Runs the extractor on each batch of images, on the extractor's device."""
    for images in batches:
        yield extractor(images.to(extractor.device))


def reference_stats(
    dataset_key: str,
    data: Dataset | DataLoader,
    extractor: FeatureExtractor,
    cache_dir: str | os.PathLike,
    *,
    batch_size: int = 250,
    num_pr_features: int = 10_000,
) -> ReferenceStats:
    """Statistics of `data` under `extractor`: read from `cache_dir`, or computed once and saved.

    `dataset_key` names the dataset, split and resolution (e.g. "cifar10-train-32"); the cache file
    is `<cache_dir>/<dataset_key>-<extractor.name>.npz`. Pass every image once: a loader without
    drop_last. The precision/recall subset is `num_pr_features` images chosen with seed 0.
    """
    path = Path(cache_dir) / f"{dataset_key}-{extractor.name}.npz"
    if path.is_file():
        return ReferenceStats.load(path)
    num_images = len(data.dataset if isinstance(data, DataLoader) else data)
    chosen = torch.randperm(num_images, generator=torch.Generator().manual_seed(0))
    keep = torch.zeros(num_images, dtype=torch.bool)
    keep[chosen[:num_pr_features]] = True
    stats = FeatureStats(extractor.num_features)
    kept = []
    for part in extract_features(extractor, image_batches(data, batch_size)):
        features = part.features.cpu()
        stats.update(features)
        kept.append(features[keep[stats.count - len(features) : stats.count]])
    reference = ReferenceStats(
        dataset_key=dataset_key,
        extractor=extractor.name,
        num_samples=stats.count,
        mu=stats.mu,
        sigma=stats.sigma,
        features=torch.cat(kept).numpy(),
    )
    reference.save(path)
    return reference


def compute_metrics(
    generated: Features, reference: ReferenceStats, metrics: Sequence[str] = METRICS
) -> dict[str, float]:
    """Scores generated features against the reference: {"fid": ..., "is": ..., "is_std": ...,
    "precision": ..., "recall": ...}, names suffixed by the feature net unless it is Inception
    ("fid_fmnist"). Precision/recall compare equally many generated and reference features.
    """
    unknown = set(metrics) - set(METRICS)
    if unknown:
        raise ConfigError(f"metrics {sorted(unknown)} are not known; allowed: {list(METRICS)}")
    scores = {}
    if "fid" in metrics:
        stats = FeatureStats(generated.features.shape[1])
        stats.update(generated.features)
        scores["fid"] = frechet_distance(stats.mu, stats.sigma, reference.mu, reference.sigma)
    if "is" in metrics:
        scores["is"], scores["is_std"] = inception_score(generated.logits)
    if "precision" in metrics or "recall" in metrics:
        n = min(len(generated.features), len(reference.features))
        real = torch.from_numpy(reference.features[:n]).to(generated.features.device)
        precision, recall = precision_recall(generated.features[:n], real)
        scores |= {k: v for k, v in (("precision", precision), ("recall", recall)) if k in metrics}
    return {metric_key(name, reference.extractor): value for name, value in scores.items()}
