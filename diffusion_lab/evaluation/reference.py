"""The reference images of a datamodule for FID and precision/recall, and their cache key."""

import functools
import hashlib
import json
import os
from pathlib import Path

from diffusion_lab.metrics import FeatureExtractor, PRCSettings, ReferenceStats, reference_stats

# Bump when the lab changes how reference images become features (reading, scaling, quantising
# to uint8, the statistics), so no cache from before is read.
PREPROCESSING_VERSION = 1


def reference_key(datamodule, split: str) -> dict:
    """Everything about `split`'s images that decides their features, as JSON values: the
    dataset, split, preprocessing version, the datamodule's `reference_settings` (shape, value
    range, root, split seed, crop, resize) and the SHA-256 of its files' names, sizes and
    modification times (stat only: nothing is read). `reference_stats` adds the feature
    network's name and weights."""
    files = datamodule.reference_files(split)
    return reference_settings(datamodule, split) | {
        "files_sha256": files_sha256(files),
        "num_files": len(files),
    }


def reference_settings(datamodule, split: str) -> dict:
    """The configured part of `reference_key`: what the user chose, not what the files hold."""
    return {
        "preprocessing": PREPROCESSING_VERSION,
        "dataset": dataset_name(datamodule),
        "split": split,
        **datamodule.reference_settings(),
    }


def files_sha256(paths: list[str | Path]) -> str:
    """SHA-256 over each file's path, size and modification time (ns); "missing" for none."""
    digest = hashlib.sha256()
    for path in paths:
        try:
            stat = os.stat(path)
            line = f"{path}\t{stat.st_size}\t{stat.st_mtime_ns}\n"
        except FileNotFoundError:
            line = f"{path}\tmissing\n"
        digest.update(line.encode())
    return digest.hexdigest()


def cache_name(datamodule, split: str, features: str) -> str:
    """`<dataset>-<split>-<size>-<features>-<digest>`, e.g. `digits-test-8-digits-5be3a1c2`; the
    digest covers `reference_settings`, so two folders or channel counts never share a file."""
    settings = reference_settings(datamodule, split)
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:8]
    return f"{settings['dataset']}-{split}-{datamodule.image_size}-{features}-{digest}"


def dataset_name(datamodule) -> str:
    """The dataset's short name, as results.json reports it (`digits`, `cifar10`, ...)."""
    return type(datamodule).__name__.removesuffix("DataModule").lower()


def reference_for(
    datamodule,
    split: str,
    extractor: FeatureExtractor,
    cache_dir: str | os.PathLike,
    batch_size: int = 250,
    prc: PRCSettings | None = None,
    progress: bool = False,
) -> ReferenceStats:
    """Statistics of `split` read without augmentation (`reference_dataset`), cached in
    `cache_dir` as `cache_name` under `reference_key`; computed when missing or stale. With
    `prc`, they hold the features of its `num_reference` subset images (seed `prc.seed`).
    The datamodule's `prepare_data` must have run. `progress`: a bar over the images read."""
    return reference_stats(
        cache_name(datamodule, split, extractor.name),
        functools.partial(datamodule.reference_dataset, split),
        extractor,
        cache_dir,
        key=reference_key(datamodule, split),
        batch_size=batch_size,
        num_pr_features=0 if prc is None else prc.num_reference,
        pr_seed=0 if prc is None else prc.seed,
        progress=progress,
    )
