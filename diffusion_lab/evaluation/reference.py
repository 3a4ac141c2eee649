"""The reference images of a datamodule for FID and precision/recall, and their cache key."""

import hashlib
import json
import os
from pathlib import Path

from diffusion_lab.metrics import FeatureExtractor, ReferenceStats, reference_stats

# Settings that pick which images a split holds, beyond the dataset and resolution.
CONTENT_SETTINGS = ("root", "val_fraction", "seed")


def reference_key(datamodule, split: str) -> str:
    """`<dataset>-<split>-<resolution>-<digest>`, e.g. `digits-test-8-5be3a1c2`.

    The digest covers the data root and the held-out split's fraction and seed, so two folders
    or two digits splits never share cached statistics.
    """
    settings = {
        key: str(Path(value).resolve()) if key == "root" else value
        for key in CONTENT_SETTINGS
        if (value := getattr(datamodule, key, None)) is not None
    }
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:8]
    return f"{dataset_name(datamodule)}-{split}-{datamodule.image_size}-{digest}"


def dataset_name(datamodule) -> str:
    """The dataset's short name, as results.json reports it (`digits`, `cifar10`, ...)."""
    return type(datamodule).__name__.removesuffix("DataModule").lower()


def reference_for(
    datamodule,
    split: str,
    extractor: FeatureExtractor,
    cache_dir: str | os.PathLike,
    batch_size: int = 250,
) -> ReferenceStats:
    """Statistics of `split` read without augmentation (`reference_dataset`): cached in
    `cache_dir` under `reference_key` and the feature network's name, computed on a miss.
    The datamodule's `prepare_data` must have run."""
    return reference_stats(
        reference_key(datamodule, split),
        datamodule.reference_dataset(split),
        extractor,
        cache_dir,
        batch_size=batch_size,
    )
