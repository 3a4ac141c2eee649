"""Feature networks by the name `features=` selects, and the metric names they give."""

import os

from diffusion_lab.errors import ConfigError
from diffusion_lab.metrics.features import FeatureExtractor
from diffusion_lab.metrics.inception import InceptionFeatures
from diffusion_lab.metrics.small_nets import SmallNetFeatures

FEATURE_EXTRACTORS = ("inception", "fmnist", "digits")


def build_feature_extractor(
    name: str, inception_weights: str | os.PathLike | None = None
) -> FeatureExtractor:
    """`inception` (the standard FID network) or a small classifier (`fmnist`, `digits`)."""
    if name == "inception":
        return InceptionFeatures(inception_weights)
    if name in FEATURE_EXTRACTORS:
        return SmallNetFeatures(name)
    raise ConfigError(f"features={name!r} is not known; allowed: {list(FEATURE_EXTRACTORS)}")


def metric_key(metric: str, features: str) -> str:
    """`fid` with Inception features, `fid_fmnist` with the Fashion-MNIST net, and so on."""
    return metric if features == "inception" else f"{metric}_{features}"
