"""`sample`: the one entry point that checks a sampler configuration, spaces its timesteps and
runs it, counting network evaluations (NFE) and optionally keeping the trajectory."""

import math
import numbers
from dataclasses import dataclass

import numpy as np
import torch

from diffusion_lab.errors import ConfigError
from diffusion_lab.sampling.samplers import (
    Denoiser,
    reverse_ddim,
    sample_ddim,
    sample_ddpm,
    sample_dpm_solver,
    sample_heun,
)
from diffusion_lab.sampling.timesteps import (
    ancestral_timesteps,
    ddim_timesteps,
    dpm_solver_timesteps,
    karras_timesteps,
    respace,
)

# Each sampler's options (beyond steps, eta and clip_denoised) with their defaults.
SAMPLER_OPTIONS: dict[str, dict[str, object]] = {
    "ddpm": {},
    "ddim": {"spacing": "uniform"},
    "dpm_solver": {"skip": "logSNR"},
    "heun": {"s_churn": 0.0, "s_tmin": 0.0, "s_tmax": math.inf, "s_noise": 1.0, "rho": 7.0},
}
_CHOICES = {"spacing": ("uniform", "quadratic"), "skip": ("logSNR", "time_uniform")}


@dataclass
class SampleOutput:
    """images [N,C,H,W] (in [−1, 1] when clip_denoised); nfe: network evaluations per image batch;
    trajectory: every `trajectory_every`-th step's "t" [K] (original timesteps), "x_t" and
    "pred_xstart" [K,N,C,H,W] on the CPU, or None."""

    images: torch.Tensor
    nfe: int
    trajectory: dict[str, torch.Tensor] | None = None


@torch.no_grad()
def sample(
    model,
    diffusion,
    shape,
    sampler: str = "ddim",
    steps: int = 50,
    eta: float = 0.0,
    noise: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    clip_denoised: bool = True,
    model_kwargs: dict | None = None,
    progress: bool = False,
    return_trajectory: bool = False,
    cond_fn=None,
    **sampler_options,
) -> SampleOutput:
    """Draws `shape` samples from `model` with the named sampler in `steps` steps.

    `diffusion` is the training run's base (unspaced) GaussianDiffusion; the samplers respace it.
    `model(x_t, t, **model_kwargs)` gets original integer timesteps (any wrapper with that call,
    e.g. classifier-free guidance, works). Noise comes from `generator` (on the samples' device),
    so a seed fixes the samples on a given device; `noise` fixes x_T. Options per sampler are in
    `SAMPLER_OPTIONS`, plus `trajectory_every` (default 1). NFE: ddpm, ddim and dpm_solver
    `steps`, heun 2·steps − 1. Raises ConfigError for a bad name, steps or option.
    """
    options = validate_sampler(
        sampler, steps, diffusion.num_timesteps, eta, clip_denoised, **sampler_options
    )
    _check_unspaced(diffusion)
    every = options.pop("trajectory_every")
    counted = CountingModel(model)
    trajectory = Trajectory(every) if return_trajectory else None
    if noise is None:
        device = _device(model, generator)
        noise = torch.randn(tuple(shape), generator=generator, device=device).to(_dtype(model))
    elif tuple(noise.shape) != tuple(shape):
        raise ValueError(f"noise has shape {tuple(noise.shape)}, expected {tuple(shape)}")
    run = {"progress": progress, "callback": trajectory}
    alphas_cumprod = np.asarray(diffusion.alphas_cumprod, dtype=np.float64)
    num_timesteps = diffusion.num_timesteps

    def denoiser(process):
        return Denoiser(counted, process, clip_denoised, model_kwargs, cond_fn)

    if sampler == "ddpm":
        spaced = respace(diffusion, ancestral_timesteps(num_timesteps, steps))
        x = sample_ddpm(denoiser(spaced), noise, generator=generator, **run)
    elif sampler == "ddim":
        spaced = respace(diffusion, ddim_timesteps(num_timesteps, steps, options["spacing"]))
        x = sample_ddim(denoiser(spaced), noise, eta=eta, generator=generator, **run)
    elif sampler == "dpm_solver":
        timesteps = dpm_solver_timesteps(alphas_cumprod, steps, options["skip"])
        x = sample_dpm_solver(denoiser(diffusion), noise, timesteps, **run)
    else:
        timesteps = karras_timesteps(alphas_cumprod, steps, options.pop("rho"))
        x = sample_heun(
            denoiser(diffusion), noise, timesteps, generator=generator, **options, **run
        )
    images = x.clamp(-1, 1) if clip_denoised else x
    return SampleOutput(images, counted.nfe, trajectory.result() if trajectory else None)


@torch.no_grad()
def ddim_reverse(
    model,
    diffusion,
    x_start: torch.Tensor,
    steps: int = 50,
    *,
    spacing: str = "uniform",
    clip_denoised: bool = False,
    model_kwargs: dict | None = None,
    progress: bool = False,
    return_trajectory: bool = False,
    trajectory_every: int = 1,
) -> SampleOutput:
    """Encodes images x_start into DDIM latents x_T (η = 0 run forward, Song et al. 2021 §4.3).

    `images` of the result holds the latents; `sample(model, diffusion, shape, "ddim", steps,
    spacing=spacing, noise=latents, clip_denoised=False)` decodes them, so reconstruction and
    latent interpolation work. NFE = steps.
    """
    validate_sampler(
        "ddim", steps, diffusion.num_timesteps, spacing=spacing, trajectory_every=trajectory_every
    )
    _check_unspaced(diffusion)
    counted = CountingModel(model)
    trajectory = Trajectory(trajectory_every) if return_trajectory else None
    spaced = respace(diffusion, ddim_timesteps(diffusion.num_timesteps, steps, spacing))
    denoiser = Denoiser(counted, spaced, clip_denoised, model_kwargs)
    latents = reverse_ddim(denoiser, x_start, progress=progress, callback=trajectory)
    return SampleOutput(latents, counted.nfe, trajectory.result() if trajectory else None)


def validate_sampler(
    sampler: str,
    steps: int,
    num_timesteps: int,
    eta: float = 0.0,
    clip_denoised: bool = True,
    **options,
) -> dict[str, object]:
    """Checks a sampler configuration (e.g. conf/sampler/*.yaml's keys) before any sampling.

    Returns the sampler's options with their defaults filled in. Raises ConfigError naming the
    key (sampler.name, sampler.steps, sampler.<option>) and the allowed values.
    """
    if sampler not in SAMPLER_OPTIONS:
        raise ConfigError(
            f"sampler.name={sampler!r} is not a sampler; "
            f"choose one of: {', '.join(SAMPLER_OPTIONS)}"
        )
    integral = isinstance(steps, numbers.Integral) and not isinstance(steps, bool)
    if not integral or not 1 <= steps <= num_timesteps:
        raise ConfigError(
            f"sampler.steps={steps!r} must be an integer from 1 to the schedule's "
            f"num_timesteps={num_timesteps}"
        )
    if not 0 <= eta <= 1 or (eta != 0 and sampler != "ddim"):
        raise ConfigError(f"sampler.eta={eta!r}: ddim takes 0 <= eta <= 1; other samplers 0")
    if not isinstance(clip_denoised, bool):
        raise ConfigError(f"sampler.clip_denoised={clip_denoised!r} must be true or false")
    allowed = {**SAMPLER_OPTIONS[sampler], "trajectory_every": 1}
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ConfigError(
            f"sampler.{unknown[0]} is not an option of {sampler}; its options: "
            f"steps, clip_denoised, {', '.join(allowed)}{', eta' if sampler == 'ddim' else ''}"
        )
    resolved = {**allowed, **options}
    for key, value in resolved.items():
        if key in _CHOICES and value not in _CHOICES[key]:
            raise ConfigError(f"sampler.{key}={value!r}; choose one of: {', '.join(_CHOICES[key])}")
        if key in _NUMBERS and not _NUMBERS[key][0](value):
            raise ConfigError(f"sampler.{key}={value!r} must be {_NUMBERS[key][1]}")
    return resolved


def validate_sampler_config(sampler: dict, num_timesteps: int) -> dict[str, object]:
    """`validate_sampler` for a `sampler=` config group (its `name` key names the sampler)."""
    options = dict(sampler)
    return validate_sampler(options.pop("name", None), num_timesteps=num_timesteps, **options)


def _real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


_NUMBERS = {
    "trajectory_every": (lambda v: _real(v) and v == int(v) >= 1, "an integer >= 1"),
    "s_churn": (lambda v: _real(v) and v >= 0, "a number >= 0"),
    "s_tmin": (lambda v: _real(v) and v >= 0, "a number >= 0"),
    "s_tmax": (lambda v: _real(v) and v >= 0, "a number >= 0"),
    "s_noise": (lambda v: _real(v) and v >= 0, "a number >= 0"),
    "rho": (lambda v: _real(v) and v > 0, "a number > 0"),
}


class CountingModel:
    """The network, counting its evaluations (NFE: one per call on the whole batch)."""

    def __init__(self, model):
        self.model = model
        self.nfe = 0

    def __call__(self, x: torch.Tensor, t: torch.Tensor, **kwargs) -> torch.Tensor:
        self.nfe += 1
        return self.model(x, t, **kwargs)


class Trajectory:
    """Keeps every `every`-th step's (t, x_t, pred_xstart), on the CPU, for denoising strips."""

    def __init__(self, every: int = 1):
        self.every = every
        self.steps = 0
        self.kept: dict[str, list] = {"t": [], "x_t": [], "pred_xstart": []}

    def __call__(self, t: int, x_t: torch.Tensor, pred_xstart: torch.Tensor) -> None:
        if self.steps % self.every == 0:
            self.kept["t"].append(t)
            self.kept["x_t"].append(x_t.detach().cpu())
            self.kept["pred_xstart"].append(pred_xstart.detach().cpu())
        self.steps += 1

    def result(self) -> dict[str, torch.Tensor]:
        return {
            "t": torch.tensor(self.kept["t"], dtype=torch.long),
            "x_t": torch.stack(self.kept["x_t"]),
            "pred_xstart": torch.stack(self.kept["pred_xstart"]),
        }


def _check_unspaced(diffusion) -> None:
    original = getattr(diffusion, "original_num_steps", diffusion.num_timesteps)
    if original != diffusion.num_timesteps:
        raise ValueError(
            f"pass the training run's base diffusion ({original} steps), not one respaced to "
            f"{diffusion.num_timesteps}: the samplers respace it themselves"
        )


def _dtype(model) -> torch.dtype:
    """The network's parameter dtype (float64 for a 64-true run), else float32."""
    if isinstance(model, torch.nn.Module):
        return next(model.parameters(), torch.empty(0)).dtype
    return torch.float32


def _device(model, generator: torch.Generator | None) -> torch.device:
    if generator is not None:
        return generator.device
    if isinstance(model, torch.nn.Module):
        return next(model.parameters(), torch.empty(0)).device
    return torch.device("cpu")
