"""EDM's preconditioning, loss and σ view (Karras et al. 2022, Table 1)."""

import math

import pytest
import torch
from sklearn.datasets import load_digits

from diffusion_lab.errors import ConfigError
from diffusion_lab.models import UNetModel
from diffusion_lab.processes import create_process
from diffusion_lab.sampling import sample

SIGMAS = torch.logspace(-3, 2, 26, dtype=torch.float64)


def edm(**options):
    return create_process({"name": "edm", **options}, {})


def test_the_loss_weight_cancels_c_out():
    process = edm()
    _, c_out, _, _ = process.preconditioning(SIGMAS)
    # float64 products and quotients of O(1e4)-ranged values: ~1e-15 relative
    torch.testing.assert_close(process.loss_weight(SIGMAS) * c_out**2, torch.ones_like(SIGMAS))


@pytest.mark.parametrize("sigma", [0.01, 0.5, 3.0, 80.0])
def test_input_and_target_have_unit_variance_for_data_of_variance_sigma_data(sigma):
    process = edm(sigma_data=0.5)
    generator = torch.Generator().manual_seed(0)
    n = 200_000
    x0 = 0.5 * torch.randn(n, generator=generator, dtype=torch.float64)
    x = x0 + sigma * torch.randn(n, generator=generator, dtype=torch.float64)
    c_skip, c_out, c_in, _ = process.preconditioning(torch.tensor(sigma, dtype=torch.float64))
    target = (x0 - c_skip * x) / c_out  # what F must output for D(x; σ) = x0
    # sample variances of 2e5 unit-variance Gaussians: standard error √(2/n) ≈ 0.003
    assert (c_in * x).var().item() == pytest.approx(1, abs=0.015)
    assert target.var().item() == pytest.approx(1, abs=0.015)


def test_training_loss_is_the_mse_of_F_to_its_target():
    process = edm()
    generator = torch.Generator().manual_seed(1)
    x0 = torch.rand(4, 1, 4, 4, generator=generator, dtype=torch.float64) * 2 - 1
    noise = torch.randn(x0.shape, generator=generator, dtype=torch.float64)
    t = torch.tensor([10.0, 300.5, 700.0, 990.0], dtype=torch.float64)

    def model(x_in, c_noise):
        return 0.3 * x_in + c_noise.view(-1, 1, 1, 1)

    loss = process.training_losses(model, x0, t, noise=noise)["loss"]
    sigma = process.sigma_at(t).view(-1, 1, 1, 1)
    c_skip, c_out, c_in, c_noise = process.preconditioning(sigma)
    x = x0 + sigma * noise
    expected = ((model(c_in * x, c_noise.flatten()) - (x0 - c_skip * x) / c_out) ** 2).mean(
        dim=(1, 2, 3)
    )
    torch.testing.assert_close(loss, expected, rtol=1e-10, atol=0)  # float64, λ·c_out² = 1


def test_sigma_follows_the_log_normal():
    process = edm(P_mean=-1.2, P_std=1.2)
    assert process.sigma_at(torch.tensor([500.0])).item() == pytest.approx(math.exp(-1.2))
    log_sigma = process.sigma_at(torch.arange(1000) + 0.5).log()
    # the quantile grid of a normal: mean exact by symmetry, std within its truncation
    assert log_sigma.mean().item() == pytest.approx(-1.2, abs=1e-9)
    assert log_sigma.std().item() == pytest.approx(1.2, rel=0.01)


@pytest.mark.parametrize(
    "sampler, options",
    [
        ("heun", {"skip": "karras"}),
        ("dpm_solver", {"skip": "logSNR"}),
        ("dpm_solver", {"order": 3}),
    ],
)
def test_ode_samplers_solve_the_exact_flow_of_gaussian_data(sampler, options):
    """For data ~ N(0, σ_data²) the exact D(x; σ) = c_skip(σ)·x, i.e. F = 0, and the
    probability-flow ODE carries x(σ_max) to x(σ_max)·σ_data/√(σ_max² + σ_data²)."""

    def exact(x_in, c_noise):
        return torch.zeros_like(x_in)

    process = edm()
    noise = torch.randn(256, 1, 2, 2, generator=torch.Generator().manual_seed(0))
    target = noise * 80 * 0.5 / math.sqrt(80**2 + 0.25)  # x_T = σ_max·noise
    errors = []
    for steps in (20, 40):
        out = sample(
            exact, process, noise.shape, sampler, steps, noise=noise, clip_denoised=False, **options
        )
        errors.append(((out.images - target).norm() / target.norm()).item())
    # measured for heun: 4.8% at 20 steps, 1.0% at 40; second (or third) order: ≥ 4× smaller
    assert errors[1] < errors[0] / 3 and errors[1] < 0.03


def test_gaussian_only_samplers_refuse_edm():
    with pytest.raises(ConfigError, match="heun"):
        sample(lambda x, t: x, edm(), (1, 1, 2, 2), "ddim", 5)


def test_a_tiny_edm_run_lowers_its_loss():
    torch.manual_seed(0)
    data = torch.from_numpy(load_digits().images).float().unsqueeze(1) / 16 * 2 - 1
    process = edm()
    net = UNetModel(
        image_size=8, in_channels=1, model_channels=32, channel_mult=(1, 2),
        num_res_blocks=1, attention_resolutions=(),
    )  # fmt: skip
    optimizer = torch.optim.Adam(net.parameters(), lr=2e-3)
    grid = torch.arange(64) * (1000 / 64)  # fixed quantiles: the same σ at each step
    evaluation = data[:64]
    noise = torch.randn(evaluation.shape, generator=torch.Generator().manual_seed(1))

    def held_out_loss() -> float:
        with torch.no_grad():
            return process.training_losses(net, evaluation, grid, noise=noise)["loss"].mean().item()

    before = held_out_loss()
    for _ in range(30):
        batch = data[torch.randint(len(data), (32,))]
        t = torch.rand(32) * 1000
        loss = process.training_losses(net, batch, t)["loss"].mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    # measured: ≈1.69 before, ≈1.14 after 30 steps (ratio 0.68)
    assert held_out_loss() < 0.8 * before


@pytest.mark.parametrize(
    "options, key",
    [({"sigma_data": 0}, "process.sigma_data"), ({"sigma_max": 0.001}, "process.sigma_max")],
)
def test_bad_options_name_the_key(options, key):
    with pytest.raises(ConfigError, match=key):
        edm(**options)
