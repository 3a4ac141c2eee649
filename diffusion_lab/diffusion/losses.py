"""Likelihood terms of the variational bound (Ho et al. 2020, §3.3; DDPM's diffusion_utils)."""

import math

import torch


def mean_flat(x: torch.Tensor) -> torch.Tensor:
    """Mean over all dimensions but the batch: [N, ...] -> [N]."""
    return x.mean(dim=tuple(range(1, x.ndim)))


def normal_kl(mean1, logvar1, mean2, logvar2) -> torch.Tensor:
    """KL(N(mean1, e^logvar1) ‖ N(mean2, e^logvar2)) in nats, elementwise; scalars broadcast."""
    like = next(x for x in (mean1, logvar1, mean2, logvar2) if isinstance(x, torch.Tensor))
    logvar1, logvar2 = (
        v if isinstance(v, torch.Tensor) else torch.tensor(v).to(like) for v in (logvar1, logvar2)
    )
    # expm1(d) − d keeps the digits that −1 + e^d − d loses when the variances nearly agree
    log_ratio = logvar1 - logvar2
    return 0.5 * (torch.expm1(log_ratio) - log_ratio + (mean1 - mean2) ** 2 * torch.exp(-logvar2))


def approx_standard_normal_cdf(x: torch.Tensor) -> torch.Tensor:
    """Φ(x) ≈ ½(1 + tanh(√(2/π)(x + 0.044715x³))), the approximation DDPM's likelihoods use."""
    return 0.5 * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)))


def discretized_gaussian_log_likelihood(
    x: torch.Tensor, *, means: torch.Tensor, log_scales: torch.Tensor
) -> torch.Tensor:
    """log P(x) in nats for 8-bit data scaled to [-1, 1] (Ho et al. 2020, eq. 13).

    The mass of N(means, e^{2·log_scales}) on the bin x ± 1/255; the bins at −1 and 1 extend to
    ∓∞. All tensors share x's shape.
    """
    centered = x - means
    inv_stdv = torch.exp(-log_scales)
    cdf_plus = approx_standard_normal_cdf(inv_stdv * (centered + 1.0 / 255.0))
    cdf_min = approx_standard_normal_cdf(inv_stdv * (centered - 1.0 / 255.0))
    log_cdf_plus = torch.log(cdf_plus.clamp(min=1e-12))
    log_one_minus_cdf_min = torch.log((1.0 - cdf_min).clamp(min=1e-12))
    log_cdf_delta = torch.log((cdf_plus - cdf_min).clamp(min=1e-12))
    return torch.where(
        x < -0.999, log_cdf_plus, torch.where(x > 0.999, log_one_minus_cdf_min, log_cdf_delta)
    )
