"""Scoring a set of generated images: the `metrics=` names, features in batches, the scores."""

from collections.abc import Iterable
from dataclasses import asdict

import numpy as np
import torch

from diffusion_lab.metrics import (
    FeatureExtractor,
    Features,
    PRCSettings,
    ReferenceStats,
    compute_metrics,
    extract_features,
    inception_score,
    metric_key,
    subset_precision_recall,
)
from diffusion_lab.progress import Bar, counted

# What each sample metric of `metrics=[...]` reports (`nll` is the likelihood, not a sample metric).
SAMPLE_METRICS = {"fid": ("fid",), "kid": ("kid",), "is": ("is",), "prc": ("precision", "recall")}


def scores_of(selected: Iterable[str]) -> list[str]:
    """The `compute_metrics` names for selected `metrics=` entries: prc -> precision, recall."""
    return [name for metric in selected for name in SAMPLE_METRICS.get(metric, ())]


def image_features(
    images: np.ndarray, extractor: FeatureExtractor, batch_size: int = 250, progress: bool = False
) -> Features:
    """Features of uint8 images [N, H, W, C] (the `.npz` layout of the ADM evaluator);
    `progress`: a bar over the images."""
    pixels = torch.from_numpy(images).permute(0, 3, 1, 2)
    bar = Bar("sample features", len(pixels), "images") if progress else None
    features = Features.cat(
        list(extract_features(extractor, counted(pixels.split(batch_size), bar)))
    )
    if bar is not None:
        bar.close()
    return features


def score(
    generated: Features,
    reference: ReferenceStats | None,
    names: list[str],
    features: str,
    prc: PRCSettings,
) -> tuple[dict[str, float], dict | None]:
    """{"fid": ..., "kid": ..., "kid_std": ..., "is": ..., "precision": ..., "recall": ...} for
    `names`, suffixed by the
    feature network unless it is Inception, and what precision/recall compared (sizes, k, seed;
    None without them). The Inception Score needs no reference."""
    if reference is None:  # only the Inception Score was asked for
        return {metric_key("is", features): inception_score(generated.logits)[0]}, None
    scores = compute_metrics(generated, reference, [n for n in names if n in ("fid", "kid", "is")])
    scores.pop(metric_key("is_std", features), None)
    if "precision" not in names:
        return scores, None
    result = subset_precision_recall(generated.features, reference, prc)
    scores[metric_key("precision", features)] = result.precision
    scores[metric_key("recall", features)] = result.recall
    return scores, asdict(result.compared)
