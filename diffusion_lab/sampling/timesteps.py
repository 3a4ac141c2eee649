"""Timestep spacings: which trained timesteps a sampler visits, kept apart from the solvers.

Every spacing returns distinct integer timesteps of the base schedule in sampling order
(descending), so the network is only ever called at a timestep it was trained on; the solvers
take their coefficients from the exact ᾱ of those timesteps.
"""

import math

import numpy as np

from diffusion_lab.diffusion import SpacedDiffusion, space_timesteps
from diffusion_lab.sampling.sigma import DiscreteSchedule


def respace(diffusion, timesteps: list[int]) -> SpacedDiffusion:
    """`diffusion` restricted to `timesteps` (Improved DDPM §4), with the same output types."""
    return SpacedDiffusion(
        set(timesteps),
        betas=np.asarray(diffusion.betas, dtype=np.float64),
        model_mean_type=diffusion.model_mean_type,
        model_var_type=diffusion.model_var_type,
        loss_type=diffusion.loss_type,
        rescale_timesteps=diffusion.rescale_timesteps,
    )


def ancestral_timesteps(num_timesteps: int, steps: int) -> list[int]:
    """Improved DDPM's even spacing (§4): `steps` timesteps from T−1 down to 0, rounded."""
    return sorted(space_timesteps(num_timesteps, str(steps)), reverse=True)


def ddim_timesteps(num_timesteps: int, steps: int, spacing: str = "uniform") -> list[int]:
    """DDIM's spacings (Song et al. 2021, App. D.2).

    uniform: every k-th timestep from 0 (improved-diffusion's "ddimN"), or the even rounded
    spacing when no integer stride gives exactly `steps`; quadratic: ⌊(i·√(0.8T)/(N−1))²⌋ as in
    the DDIM repository, with its repeated small timesteps moved up so that all N are distinct.
    """
    if spacing == "quadratic":
        grid = np.linspace(0, math.sqrt(0.8 * num_timesteps), steps) ** 2
        return _distinct(np.floor(grid[::-1]), num_timesteps)
    try:
        kept = space_timesteps(num_timesteps, f"ddim{steps}")
    except ValueError:
        kept = space_timesteps(num_timesteps, str(steps))
    return sorted(kept, reverse=True)


def dpm_solver_timesteps(alphas_cumprod: np.ndarray, steps: int, skip: str = "logSNR") -> list[int]:
    """DPM-Solver's step grid (Lu et al. 2022a, §3.3), rounded to trained timesteps.

    `steps`+1 points uniform in logSNR λ = log(α_t/σ_t) (skip="logSNR") or in t
    ("time_uniform") from t = T−1 to t = 0; the first `steps` are the evaluation points and the
    solver's last step goes to clean data (σ = 0) instead of the final grid point.
    """
    num_timesteps = len(alphas_cumprod)
    if skip == "time_uniform":
        grid = np.linspace(num_timesteps - 1, 0, steps + 1)
    else:
        log_snr = np.log(alphas_cumprod) - np.log1p(-alphas_cumprod)  # 2λ, decreasing in t
        targets = np.linspace(log_snr[-1], log_snr[0], steps + 1)
        grid = np.interp(targets, log_snr[::-1], np.arange(num_timesteps)[::-1])
    return _distinct(np.round(grid[:steps]), num_timesteps)


def karras_timesteps(alphas_cumprod: np.ndarray, steps: int, rho: float = 7.0) -> list[int]:
    """EDM's noise levels (Karras et al. 2022, eq. 5) snapped to the nearest trained timestep.

    σ_i = (σ_max^{1/ρ} + i/(N−1)·(σ_min^{1/ρ} − σ_max^{1/ρ}))^ρ between the trained extremes
    σ(T−1) and σ(0) of the VP schedule, σ_t = √((1−ᾱ_t)/ᾱ_t); rounded in log σ.
    """
    sigmas = np.sqrt((1 - alphas_cumprod) / alphas_cumprod)
    ramp = np.linspace(0, 1, steps)
    inv_max, inv_min = sigmas[-1] ** (1 / rho), sigmas[0] ** (1 / rho)
    levels = (inv_max + ramp * (inv_min - inv_max)) ** rho
    grid = np.interp(np.log(levels), np.log(sigmas), np.arange(len(sigmas)))
    return _distinct(np.round(grid), len(sigmas))


def _distinct(timesteps: np.ndarray, num_timesteps: int) -> list[int]:
    """Descending integers made strictly decreasing within [0, T−1].

    Where a grid is denser than one timestep, rounding repeats a timestep; each repeat moves up
    to the next free timestep, so the sampler still makes (and counts) every requested step.
    """
    count = len(timesteps)
    ts = [min(max(int(t), count - 1 - i), num_timesteps - 1 - i) for i, t in enumerate(timesteps)]
    for i in range(count - 2, -1, -1):
        ts[i] = max(ts[i], ts[i + 1] + 1)
    return ts


def karras_sigmas(sigma_min: float, sigma_max: float, steps: int, rho: float = 7.0) -> np.ndarray:
    """EDM's noise levels (Karras et al. 2022, eq. 5), exact: σ_i for i = 0..N−1, descending,
    with σ_0 = σ_max and σ_{N−1} = σ_min to the last bit (a discrete process's trained ends)."""
    ramp = np.linspace(0, 1, steps)
    inv_max, inv_min = sigma_max ** (1 / rho), sigma_min ** (1 / rho)
    levels = (inv_max + ramp * (inv_min - inv_max)) ** rho
    levels[0], levels[-1] = sigma_max, (sigma_min if steps > 1 else sigma_max)
    return levels


def noise_levels(view, steps: int, skip: str = "logSNR", rho: float = 7.0) -> list[float]:
    """The σ an ODE/SDE solver walks: `steps` descending levels of `view`, then 0.

    karras: eq. 5 between view.sigma_min and view.sigma_max, at exact (fractional) levels.
    logSNR / time_uniform: for a discrete process (a view with `alphas_cumprod`) the trained
    timesteps of `dpm_solver_timesteps`, so the network sees the timesteps it was trained on;
    otherwise uniform in λ = −log σ, or in σ (EDM's time, σ(t) = t).
    """
    alphas_cumprod = getattr(view, "alphas_cumprod", None)
    if skip == "karras":
        levels = karras_sigmas(view.sigma_min, view.sigma_max, steps, rho)
    elif alphas_cumprod is not None:
        timesteps = dpm_solver_timesteps(np.asarray(alphas_cumprod, dtype=np.float64), steps, skip)
        levels = DiscreteSchedule(alphas_cumprod).sigmas[timesteps].numpy()
    elif skip == "logSNR":
        levels = np.exp(np.linspace(math.log(view.sigma_max), math.log(view.sigma_min), steps))
    else:
        levels = np.linspace(view.sigma_max, view.sigma_min, steps)
    return [float(s) for s in levels] + [0.0]
