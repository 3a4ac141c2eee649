"""`ode_bpd` against closed forms: Gaussian data with its exact ε*, whose probability-flow ODE
is an affine map per pixel, so the model's density is known exactly."""

import math

import pytest
import torch
from evaluation.evaltools import compose_config

from diffusion_lab.diffusion import GaussianDiffusion, get_named_beta_schedule
from diffusion_lab.errors import ConfigError
from diffusion_lab.evaluate import evaluate
from diffusion_lab.evaluation import ode_bpd
from diffusion_lab.evaluation.ode_likelihood import ode_log_likelihood
from diffusion_lab.sampling.oracle import GaussianMixture

SHAPE = (1, 4, 4)
DIM = 16
S = 0.3  # data std per pixel


def setup(mean: float = 0.0, num_timesteps: int = 1000):
    diffusion = GaussianDiffusion(betas=get_named_beta_schedule("linear", num_timesteps))
    mu = mean * torch.linspace(-1, 1, DIM, dtype=torch.float64).view(1, *SHAPE)
    data = GaussianMixture(mu, torch.tensor([S]), torch.tensor([1.0]))
    return diffusion, data, data.network(diffusion.alphas_cumprod)


def marginal_at_t0(diffusion, data, x):
    """log q(x_0 at t = 0) [N]: N(√ᾱ_0·μ, ᾱ_0·s² + 1 − ᾱ_0) per pixel, the data law noised once."""
    abar = float(diffusion.alphas_cumprod[0])
    variance = abar * S**2 + 1 - abar
    residual = (x - math.sqrt(abar) * data.means[0]).flatten(1)
    return -0.5 * (residual**2).sum(1) / variance - 0.5 * DIM * math.log(2 * math.pi * variance)


def model_density(diffusion, data, x):
    """The exact density the ODE defines: the flow x(σ) = μ + k(σ)(x(σ_0) − μ),
    k = √((s²+σ²)/(s²+σ_0²)), pushes the prior N(0, (1+σ_max²)I) back to t = 0."""
    sigmas = ((1 - diffusion.alphas_cumprod) / diffusion.alphas_cumprod).sqrt()
    sigma_0, sigma_max = float(sigmas[0]), float(sigmas[-1])
    mu = data.means[0]
    k = math.sqrt((S**2 + sigma_max**2) / (S**2 + sigma_0**2))
    end = (mu + k * (x * math.sqrt(1 + sigma_0**2) - mu)).flatten(1)
    prior = 1 + sigma_max**2
    log_prior = -0.5 * (end**2).sum(1) / prior - 0.5 * DIM * math.log(2 * math.pi * prior)
    return log_prior + DIM * math.log(k) + 0.5 * DIM * math.log(1 + sigma_0**2)


def bits(nats: torch.Tensor) -> torch.Tensor:
    return nats / (DIM * math.log(2))


@pytest.mark.parametrize("estimator", ["rademacher", "exact"])
def test_ode_likelihood_of_centred_gaussian_data_is_the_closed_form(estimator):
    """With centred data the prior N(0, I) at t = T is right to ~1e-5 bits/dim, so the ODE's
    density is the data's (noised once, at t = 0). The Jacobian of x − D is diagonal here, so a
    Rademacher probe (ε_i² = 1) gives the exact trace: both estimators agree."""
    diffusion, data, net = setup(mean=0.0)
    x = data.sample(8, torch.Generator().manual_seed(0))
    log_p = ode_log_likelihood(net, diffusion, x, estimator=estimator)
    # measured 3.3e-5 bits/dim (RK45 at rtol = atol = 1e-5, and the prior's variance mismatch
    # (1 − s²)/σ_max² ≈ 4e-5 nats/dim); a wrong Jacobian or trace term is off by > 1e-2
    assert (bits(log_p - marginal_at_t0(diffusion, data, x))).abs().max() < 1e-3


def test_ode_likelihood_is_the_density_the_flow_defines():
    """With a data mean the prior N(0, I) misses the √ᾱ_T·μ at t = T (per image ~1e-3
    bits/dim, linear in x); the flow's exact density still matches."""
    diffusion, data, net = setup(mean=0.4)
    x = data.sample(8, torch.Generator().manual_seed(0))
    log_p = ode_log_likelihood(net, diffusion, x, rtol=1e-7, atol=1e-7)
    # measured 4e-7 bits/dim at RK45's 1e-7 (5e-5 at 1e-5): integration error only
    assert (bits(log_p - model_density(diffusion, data, x))).abs().max() < 1e-5
    assert (bits(log_p - marginal_at_t0(diffusion, data, x))).abs().max() < 3e-3


def test_gaussian_probes_are_unbiased():
    """One Gaussian probe per image is noisy (εᵀJε with J ≈ I has variance 2·tr J²), but its
    mean over images and seeds is the exact trace's."""
    diffusion, data, net = setup(mean=0.0, num_timesteps=100)
    x = data.sample(1, torch.Generator().manual_seed(0)).expand(64, *SHAPE).contiguous()
    noisy = ode_log_likelihood(
        net, diffusion, x, estimator="gaussian", generator=torch.Generator().manual_seed(1)
    )
    exact = ode_log_likelihood(net, diffusion, x[:1], estimator="exact")
    spread = noisy.std() / math.sqrt(len(noisy))
    assert noisy.std() > 0.1  # a random estimate
    assert (noisy.mean() - exact[0]).abs() < 4 * spread  # 4 standard errors


def test_bpd_is_the_dequantised_density_in_8_bit_units():
    diffusion, data, net = setup(mean=0.0, num_timesteps=100)
    levels = torch.randint(0, 256, (4, *SHAPE), generator=torch.Generator().manual_seed(0))
    images = levels.double() / 127.5 - 1
    bpd = ode_bpd(net, diffusion, images, generator=torch.Generator().manual_seed(2))
    # the same uniform draw as ode_bpd makes (its generator's first draw), then the same ODE
    generator = torch.Generator().manual_seed(2)
    u = torch.rand(images.shape, generator=generator, dtype=torch.float64)
    y = 2 * (levels + u) / 256 - 1
    log_p = ode_log_likelihood(net, diffusion, y, generator=generator)
    # the same float64 computation: equal to rounding
    torch.testing.assert_close(bpd, -bits(log_p) + 7, atol=1e-9, rtol=0)
    assert (y >= -1).all() and (y <= 1).all() and ((y - images.double()).abs() <= 2 / 255).all()


def test_unknown_estimator_is_refused():
    diffusion, data, net = setup(num_timesteps=50)
    with pytest.raises(ConfigError, match="rademacher, gaussian, exact"):
        ode_bpd(net, diffusion, torch.zeros(1, *SHAPE), estimator="hutchinson")


EVALUATE_NLL = [
    "metrics=[nll,nll_ode]",
    "num_samples=2",
    "batch_size=2",
    "sampler.steps=2",
    "metrics.nll.num_images=4",
    "metrics.nll_ode.num_images=4",
    "metrics.nll_ode.rtol=1.0e-3",  # a 4-step network: only the wiring is tested here
    "metrics.nll_ode.atol=1.0e-3",
]


def test_evaluate_reports_the_ode_nll_next_to_the_vlb(trained_run, tmp_path):
    cfg = compose_config("evaluate", tmp_path, f"ckpt={trained_run}", *EVALUATE_NLL)
    metrics = evaluate(cfg)["metrics"]
    assert set(metrics) == {"nll_bpd", "nll_bpd_stderr", "nll_ode_bpd", "nll_ode_bpd_stderr"}
    # a 4-step network's ODE and VLB likelihoods need not agree (measured 15.8 and 6.7 bits/dim);
    # the closed-form tests above check the values, this one that evaluate reports them
    assert 0 < metrics["nll_ode_bpd"] < 64 and metrics["nll_ode_bpd_stderr"] > 0


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("metrics.nll_ode.estimator=hutchinson", "metrics.nll_ode.estimator"),
        ("metrics.nll_ode.num_images=1", "metrics.nll_ode.num_images"),
    ],
)
def test_bad_nll_ode_settings_name_the_key(override, key, tmp_path):
    cfg = compose_config("evaluate", tmp_path, "ckpt=none.ckpt", *EVALUATE_NLL, override)
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        evaluate(cfg)
