"""Samplers for trained diffusion models: ddpm, ddim, dpm_solver, heun, unipc (the table in
`registry`), and DDIM inversion."""

from diffusion_lab.sampling.api import (
    SAMPLER_OPTIONS,
    SampleOutput,
    ddim_reverse,
    sample,
    validate_sampler,
    validate_sampler_config,
)

__all__ = [
    "SAMPLER_OPTIONS",
    "SampleOutput",
    "ddim_reverse",
    "sample",
    "validate_sampler",
    "validate_sampler_config",
]
