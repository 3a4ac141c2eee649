"""The discrete-time samplers (ancestral DDPM, DDIM and its inversion): one function per paper
algorithm, in the style of k-diffusion's sampling.py; the σ-solvers are in `solvers`.

Each takes a `Denoiser` (the network seen through the diffusion whose constants the sampler
walks) and the starting noise `x` [N, C, H, W], and returns the sample. `callback(t, x_t,
pred_xstart)` sees each step, t the original timestep; `generator` draws all noise after x.
"""

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import torch
from rich.progress import track


@dataclass
class Denoiser:
    """The network's predictions at (x_t, t), t an index of `diffusion` (spaced or not).

    Everything goes through `diffusion.p_mean_variance`, so ε-, x0- and v-prediction networks
    and learned variances all work; `model(x_t, t, **model_kwargs)` always gets original integer
    timesteps. `cond_fn(x, t, **model_kwargs)` is ADM's classifier gradient s·∇log p(y|x_t)
    (Dhariwal & Nichol 2021): ancestral steps shift the mean by Σ·cond_fn (Algorithm 1), the
    others use the score form ε̂ ← ε̂ − √(1−ᾱ_t)·cond_fn (Algorithm 2).
    """

    model: Callable[..., torch.Tensor]
    diffusion: Any
    clip_denoised: bool = True
    model_kwargs: dict | None = None
    cond_fn: Callable[..., torch.Tensor] | None = None

    def __call__(self, x: torch.Tensor, t: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(x̂_0, ε̂), guided in score form."""
        t = _batch(t, x)
        out = self._p_mean_variance(x, t)
        if self.cond_fn is not None:
            out = self.diffusion.condition_score(
                self.cond_fn, out, x, t, model_kwargs=self.model_kwargs
            )
        return out["pred_xstart"], self.diffusion._predict_eps_from_xstart(x, t, out["pred_xstart"])

    def posterior(self, x: torch.Tensor, t: int) -> dict[str, torch.Tensor]:
        """p_θ(x_{t−1} | x_t) as p_mean_variance's dict, the mean guided."""
        t = _batch(t, x)
        out = self._p_mean_variance(x, t)
        if self.cond_fn is not None:
            out["mean"] = self.diffusion.condition_mean(
                self.cond_fn, out, x, t, model_kwargs=self.model_kwargs
            )
        return out

    def _p_mean_variance(self, x: torch.Tensor, t: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.diffusion.p_mean_variance(
            self.model, x, t, clip_denoised=self.clip_denoised, model_kwargs=self.model_kwargs
        )


def sample_ddpm(denoiser: Denoiser, x, *, generator=None, progress=False, callback=None):
    """Ancestral sampling (Ho et al. 2020, Algorithm 2) over every step of the diffusion.

    A SpacedDiffusion gives fewer steps (Improved DDPM §4); the variance is the model's: fixed
    β_t or β̃_t, or learned (Improved DDPM §3.1).
    """
    diffusion = denoiser.diffusion
    timesteps = _original_timesteps(diffusion)
    for i in _steps(range(diffusion.num_timesteps - 1, -1, -1), progress, "ddpm"):
        out = denoiser.posterior(x, i)
        if callback is not None:
            callback(timesteps[i], x, out["pred_xstart"])
        x = out["mean"]
        if i > 0:
            x = x + torch.exp(0.5 * out["log_variance"]) * _randn_like(x, generator)
    return x


def ddim_sigmas(alphas_cumprod: torch.Tensor, alphas_cumprod_prev: torch.Tensor, eta: float):
    """DDIM eq. 16: σ_t(η) = η·√((1−ᾱ_{t−1})/(1−ᾱ_t))·√(1−ᾱ_t/ᾱ_{t−1}); η = 1 is DDPM's σ̃_t."""
    return (
        eta
        * torch.sqrt((1 - alphas_cumprod_prev) / (1 - alphas_cumprod))
        * torch.sqrt(1 - alphas_cumprod / alphas_cumprod_prev)
    )


def sample_ddim(denoiser: Denoiser, x, *, eta=0.0, generator=None, progress=False, callback=None):
    """DDIM (Song et al. 2021, eq. 12) over every step of the (spaced) diffusion.

    η = 0 is the deterministic implicit model, η = 1 ancestral sampling with the posterior
    variance σ̃_t.
    """
    diffusion = denoiser.diffusion
    timesteps = _original_timesteps(diffusion)
    sigmas = ddim_sigmas(diffusion.alphas_cumprod, diffusion.alphas_cumprod_prev, eta).tolist()
    alphas_cumprod_prev = diffusion.alphas_cumprod_prev.tolist()
    for i in _steps(range(diffusion.num_timesteps - 1, -1, -1), progress, "ddim"):
        pred_xstart, eps = denoiser(x, i)
        if callback is not None:
            callback(timesteps[i], x, pred_xstart)
        # eq. 12: x_{t−1} = √ᾱ_{t−1}·x̂_0 + √(1 − ᾱ_{t−1} − σ_t²)·ε̂ + σ_t·z
        abar_prev, sigma = alphas_cumprod_prev[i], sigmas[i]
        x = math.sqrt(abar_prev) * pred_xstart + math.sqrt(1 - abar_prev - sigma**2) * eps
        if sigma > 0:
            x = x + sigma * _randn_like(x, generator)
    return x


def reverse_ddim(denoiser: Denoiser, x, *, progress=False, callback=None):
    """DDIM inversion (Song et al. 2021, §4.3): eq. 12 with η = 0 run from the image up.

    Walks the levels image → t_0 → … → t_{S−1} of the (spaced) diffusion, the mirror of
    `sample_ddim`'s, with ε̂ taken at the current level (explicit Euler on the ODE; at the image
    itself, ε̂ of the lowest timestep). Returns x at t_{S−1}, the DDIM latent.
    """
    diffusion = denoiser.diffusion
    timesteps = _original_timesteps(diffusion)
    alphas_cumprod = diffusion.alphas_cumprod.tolist()
    for i in _steps(range(diffusion.num_timesteps), progress, "ddim reverse"):
        level = max(i - 1, 0)
        pred_xstart, eps = denoiser(x, level)
        if callback is not None:
            callback(timesteps[level], x, pred_xstart)
        x = math.sqrt(alphas_cumprod[i]) * pred_xstart + math.sqrt(1 - alphas_cumprod[i]) * eps
    return x


def _original_timesteps(diffusion) -> list[int]:
    """The base process's timestep for each index of `diffusion` (identity when not respaced)."""
    timestep_map = getattr(diffusion, "timestep_map", None)
    if timestep_map is None:
        return list(range(diffusion.num_timesteps))
    return [int(t) for t in timestep_map]


def _batch(t: int, x: torch.Tensor) -> torch.Tensor:
    return torch.full((x.shape[0],), t, device=x.device, dtype=torch.long)


def _randn_like(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    return torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)


def _steps(steps: Iterable[int], progress: bool, name: str) -> Iterable[int]:
    return track(steps, description=name, disable=not progress)
