"""`create_diffusion`: the process a config describes."""

from diffusion_lab.diffusion.gaussian_diffusion import (
    GaussianDiffusion,
    LossType,
    ModelVarType,
    check_loss_trains_variance,
    parse_choice,
)
from diffusion_lab.diffusion.respace import SpacedDiffusion, space_timesteps
from diffusion_lab.diffusion.schedules import get_named_beta_schedule


def create_diffusion(
    schedule: str = "linear",
    num_timesteps: int = 1000,
    model_mean_type: str = "epsilon",
    model_var_type: str = "fixed_large",
    loss_type: str = "simple",
    timestep_respacing=None,
    rescale_timesteps: bool = False,
) -> GaussianDiffusion:
    """A GaussianDiffusion, or a SpacedDiffusion when `timestep_respacing` is given.

    The defaults are DDPM's (Ho et al. 2020): linear schedule, T = 1000, ε-prediction, σ² = β,
    L_simple; `rescale_timesteps` feeds the network t·1000/T (improved-diffusion's default).
    Raises ConfigError on unknown names and on a loss that cannot train the variance.
    """
    check_loss_trains_variance(
        parse_choice(LossType, loss_type, "loss_type"),
        parse_choice(ModelVarType, model_var_type, "model_var_type"),
    )
    kwargs = {
        "betas": get_named_beta_schedule(schedule, num_timesteps),
        "model_mean_type": model_mean_type,
        "model_var_type": model_var_type,
        "loss_type": loss_type,
        "rescale_timesteps": rescale_timesteps,
    }
    if not timestep_respacing:
        return GaussianDiffusion(**kwargs)
    return SpacedDiffusion(space_timesteps(num_timesteps, timestep_respacing), **kwargs)
