"""Scores of several sample sets, one per seed, and their spread across seeds.

EDM (Karras et al. 2022) reports the minimum FID of three seeds, most papers the mean; both are
reported, with the standard deviation that says how much a single set can be trusted.
"""

import numpy as np


def across_seeds(per_seed: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    """{"min": ..., "mean": ..., "std": ...} of each score over the seeds' score dicts; std is
    the sample standard deviation (divided by n - 1), computed in float64."""
    if len(per_seed) < 2:
        raise ValueError(f"a spread across seeds needs at least 2 sample sets, got {len(per_seed)}")
    values = {name: np.array([s[name] for s in per_seed], np.float64) for name in per_seed[0]}
    return {
        "min": {name: float(v.min()) for name, v in values.items()},
        "mean": {name: float(v.mean()) for name, v in values.items()},
        "std": {name: float(v.std(ddof=1)) for name, v in values.items()},
    }
