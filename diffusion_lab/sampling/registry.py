"""The sampler table: one row per sampler, read by `sample()` and the config validation.

A row is `SAMPLERS[name] = Sampler(run, options, kinds, nfe, choices, takes_eta, check)`:
- `run(call: SamplerCall, steps: int, **options) -> x_0` runs the sampler (options filled in);
- `options`: each option's default (beyond steps, eta, clip_denoised);
- `kinds`: the process kinds it supports ("gaussian", "edm", "cold", ...);
- `nfe(steps, options)`: network evaluations per batch;
- `choices`: option -> allowed values, for the string/enum options (numbers: `NUMBER_OPTIONS`);
- `takes_eta`: whether sampler.eta may be nonzero; `check(options)` raises ConfigError for a
  combination of options that does not go together.
Adding a sampler is one function, one row and one YAML in conf/sampler.

A process's kind is its `kind` attribute ("gaussian" when it has none: a `GaussianDiffusion`).
The ODE/SDE rows use its continuous view, `process.sigma_denoiser(model, model_kwargs=...,
clip_denoised=..., [cond_fn=...])` (the discrete Gaussian process gets `DiscreteSigmaDenoiser`):
a callable `denoise(x, sigma) -> x̂_0` (x = x_0 + σ·ε) with attributes `sigma_min`,
`sigma_max`, `prior(noise, sigma)` (x at σ for the process's x_T = noise), `state(x, sigma)`
((t, x_t) for trajectories) and, for discrete processes, `alphas_cumprod` (trained levels).
"""

import math
import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from diffusion_lab.errors import ConfigError
from diffusion_lab.sampling import samplers, solvers
from diffusion_lab.sampling.sigma import DiscreteSigmaDenoiser
from diffusion_lab.sampling.timesteps import (
    ancestral_timesteps,
    ddim_timesteps,
    noise_levels,
    respace,
)


@dataclass
class SamplerCall:
    """Everything a row's `run` gets besides steps and options."""

    model: Callable[..., torch.Tensor]
    diffusion: Any
    noise: torch.Tensor
    eta: float = 0.0
    generator: torch.Generator | None = None
    clip_denoised: bool = True
    model_kwargs: dict | None = None
    cond_fn: Callable[..., torch.Tensor] | None = None
    progress: bool = False
    callback: Callable[..., None] | None = None

    def denoiser(self, process) -> samplers.Denoiser:
        """The discrete view (x̂_0, ε̂) at trained timesteps of `process` (spaced or not)."""
        return samplers.Denoiser(
            self.model, process, self.clip_denoised, self.model_kwargs, self.cond_fn
        )

    def sigma_view(self):
        """The process's continuous view D(x; σ) (see the module docstring)."""
        guidance = {} if self.cond_fn is None else {"cond_fn": self.cond_fn}
        make = getattr(self.diffusion, "sigma_denoiser", None)
        if make is None:
            return DiscreteSigmaDenoiser(
                self.model, self.diffusion, self.model_kwargs, self.clip_denoised, **guidance
            )
        return make(
            self.model, model_kwargs=self.model_kwargs, clip_denoised=self.clip_denoised, **guidance
        )

    def noise_like(self, x: torch.Tensor) -> torch.Tensor:
        return samplers._randn_like(x, self.generator)

    def solve(self, solver, view, sigmas: list[float], **options) -> torch.Tensor:
        """Runs a σ-solver from the process's x_T over `sigmas`, reporting (t, x_t, x̂_0)."""
        hook = None
        if self.callback is not None:

            def hook(sigma, x, denoised):
                self.callback(*view.state(x, sigma), denoised)

        x = view.prior(self.noise, sigmas[0])
        return solver(
            view, x, sigmas, noise=self.noise_like, callback=hook, progress=self.progress, **options
        )


@dataclass(frozen=True)
class Sampler:
    """One row of the table (see the module docstring)."""

    run: Callable[..., torch.Tensor]
    options: Mapping[str, object]
    kinds: tuple[str, ...]
    nfe: Callable[[int, dict], int]
    choices: Mapping[str, tuple] = field(default_factory=dict)
    takes_eta: bool = False
    check: Callable[[dict], None] | None = None


def _ddpm(call: SamplerCall, steps: int) -> torch.Tensor:
    spaced = respace(call.diffusion, ancestral_timesteps(call.diffusion.num_timesteps, steps))
    return samplers.sample_ddpm(
        call.denoiser(spaced), call.noise, generator=call.generator, progress=call.progress,
        callback=call.callback,
    )  # fmt: skip


def _ddim(call: SamplerCall, steps: int, spacing: str) -> torch.Tensor:
    spaced = respace(call.diffusion, ddim_timesteps(call.diffusion.num_timesteps, steps, spacing))
    return samplers.sample_ddim(
        call.denoiser(spaced), call.noise, eta=call.eta, generator=call.generator,
        progress=call.progress, callback=call.callback,
    )  # fmt: skip


def _heun(call: SamplerCall, steps: int, skip: str, rho: float, **churn) -> torch.Tensor:
    view = call.sigma_view()
    sigmas = noise_levels(view, steps, skip, rho)
    return call.solve(solvers.sample_heun, view, sigmas, sigma_max=view.sigma_max, **churn)


def _dpm_solver(
    call: SamplerCall, steps: int, skip: str, rho: float, order: int, sde: bool
) -> torch.Tensor:
    view = call.sigma_view()
    sigmas = noise_levels(view, steps, skip, rho)
    if sde:
        return call.solve(solvers.sample_dpmpp_2m_sde, view, sigmas)
    solver = solvers.sample_dpmpp_3m if order == 3 else solvers.sample_dpmpp_2m
    return call.solve(solver, view, sigmas)


def _unipc(call: SamplerCall, steps: int, skip: str, rho: float, order: int) -> torch.Tensor:
    view = call.sigma_view()
    return call.solve(solvers.sample_unipc, view, noise_levels(view, steps, skip, rho), order=order)


def _check_dpm_solver(options: dict) -> None:
    if options["sde"] and options["order"] != 2:
        raise ConfigError(
            f"sampler.sde=true is DPM-Solver++(2M) SDE: it needs sampler.order=2, "
            f"not {options['order']}"
        )


SKIPS = ("logSNR", "time_uniform", "karras")
ODE_KINDS = ("gaussian",)
_CHURN = {"s_churn": 0.0, "s_tmin": 0.0, "s_tmax": math.inf, "s_noise": 1.0}

SAMPLERS: dict[str, Sampler] = {
    "ddpm": Sampler(_ddpm, {}, ("gaussian",), lambda steps, _: steps),
    "ddim": Sampler(
        _ddim,
        {"spacing": "uniform"},
        ("gaussian",),
        lambda steps, _: steps,
        choices={"spacing": ("uniform", "quadratic")},
        takes_eta=True,
    ),
    "dpm_solver": Sampler(
        _dpm_solver,
        {"skip": "logSNR", "rho": 7.0, "order": 2, "sde": False},
        ODE_KINDS,
        lambda steps, _: steps,
        choices={"skip": SKIPS},
        check=_check_dpm_solver,
    ),
    "heun": Sampler(
        _heun,
        {**_CHURN, "rho": 7.0, "skip": "karras"},
        ODE_KINDS,
        lambda steps, _: 2 * steps - 1,
        choices={"skip": SKIPS},
    ),
    "unipc": Sampler(
        _unipc,
        {"skip": "logSNR", "rho": 7.0, "order": 2},
        ODE_KINDS,
        lambda steps, _: steps,
        choices={"skip": SKIPS},
    ),
}


def _real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


# Numeric options, by name (the same name means the same thing in every row).
NUMBER_OPTIONS: dict[str, tuple[Callable[[object], bool], str]] = {
    "trajectory_every": (lambda v: _real(v) and v == int(v) >= 1, "an integer >= 1"),
    "s_churn": (lambda v: _real(v) and v >= 0, "a number >= 0"),
    "s_tmin": (lambda v: _real(v) and v >= 0, "a number >= 0"),
    "s_tmax": (lambda v: _real(v) and v >= 0, "a number >= 0"),
    "s_noise": (lambda v: _real(v) and v >= 0, "a number >= 0"),
    "rho": (lambda v: _real(v) and v > 0, "a number > 0"),
    "order": (lambda v: v in (2, 3) and isinstance(v, numbers.Integral), "2 or 3"),
    "sde": (lambda v: isinstance(v, bool | np.bool_), "true or false"),
}


def process_kind(diffusion) -> str:
    """The process's kind: its `kind` attribute, "gaussian" for a plain GaussianDiffusion."""
    return getattr(diffusion, "kind", "gaussian")


def sampler_row(name: str, kind: str = "gaussian") -> Sampler:
    """The row of `name`; ConfigError naming the samplers that fit when it is unknown or does
    not support processes of `kind`."""
    fitting = [key for key, row in SAMPLERS.items() if kind in row.kinds]
    if name not in SAMPLERS:
        raise ConfigError(
            f"sampler.name={name!r} is not a sampler; choose one of: {', '.join(SAMPLERS)}"
        )
    if kind not in SAMPLERS[name].kinds:
        raise ConfigError(
            f"sampler.name={name!r} does not sample a {kind!r} process; samplers that do: "
            f"{', '.join(fitting) or 'none'}"
        )
    return SAMPLERS[name]
