"""Noise schedules β_1..β_T (float64), indexed 0..T−1 as in improved-diffusion."""

import math
from collections.abc import Callable

import numpy as np

from diffusion_lab.errors import ConfigError

SCHEDULES = ("linear", "cosine", "sigmoid")
MAX_BETA = 0.999


def get_named_beta_schedule(name: str, num_timesteps: int) -> np.ndarray:
    """β_t of a named schedule: float64 array [num_timesteps].

    linear: Ho et al. 2020, β from 1e-4 to 0.02 over T=1000, both ends scaled by 1000/T so that
        the process looks the same for any T (improved-diffusion).
    cosine: Nichol & Dhariwal 2021, eq. 17: ᾱ(t) = cos²(((t/T + s)/(1 + s))·π/2), s = 0.008.
    sigmoid: Jabri et al. 2022 (Fig. 8), as in lucidrains' denoising-diffusion-pytorch:
        ᾱ(t) = (σ(e/τ) − σ((t/T·(e − s) + s)/τ)) / (σ(e/τ) − σ(s/τ)), s = −3, e = 3, τ = 1.
    Both ᾱ schedules give β_t = 1 − ᾱ(t+1)/ᾱ(t), clipped to [0, 0.999] (ᾱ(T) = 0 would give 1).
    """
    if name not in SCHEDULES:
        raise ConfigError(f"schedule={name!r} is not a known beta schedule; allowed: {SCHEDULES}")
    if int(num_timesteps) < 1:
        raise ConfigError(f"num_timesteps={num_timesteps} must be a positive integer")
    if name == "linear":
        if num_timesteps <= 20:
            raise ConfigError(
                f"num_timesteps={num_timesteps}: the linear schedule needs more than 20 steps "
                f"(its last beta, 0.02·1000/T, must stay below 1)"
            )
        scale = 1000 / num_timesteps
        return np.linspace(scale * 1e-4, scale * 0.02, num_timesteps, dtype=np.float64)
    if name == "cosine":
        return betas_for_alpha_bar(num_timesteps, _cosine_alpha_bar)
    return betas_for_alpha_bar(num_timesteps, _sigmoid_alpha_bar)


def betas_for_alpha_bar(
    num_timesteps: int, alpha_bar: Callable[[np.ndarray], np.ndarray], max_beta: float = MAX_BETA
) -> np.ndarray:
    """β_t = 1 − ᾱ((t+1)/T)/ᾱ(t/T), clipped to [0, max_beta] (Nichol & Dhariwal 2021, §3.2)."""
    grid = alpha_bar(np.arange(num_timesteps + 1, dtype=np.float64) / num_timesteps)
    return np.clip(1 - grid[1:] / grid[:-1], 0.0, max_beta)


def _cosine_alpha_bar(t: np.ndarray, s: float = 0.008) -> np.ndarray:
    return np.cos((t + s) / (1 + s) * math.pi / 2) ** 2


def _sigmoid_alpha_bar(t: np.ndarray, start=-3.0, end=3.0, tau=1.0) -> np.ndarray:
    def sigmoid(z):
        return 1 / (1 + np.exp(-z))

    v_start, v_end = sigmoid(start / tau), sigmoid(end / tau)
    return (v_end - sigmoid((t * (end - start) + start) / tau)) / (v_end - v_start)
