"""Pretrained networks from improved-diffusion, guided-diffusion and diffusers as the lab's, and
the lab's as diffusers'."""

from diffusion_lab.interop.diffusers_folder import from_diffusers, to_diffusers
from diffusion_lab.interop.lab_checkpoint import (
    write_classifier_checkpoint,
    write_diffusion_checkpoint,
)
from diffusion_lab.interop.openai_flags import (
    CODEBASES,
    classifier_kwargs,
    diffusion_kwargs,
    model_kwargs,
    parse_flags,
    timestep_sampler,
)
from diffusion_lab.interop.openai_unet import from_openai, is_classifier, openai_net_config

__all__ = [
    "CODEBASES",
    "classifier_kwargs",
    "diffusion_kwargs",
    "from_diffusers",
    "from_openai",
    "is_classifier",
    "model_kwargs",
    "openai_net_config",
    "parse_flags",
    "timestep_sampler",
    "to_diffusers",
    "write_classifier_checkpoint",
    "write_diffusion_checkpoint",
]
