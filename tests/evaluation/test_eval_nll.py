"""Test-set NLL: the bound on Gaussian data with its exact denoiser, and the standard error."""

import math

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from diffusion_lab.diffusion import create_diffusion
from diffusion_lab.evaluation import bits_per_dim, mean_and_stderr

STD = 0.25  # data x_0 ~ N(0, STD^2) per pixel, quantised to 8 bits; 4 std fit inside [-1, 1]


def gaussian_images(n: int, seed: int) -> torch.Tensor:
    """n 1x8x8 images of N(0, STD^2) pixels on the 8-bit grid of [-1, 1]."""
    x = torch.randn(n, 1, 8, 8, generator=torch.Generator().manual_seed(seed)) * STD
    return ((x.clamp(-1, 1) + 1) * 127.5).round() / 127.5 - 1


def true_nll_bpd(x: torch.Tensor) -> torch.Tensor:
    """-log2 P(x) per image [N], bits/dim, of the quantised Gaussian (edge bins open-ended)."""
    normal = torch.distributions.Normal(0.0, STD)
    x = x.double()
    upper = torch.where(x > 0.999, math.inf, x + 1 / 255)
    lower = torch.where(x < -0.999, -math.inf, x - 1 / 255)
    return -torch.log2(normal.cdf(upper) - normal.cdf(lower)).flatten(1).mean(1)


def exact_model(diffusion):
    """eps*(x_t) = E[eps | x_t] for Gaussian data; with learned variances also log Var(x_{t-1} |
    x_t) = log(posterior variance + coef1^2 Var(x_0 | x_t)): the exact reverse process."""

    def model(x, t, **model_kwargs):
        a = diffusion.alphas_cumprod[t].view(-1, 1, 1, 1)
        eps = (1 - a).sqrt() * x / (a * STD**2 + 1 - a)
        if not diffusion.learns_sigma:
            return eps.float()
        var_x0 = STD**2 * (1 - a) / (a * STD**2 + 1 - a)
        coef1 = diffusion.posterior_mean_coef1[t].view(-1, 1, 1, 1)
        var = diffusion.posterior_variance[t].view(-1, 1, 1, 1) + coef1**2 * var_x0
        return torch.cat([eps, var.log().expand_as(x)], dim=1).float()

    return model


def bound_minus_truth(model_var_type: str) -> float:
    diffusion = create_diffusion(
        num_timesteps=100,
        model_var_type=model_var_type,
        loss_type="hybrid" if model_var_type == "learned" else "simple",
    )
    x = gaussian_images(256, seed=0)
    torch.manual_seed(0)
    loader = DataLoader(TensorDataset(x, torch.zeros(len(x))), batch_size=128)
    bpd = bits_per_dim(diffusion, exact_model(diffusion), loader, clip_denoised=False)
    assert bpd.shape == (256,)
    return float((bpd.double() - true_nll_bpd(x)).mean())


def test_exact_reverse_process_makes_the_bound_tight():
    # Monte Carlo error of the bound over 256 images: ~0.012 bits/dim
    assert abs(bound_minus_truth("learned")) < 0.05


def test_ddpm_fixed_variance_bound_lies_above_the_true_nll():
    # the exact mean with DDPM's sigma_t^2 = beta_t: a looser bound, still close
    assert 0.04 < bound_minus_truth("fixed_large") < 0.25


def test_conditional_models_get_the_true_labels():
    seen = []

    def model(x, t, y=None):
        seen.append(y)
        return torch.zeros_like(x)

    diffusion = create_diffusion(schedule="cosine", num_timesteps=3)
    labels = torch.tensor([3, 1])
    bits_per_dim(diffusion, model, [(torch.zeros(2, 1, 4, 4), labels)], class_conditional=True)
    assert len(seen) == 3 and all(torch.equal(y, labels) for y in seen)


def test_standard_error_is_sample_std_over_sqrt_n():
    values = np.array([3.1, 2.9, 3.4, 3.0, 2.6, 3.3])
    mean, stderr = mean_and_stderr(torch.tensor(values))
    assert mean == pytest.approx(values.mean())
    assert stderr == pytest.approx(values.std(ddof=1) / np.sqrt(len(values)))


def test_standard_error_needs_two_images():
    with pytest.raises(ValueError, match="at least 2"):
        mean_and_stderr(torch.tensor([3.0]))
