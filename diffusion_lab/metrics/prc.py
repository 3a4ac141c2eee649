"""Kynkäänniemi et al.'s (2019) protocol for precision/recall: seeded random subsets, their sizes.

The k-NN radii depend on how many features each side has, so the sizes are part of the result:
the paper compares 50,000 generated with 50,000 real images' features, k = 3. Both sets are
uniform random subsets (seeded), never a prefix: datasets are often stored sorted by class.
"""

import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import torch

from diffusion_lab.errors import ConfigError
from diffusion_lab.metrics.scores import precision_recall

if TYPE_CHECKING:
    from diffusion_lab.metrics.reference import ReferenceStats

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PRCSettings:
    """How many features of each side precision/recall compare, k and the subsets' seed."""

    num_reference: int = 50_000
    num_generated: int = 50_000
    k: int = 3
    seed: int = 0

    @classmethod
    def from_config(cls, options: Mapping[str, Any], key: str) -> "PRCSettings":
        """Checked settings from a config node (`key` names it in errors, e.g. metrics.prc)."""
        unknown = set(options) - set(cls.__dataclass_fields__)
        if unknown:
            allowed = ", ".join(cls.__dataclass_fields__)
            raise ConfigError(f"{key}.{sorted(unknown)[0]} is not an option; allowed: {allowed}")
        settings = cls(**options)
        for name, value in asdict(settings).items():
            least = 0 if name == "seed" else 1
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ConfigError(f"{key}.{name}={value!r} must be an integer >= {least}")
        return settings


PAPER_PRC = PRCSettings()  # Kynkäänniemi et al.'s: 50,000 vs 50,000 features, k = 3


@dataclass(frozen=True)
class PrecisionRecall:
    """The scores and what they compared: the sizes used (capped by what exists), k and seed."""

    precision: float
    recall: float
    compared: PRCSettings


def random_subset(num_total: int, num: int, seed: int) -> torch.Tensor:
    """Indices of a uniform random `num`-subset of range(num_total), in random order: the first
    `num` of a seeded permutation, so a larger subset of the same seed contains a smaller one."""
    return torch.randperm(num_total, generator=torch.Generator().manual_seed(seed))[:num]


def subset_precision_recall(
    generated: torch.Tensor, reference: "ReferenceStats", settings: PRCSettings
) -> PrecisionRecall:
    """Precision/recall of `settings.num_generated` generated features [N, D] (a seeded random
    subset when there are more) against `settings.num_reference` reference features.

    `reference.features` [M, D] are the features of `random_subset(reference.num_samples, M,
    reference.pr_seed)`, in that order, so their first rows are a random subset too. Each side is
    capped by what exists (a split of 10,000 gives 10,000), never by what a cache happens to
    hold: too few cached features raise ValueError.
    """
    num_reference = min(settings.num_reference, reference.num_samples)
    if not reference.holds_pr_subset(num_reference, settings.seed):
        raise ValueError(
            f"precision/recall needs {num_reference} reference features of subset seed "
            f"{settings.seed}; the statistics hold {len(reference.features)} of seed "
            f"{reference.pr_seed}: compute them with num_pr_features={num_reference}, "
            f"pr_seed={settings.seed}"
        )
    num_generated = min(settings.num_generated, len(generated))
    if min(num_generated, num_reference) <= settings.k:
        raise ConfigError(
            f"precision/recall with k={settings.k} needs more than {settings.k} features on each "
            f"side, got {num_generated} generated and {num_reference} reference"
        )
    if num_generated != num_reference:
        log.warning(
            "precision/recall compare %d generated with %d reference features; the paper "
            "compares equally many (set num_generated and num_reference alike)",
            num_generated,
            num_reference,
        )
    if num_generated < len(generated):
        generated = generated[random_subset(len(generated), num_generated, settings.seed)]
    real = torch.from_numpy(reference.features[:num_reference]).to(generated.device)
    precision, recall = precision_recall(generated, real, k=settings.k)
    compared = PRCSettings(num_reference, num_generated, settings.k, settings.seed)
    return PrecisionRecall(precision, recall, compared)
