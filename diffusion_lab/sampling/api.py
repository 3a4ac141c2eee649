"""`sample`: the one entry point that checks a sampler configuration, spaces its timesteps and
runs it, counting network evaluations (NFE) and optionally keeping the trajectory."""

import numbers
from dataclasses import dataclass

import torch

from diffusion_lab.errors import ConfigError
from diffusion_lab.sampling.registry import (
    NUMBER_OPTIONS,
    SAMPLERS,
    SamplerCall,
    process_kind,
    sampler_row,
)
from diffusion_lab.sampling.samplers import Denoiser, reverse_ddim
from diffusion_lab.sampling.timesteps import ddim_timesteps, respace

# Each sampler's options (beyond steps, eta and clip_denoised) with their defaults.
SAMPLER_OPTIONS: dict[str, dict[str, object]] = {
    name: dict(row.options) for name, row in SAMPLERS.items()
}


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

    `diffusion` is the training run's process: a base (unspaced) GaussianDiffusion, which the
    samplers respace, or any process of a kind the sampler's row supports (`registry`).
    `model(x_t, t, **model_kwargs)` gets original timesteps: integers, except where a σ-solver
    visits a level between trained steps (heun's and `skip=karras` levels), where t is real
    (any wrapper with that call, e.g. classifier-free guidance, works). Noise comes from
    `generator` (on the samples' device), so a seed fixes the samples on a given device; `noise`
    fixes x_T. Options per sampler are in `SAMPLER_OPTIONS`, plus `trajectory_every` (default
    1); NFE is the row's (heun 2·steps − 1, the others steps). Raises ConfigError for a bad
    name, steps or option, or a sampler that does not support the process.
    """
    kind = process_kind(diffusion)
    num_timesteps = getattr(diffusion, "num_timesteps", None)
    options = validate_sampler(
        sampler, steps, num_timesteps, eta, clip_denoised, kind=kind, **sampler_options
    )
    if kind == "gaussian":
        _check_unspaced(diffusion)
    every = options.pop("trajectory_every")
    counted = CountingModel(model)
    trajectory = Trajectory(every) if return_trajectory else None
    if noise is None:
        device = _device(model, generator)
        noise = torch.randn(tuple(shape), generator=generator, device=device).to(_dtype(model))
    elif tuple(noise.shape) != tuple(shape):
        raise ValueError(f"noise has shape {tuple(noise.shape)}, expected {tuple(shape)}")
    call = SamplerCall(
        counted, diffusion, noise, eta, generator, clip_denoised, model_kwargs, cond_fn,
        progress, trajectory,
    )  # fmt: skip
    x = SAMPLERS[sampler].run(call, steps, **options)
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
    num_timesteps: int | None,
    eta: float = 0.0,
    clip_denoised: bool = True,
    kind: str = "gaussian",
    **options,
) -> dict[str, object]:
    """Checks a sampler configuration (e.g. conf/sampler/*.yaml's keys) before any sampling.

    Reads the row of `registry.SAMPLERS`; `num_timesteps` bounds steps (None: a continuous
    process, no bound); `kind` is the process's kind. Returns the sampler's options with their
    defaults filled in. Raises ConfigError naming the key (sampler.name, sampler.steps,
    sampler.<option>) and the allowed values, or the samplers that support `kind`.
    """
    row = sampler_row(sampler, kind)
    integral = isinstance(steps, numbers.Integral) and not isinstance(steps, bool)
    if not integral or steps < 1 or (num_timesteps is not None and steps > num_timesteps):
        bound = "" if num_timesteps is None else f" to the schedule's num_timesteps={num_timesteps}"
        raise ConfigError(f"sampler.steps={steps!r} must be an integer from 1{bound}")
    if not 0 <= eta <= 1 or (eta != 0 and not row.takes_eta):
        takers = ", ".join(name for name, other in SAMPLERS.items() if other.takes_eta)
        raise ConfigError(f"sampler.eta={eta!r}: 0 <= eta <= 1 for {takers}; 0 for the others")
    if not isinstance(clip_denoised, bool):
        raise ConfigError(f"sampler.clip_denoised={clip_denoised!r} must be true or false")
    allowed = {**row.options, "trajectory_every": 1}
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ConfigError(
            f"sampler.{unknown[0]} is not an option of {sampler}; its options: "
            f"steps, clip_denoised, {', '.join(allowed)}{', eta' if row.takes_eta else ''}"
        )
    resolved = {**allowed, **options}
    for key, value in resolved.items():
        choices = row.choices.get(key)
        if choices is not None and value not in choices:
            raise ConfigError(f"sampler.{key}={value!r}; choose one of: {', '.join(choices)}")
        if key in NUMBER_OPTIONS and not NUMBER_OPTIONS[key][0](value):
            raise ConfigError(f"sampler.{key}={value!r} must be {NUMBER_OPTIONS[key][1]}")
    if row.check is not None:
        row.check(resolved)
    return resolved


def validate_sampler_config(
    sampler: dict, num_timesteps: int | None, kind: str = "gaussian"
) -> dict[str, object]:
    """`validate_sampler` for a `sampler=` config group (its `name` key names the sampler)."""
    options = dict(sampler)
    return validate_sampler(
        options.pop("name", None), num_timesteps=num_timesteps, kind=kind, **options
    )


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
        integral = all(isinstance(t, int) for t in self.kept["t"])
        return {
            "t": torch.tensor(self.kept["t"], dtype=torch.long if integral else torch.float64),
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
