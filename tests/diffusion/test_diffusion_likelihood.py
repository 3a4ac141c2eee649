"""The variational bound in bits/dim against exact values.

Data: 8-bit pixels x_0 = the level nearest a draw from N(MU, S²), so P(level) is an exact bin
integral and the data's entropy H is the best NLL any model can reach. The network is the exact
ε̂ = E[ε | x_t] of the Gaussian (no training), optionally with the exact reverse variance
Var[x_{t−1} | x_t]. The bound's expectation is taken exactly over the 256 levels (weights P)
and by Monte Carlo over the diffusion noise (R draws per level), with its standard error.
"""

import math

import numpy as np
import pytest
import torch
from scipy.stats import norm

from diffusion_lab.diffusion import GaussianDiffusion, create_diffusion, get_named_beta_schedule

MU, S = 0.1, 0.3
LEVELS = torch.linspace(-1, 1, 256, dtype=torch.float64)
UPPER = np.append(LEVELS[:-1].numpy() + 1 / 255, np.inf)
LOWER = np.append(-np.inf, LEVELS[1:].numpy() - 1 / 255)
PROBS = norm.cdf((UPPER - MU) / S) - norm.cdf((LOWER - MU) / S)
ENTROPY_BITS = float(-(PROBS * np.log2(PROBS)).sum())  # ≈ 7.297 bits/dim


def exact_model(diffusion):
    """ε̂ = E[ε | x_t] for x_0 ~ N(MU, S²); with a learned variance also log Var[x_{t−1} | x_t]."""

    def model(x, t):
        abar = diffusion.alphas_cumprod[t].view(-1, 1, 1, 1)
        denominator = abar * S**2 + 1 - abar
        eps = torch.sqrt(1 - abar) / denominator * (x - torch.sqrt(abar) * MU)
        if not diffusion.learns_sigma:
            return eps
        var_xstart = S**2 * (1 - abar) / denominator
        coef1 = diffusion.posterior_mean_coef1[t].view(-1, 1, 1, 1)
        variance = diffusion.posterior_variance[t].view(-1, 1, 1, 1) + coef1**2 * var_xstart
        return torch.cat([eps, variance.log().expand_as(x)], dim=1)

    return model


def expected_bound(num_timesteps, var_type, draws, seed=0):
    """(E[total_bpd] over the data, its Monte Carlo standard error)."""
    diffusion = GaussianDiffusion(
        betas=get_named_beta_schedule("linear", num_timesteps),
        model_var_type=var_type,
        loss_type="vlb",
    )
    x_start = LEVELS.repeat_interleave(draws).view(-1, 1, 1, 1)
    torch.manual_seed(seed)
    total = diffusion.calc_bpd_loop(exact_model(diffusion), x_start, clip_denoised=False)
    per_level = total["total_bpd"].view(256, draws)
    probs = torch.from_numpy(PROBS)
    mean = (probs * per_level.mean(dim=1)).sum().item()
    standard_error = math.sqrt((probs**2 * per_level.var(dim=1) / draws).sum().item())
    return mean, standard_error


def test_prior_term_is_1e_5_bits_for_ddpm_and_matches_closed_form():
    """L_T = KL(N(√ᾱ_T x_0, 1−ᾱ_T) ‖ N(0, 1)) = ½(ᾱ_T x_0² − ᾱ_T − log(1−ᾱ_T)) nats/dim."""
    diffusion = create_diffusion("linear", 1000)
    x_start = LEVELS.view(-1, 1, 1, 1)
    prior = diffusion._prior_bpd(x_start)
    abar = diffusion.alphas_cumprod[-1]
    expected = 0.5 * (abar * LEVELS**2 - abar - torch.log1p(-abar)) / math.log(2)
    torch.testing.assert_close(prior, expected, rtol=1e-9, atol=0)
    assert 0.5e-5 < prior.mean().item() < 2e-5  # DDPM §4.2: L_T ≈ 1e-5 bits/dim
    prior32 = diffusion._prior_bpd(x_start.float())
    torch.testing.assert_close(prior32, expected.float(), rtol=1e-4, atol=1e-11)


def test_bound_with_the_exact_reverse_process_is_the_data_entropy():
    """With the true reverse means and variances the bound is tight: E[L] = H up to MC error."""
    mean, standard_error = expected_bound(100, "learned", draws=256)
    assert standard_error < 0.01
    assert mean > ENTROPY_BITS - 4 * standard_error  # never (significantly) below the entropy
    assert mean < ENTROPY_BITS + 4 * standard_error + 0.01


@pytest.mark.parametrize("var_type, max_gap", [("fixed_large", 0.2), ("fixed_small", 2.0)])
def test_fixed_variance_bounds_lie_above_the_entropy(var_type, max_gap):
    mean, standard_error = expected_bound(100, var_type, draws=64)
    assert ENTROPY_BITS + 4 * standard_error < mean < ENTROPY_BITS + max_gap


def test_fixed_small_gap_shrinks_with_more_steps():
    """β̃_t is too small where x_0 is uncertain; finer steps shrink that mismatch (DDPM §3.2)."""
    gaps = [expected_bound(steps, "fixed_small", draws=64) for steps in (25, 100, 400)]
    for (coarse, se_coarse), (fine, se_fine) in zip(gaps, gaps[1:], strict=False):
        assert coarse - fine > 4 * math.hypot(se_coarse, se_fine)
