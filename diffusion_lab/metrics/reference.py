"""Reference statistics of a dataset (cached as .npz); scoring generated features against them."""

import json
import logging
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset

from diffusion_lab.errors import ConfigError
from diffusion_lab.metrics.extractors import metric_key
from diffusion_lab.metrics.features import FeatureExtractor, Features
from diffusion_lab.metrics.prc import (
    PAPER_PRC,
    PRCSettings,
    random_subset,
    subset_precision_recall,
)
from diffusion_lab.metrics.scores import (
    FeatureStats,
    frechet_distance,
    inception_score,
    kernel_inception_distance,
)
from diffusion_lab.progress import Bar, counted

log = logging.getLogger(__name__)

METRICS = ("fid", "kid", "is", "precision", "recall")


@dataclass
class ReferenceStats:
    """What the metrics need of the real data under one feature extractor.

    mu [D], sigma [D, D] (float64) over all `num_samples` images; `features` [M, D] float32 for
    precision/recall: those of the images `random_subset(num_samples, M, pr_seed)`, in that order.
    `key` describes everything that decided the features (data, preprocessing, feature network).
    """

    name: str
    extractor: str
    num_samples: int
    mu: np.ndarray
    sigma: np.ndarray
    features: np.ndarray
    pr_seed: int
    key: dict

    def holds_pr_subset(self, num: int, seed: int) -> bool:
        """Whether `features` hold the first `num` images (at most all) of seed `seed`'s subset."""
        num = min(num, self.num_samples)
        return num == 0 or (self.pr_seed == seed and len(self.features) >= num)

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f"{path.stem}.{os.getpid()}.partial.npz")
        np.savez(partial, **(vars(self) | {"key": json.dumps(self.key, sort_keys=True)}))
        os.replace(partial, path)  # other ranks or jobs never read a half-written file

    @classmethod
    def load(cls, path: Path) -> "ReferenceStats | None":
        """The statistics saved at `path`; None for a file of another layout (an older lab)."""
        with np.load(path) as f:
            if set(f.files) != set(cls.__dataclass_fields__):
                return None
            return cls(
                name=str(f["name"]),
                extractor=str(f["extractor"]),
                num_samples=int(f["num_samples"]),
                mu=f["mu"],
                sigma=f["sigma"],
                features=f["features"],
                pr_seed=int(f["pr_seed"]),
                key=json.loads(str(f["key"])),
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
    name: str,
    data: Dataset | Callable[[], Dataset],
    extractor: FeatureExtractor,
    cache_dir: str | os.PathLike,
    *,
    key: dict | None = None,
    batch_size: int = 250,
    num_pr_features: int = 50_000,
    pr_seed: int = 0,
    progress: bool = False,
) -> ReferenceStats:
    """Statistics of `data` under `extractor`: read from `<cache_dir>/<name>.npz`, or computed
    once and saved there.

    `data` is a dataset of images or (image, label) pairs, or a function that builds one (called
    only when the cache cannot answer). `key` (JSON values) describes the data; the feature
    network's name and weights' SHA-256 are added to it. A cached file is used only if its key
    is the same, else it is recomputed (one log line says why). Precision/recall keep the
    features of `num_pr_features` images (at most all), `random_subset` of seed `pr_seed`; a
    cache holding fewer is extended. `progress`: a bar (or log lines) over the images read.
    """
    path = Path(cache_dir) / f"{name}.npz"
    key = json.loads(json.dumps(key or {}, sort_keys=True))  # tuples -> lists, as stored
    key |= {"features": extractor.name, "weights_sha256": extractor.weights_sha256()}
    cached = ReferenceStats.load(path) if path.is_file() else None
    if path.is_file() and (cached is None or cached.key != key):
        log.warning(
            "reference statistics %s are stale (%s); recomputing", path, why_stale(cached, key)
        )
        cached = None
    if cached is not None and cached.holds_pr_subset(num_pr_features, pr_seed):
        return cached
    dataset = data() if callable(data) else data
    if cached is not None and len(dataset) == cached.num_samples:
        reference = with_pr_subset(
            cached, dataset, extractor, num_pr_features, pr_seed, batch_size, progress
        )
    else:
        reference = compute_reference(
            name, dataset, extractor, key, num_pr_features, pr_seed, batch_size, progress
        )
    reference.save(path)
    return reference


def why_stale(cached: ReferenceStats | None, key: dict) -> str:
    """What differs between a cached file and the key asked for, for the log."""
    if cached is None:
        return "written by another version of the lab"
    changed = (k for k in sorted(key.keys() | cached.key.keys()) if key.get(k) != cached.key.get(k))
    return f"{', '.join(changed)} changed"


def compute_reference(
    name: str,
    dataset: Dataset,
    extractor: FeatureExtractor,
    key: dict,
    num_pr_features: int,
    pr_seed: int,
    batch_size: int,
    progress: bool = False,
) -> ReferenceStats:
    """mu and sigma over every image of `dataset`, and the precision/recall subset's features
    (kept on the way, in subset order)."""
    num_images = len(dataset)
    chosen = random_subset(num_images, num_pr_features, pr_seed)
    position = torch.full((num_images,), -1)  # where image i goes in the subset, -1: not in it
    position[chosen] = torch.arange(len(chosen))
    kept = np.empty((len(chosen), extractor.num_features), np.float32)
    stats = FeatureStats(extractor.num_features)
    bar = Bar("reference features", num_images, "images") if progress else None
    batches = counted(image_batches(dataset, batch_size), bar)
    for part in extract_features(extractor, batches):
        features = part.features.cpu()
        where = position[stats.count : stats.count + len(features)]
        stats.update(features)
        kept[where[where >= 0].numpy()] = features[where >= 0].numpy()
    if bar is not None:
        bar.close()
    if stats.count != num_images:
        raise ValueError(f"{name}: read {stats.count} images of a dataset of {num_images}")
    return ReferenceStats(
        name=name,
        extractor=extractor.name,
        num_samples=num_images,
        mu=stats.mu,
        sigma=stats.sigma,
        features=kept,
        pr_seed=pr_seed,
        key=key,
    )


def with_pr_subset(
    reference: ReferenceStats,
    dataset: Dataset,
    extractor: FeatureExtractor,
    num_pr_features: int,
    pr_seed: int,
    batch_size: int,
    progress: bool = False,
) -> ReferenceStats:
    """`reference` with the features of `num_pr_features` subset images of seed `pr_seed`: the
    cached ones kept when the seed is the same, only the missing images read."""
    chosen = random_subset(reference.num_samples, num_pr_features, pr_seed)
    have = len(reference.features) if reference.pr_seed == pr_seed else 0
    log.info(
        "reference statistics %s: precision/recall features of %d images, %d cached",
        reference.name,
        len(chosen),
        have,
    )
    missing = Subset(dataset, chosen[have:].tolist())
    bar = Bar("reference precision/recall features", len(missing), "images") if progress else None
    batches = counted(image_batches(missing, batch_size), bar)
    parts = [p.features.cpu() for p in extract_features(extractor, batches)]
    if bar is not None:
        bar.close()
    features = np.concatenate([reference.features[:have], *(p.numpy() for p in parts)])
    return replace(reference, features=features.astype(np.float32), pr_seed=pr_seed)


def compute_metrics(
    generated: Features,
    reference: ReferenceStats,
    metrics: Sequence[str] = METRICS,
    prc: PRCSettings = PAPER_PRC,
) -> dict[str, float]:
    """Scores generated features against the reference: {"fid": ..., "is": ..., "is_std": ...,
    "precision": ..., "recall": ...}, names suffixed by the feature net unless it is Inception
    ("fid_fmnist"). Precision/recall follow `prc` (`subset_precision_recall`).
    """
    unknown = set(metrics) - set(METRICS)
    if unknown:
        raise ConfigError(f"metrics {sorted(unknown)} are not known; allowed: {list(METRICS)}")
    scores = {}
    if "fid" in metrics or "kid" in metrics:
        warn_if_fewer_than_dimensions(len(generated.features), reference.num_samples, reference.mu)
    if "fid" in metrics:
        stats = FeatureStats(generated.features.shape[1])
        stats.update(generated.features)
        scores["fid"] = frechet_distance(stats.mu, stats.sigma, reference.mu, reference.sigma)
    if "kid" in metrics:
        real = torch.from_numpy(reference.features)
        scores["kid"], scores["kid_std"] = kernel_inception_distance(generated.features, real)
    if "is" in metrics:
        scores["is"], scores["is_std"] = inception_score(generated.logits)
    if "precision" in metrics or "recall" in metrics:
        result = subset_precision_recall(generated.features, reference, prc)
        pair = {"precision": result.precision, "recall": result.recall}
        scores |= {name: value for name, value in pair.items() if name in metrics}
    return {metric_key(name, reference.extractor): value for name, value in scores.items()}


def warn_if_fewer_than_dimensions(num_generated: int, num_reference: int, mu: np.ndarray) -> None:
    """A warning when either side has fewer features than dimensions: the covariance is then
    rank-deficient and FID (KID less so) depends strongly on the sample size."""
    dimensions = len(mu)
    if min(num_generated, num_reference) < dimensions:
        log.warning(
            "FID/KID on %d generated and %d reference features of %d dimensions: fewer samples "
            "than dimensions, so the score depends strongly on the sample size; use at least %d "
            "or compare only scores of the same size",
            num_generated,
            num_reference,
            dimensions,
            dimensions,
        )
