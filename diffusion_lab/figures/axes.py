"""Axis choices shared by the plots."""

from collections.abc import Sequence

WIDE = 3.0  # a positive range wider than this factor reads better on a log axis


def value_scale(values: Sequence[float]) -> str:
    """ "log" for positive values spanning more than `WIDE`× (FID from 4 to 40), else "linear"."""
    finite = [v for v in values if v == v]
    if not finite or min(finite) <= 0 or max(finite) / min(finite) <= WIDE:
        return "linear"
    return "log"
