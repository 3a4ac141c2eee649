"""Per-timestep loss weightings of the Gaussian process's MSE, by name (a registry).

min-SNR-γ (Hang et al. 2023, eq. 9): the x_0-space weight min(SNR_t, γ), expressed for the
network's target: ε divides by SNR_t, v by SNR_t + 1 (|ε̂ − ε|² = SNR·|x̂_0 − x_0|²,
|v̂ − v|² = (SNR + 1)·|x̂_0 − x_0|²). soft-min-SNR (Crowson et al. 2024, HDiT; k-diffusion's
soft-min-snr) replaces min(SNR, γ) by the smooth SNR·γ/(SNR + γ), normalised the same way.
"""

import torch

from diffusion_lab.diffusion.gaussian_diffusion import ModelMeanType
from diffusion_lab.errors import ConfigError


def min_snr(snr: torch.Tensor, gamma: float) -> torch.Tensor:
    """min(SNR_t, γ), the x_0-space weight (Hang et al. 2023, eq. 9)."""
    return snr.clamp(max=gamma)


def soft_min_snr(snr: torch.Tensor, gamma: float) -> torch.Tensor:
    """SNR_t·γ/(SNR_t + γ), a smooth min(SNR_t, γ)."""
    return snr * gamma / (snr + gamma)


X0_WEIGHTS = {"min_snr": min_snr, "soft_min_snr": soft_min_snr}
# uniform: L_simple's weight 1 on the target's own space (Ho et al. 2020, eq. 14), today's loss
WEIGHTINGS = ("uniform", *X0_WEIGHTS)


def check_weighting(name: str, gamma: float) -> None:
    """ConfigError naming loss.weighting or loss.snr_gamma and the allowed values."""
    if name not in WEIGHTINGS:
        raise ConfigError(
            f"loss.weighting={name!r} is not a weighting; choose one of: {', '.join(WEIGHTINGS)}"
        )
    if isinstance(gamma, bool) or not isinstance(gamma, int | float) or not gamma > 0:
        raise ConfigError(f"loss.snr_gamma={gamma!r} must be a number > 0")


def target_weight(
    name: str, gamma: float, snr: torch.Tensor, mean_type: ModelMeanType
) -> torch.Tensor:
    """The weight [N] of the MSE to the network's target (ε, x_0 or v) at SNR_t [N]."""
    if name == "uniform":
        return torch.ones_like(snr)
    weight = X0_WEIGHTS[name](snr, gamma)
    divisor = {
        ModelMeanType.EPSILON: snr,
        ModelMeanType.START_X: torch.ones_like(snr),
        ModelMeanType.V: snr + 1,
    }[mean_type]
    return weight / divisor
