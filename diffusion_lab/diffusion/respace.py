"""Diffusions over a subset of a trained process's timesteps (Nichol & Dhariwal 2021, §4)."""

from collections.abc import Iterable

import torch

from diffusion_lab.diffusion.gaussian_diffusion import GaussianDiffusion
from diffusion_lab.errors import ConfigError

FORMS = "'N', 'ddimN', 'N1,N2,...' or a list of ints"


def space_timesteps(num_timesteps: int, section_counts: str | Iterable[int]) -> set[int]:
    """The timesteps to keep out of `num_timesteps` (improved-diffusion's respacing).

    "ddimN": every k-th step from 0, for the integer stride k that gives exactly N (DDIM,
    Song et al. 2021). Otherwise the steps split into len(counts) equal sections and section i
    keeps counts[i] evenly spaced steps, its first and last included (rounded): "250" or [250]
    is one section, "10,15,20" three.
    """
    if isinstance(section_counts, str) and section_counts.startswith("ddim"):
        count = _to_int(section_counts[len("ddim") :], section_counts)
        for stride in range(1, num_timesteps + 1):
            if len(range(0, num_timesteps, stride)) == count:
                return set(range(0, num_timesteps, stride))
        raise ConfigError(
            f"timestep_respacing={section_counts!r}: no integer stride gives exactly {count} "
            f"of {num_timesteps} steps; use {FORMS}"
        )
    parts = section_counts.split(",") if isinstance(section_counts, str) else section_counts
    counts = [_to_int(part, section_counts) for part in parts]
    if not counts:
        raise ConfigError(f"timestep_respacing={section_counts!r} is empty; use {FORMS}")
    size_per, extra = divmod(num_timesteps, len(counts))
    kept, start = set(), 0
    for i, count in enumerate(counts):
        size = size_per + (1 if i < extra else 0)
        if not 1 <= count <= size:
            raise ConfigError(
                f"timestep_respacing={section_counts!r}: section {i} has {size} of the "
                f"{num_timesteps} steps and cannot keep {count} (allowed 1..{size})"
            )
        stride = (size - 1) / (count - 1) if count > 1 else 1
        kept.update(start + round(j * stride) for j in range(count))
        start += size
    return kept


def _to_int(text, section_counts) -> int:
    try:
        return int(text)
    except (TypeError, ValueError):
        raise ConfigError(
            f"timestep_respacing={section_counts!r} is not understood; use {FORMS}"
        ) from None


class SpacedDiffusion(GaussianDiffusion):
    """The base diffusion of `kwargs` restricted to the timesteps `use_timesteps`.

    β'_i = 1 − ᾱ_{t_i}/ᾱ_{t_{i−1}}, so ᾱ at every kept timestep t_i equals the base's
    (Nichol & Dhariwal 2021, §4). Indices run 0..len−1; the network (and `cond_fn`) receives the
    base's timestep t_i = timestep_map[i].
    """

    _TABLES = (*GaussianDiffusion._TABLES, "timestep_map")

    def __init__(self, use_timesteps: Iterable[int], **kwargs):
        base = GaussianDiffusion(**kwargs)
        kept = sorted({int(t) for t in use_timesteps})
        if not kept or kept[0] < 0 or kept[-1] >= base.num_timesteps:
            raise ConfigError(
                f"use_timesteps must be non-empty and within [0, {base.num_timesteps - 1}]"
            )
        self.use_timesteps = set(kept)
        self.timestep_map = torch.tensor(kept, dtype=torch.long)
        alphas_cumprod = base.alphas_cumprod[self.timestep_map]
        previous = torch.cat([torch.ones(1, dtype=torch.float64), alphas_cumprod[:-1]])
        super().__init__(**{**kwargs, "betas": 1.0 - alphas_cumprod / previous})
        self.original_num_steps = base.num_timesteps

    def _model_timesteps(self, t):
        return self._rescaled(self._table("timestep_map", t.device)[t])
