"""The Gaussian diffusion process, its schedules, respacing, losses and timestep samplers."""

from diffusion_lab.diffusion.factory import create_diffusion
from diffusion_lab.diffusion.gaussian_diffusion import (
    GaussianDiffusion,
    LossType,
    ModelMeanType,
    ModelVarType,
)
from diffusion_lab.diffusion.losses import discretized_gaussian_log_likelihood, normal_kl
from diffusion_lab.diffusion.respace import SpacedDiffusion, space_timesteps
from diffusion_lab.diffusion.schedules import get_named_beta_schedule
from diffusion_lab.diffusion.timestep_samplers import (
    LossAwareSampler,
    ScheduleSampler,
    UniformSampler,
    create_named_schedule_sampler,
)

__all__ = [
    "GaussianDiffusion",
    "LossAwareSampler",
    "LossType",
    "ModelMeanType",
    "ModelVarType",
    "ScheduleSampler",
    "SpacedDiffusion",
    "UniformSampler",
    "create_diffusion",
    "create_named_schedule_sampler",
    "discretized_gaussian_log_likelihood",
    "get_named_beta_schedule",
    "normal_kl",
    "space_timesteps",
]
