"""Samplers against a closed form: data x0 ~ N(MU, diag(S²)) shaped like a 2×2×2 image.

The exact network for that data is known (E[x0|x_t] of a Gaussian prior), so nothing is trained
and every error measured here is the sampler's. With this network each deterministic sampler is
an affine map per pixel, x0 = c + k·x_T, so x_T ∈ {0, 1} gives its exact output law N(c, k²).
"""

import math

import pytest
import torch

from diffusion_lab.diffusion import GaussianDiffusion, get_named_beta_schedule
from diffusion_lab.sampling import ddim_reverse, sample
from diffusion_lab.sampling.samplers import Denoiser, ddim_sigmas, sample_ddim, sample_ddpm
from diffusion_lab.sampling.sigma import DiscreteSchedule
from diffusion_lab.sampling.timesteps import ddim_timesteps, respace

SHAPE = (2, 2, 2)
MU = torch.tensor([-0.5, -0.2, 0.0, 0.1, 0.3, 0.5, 0.2, -0.1], dtype=torch.float64).view(SHAPE)
S = torch.tensor([0.1, 0.2, 0.3, 0.4, 0.5, 0.25, 0.15, 0.35], dtype=torch.float64).view(SHAPE)


class GaussianNet(torch.nn.Module):
    """The exact ε-, x0- or v-prediction for x0 ~ N(MU, diag(S²)).

    With x_t = a·x0 + b·ε (a = √ᾱ_t, b = √(1−ᾱ_t)) and r = x_t − a·MU:
    E[x0|x_t] = MU + a·S²/(a²S² + b²)·r, E[ε|x_t] = b/(a²S² + b²)·r, v = a·ε − b·x0.
    At a real t, ᾱ = 1/(1+σ(t)²) with the σ view's interpolation of log σ.
    """

    def __init__(self, alphas_cumprod: torch.Tensor, mean_type: str = "epsilon"):
        super().__init__()
        self.alphas_cumprod = torch.as_tensor(alphas_cumprod, dtype=torch.float64)
        self.schedule = DiscreteSchedule(self.alphas_cumprod)
        self.mean_type = mean_type
        self.calls = 0

    def forward(self, x, t, **_):
        self.calls += 1
        if t.dtype == torch.long:
            abar = self.alphas_cumprod[t].view(-1, 1, 1, 1)
        else:
            abar = 1 / (1 + self.schedule.t_to_sigma(t).view(-1, 1, 1, 1) ** 2)
        a, b = abar.sqrt(), (1 - abar).sqrt()
        residual = x.double() - a * MU
        denominator = abar * S**2 + 1 - abar
        pred_xstart = MU + a * S**2 / denominator * residual
        eps = b / denominator * residual
        out = {"epsilon": eps, "start_x": pred_xstart, "v": a * eps - b * pred_xstart}
        return out[self.mean_type].to(x.dtype)


def make(mean_type="epsilon", var_type="fixed_small", num_timesteps=1000):
    betas = get_named_beta_schedule("linear", num_timesteps)
    diffusion = GaussianDiffusion(
        betas=betas, model_mean_type=mean_type, model_var_type=var_type, loss_type="simple"
    )
    return GaussianNet(diffusion.alphas_cumprod, mean_type), diffusion


def exact_law(sampler, steps, **options):
    """(mean, std) per pixel of a deterministic sampler's output, exactly (in float64)."""
    model, diffusion = make()
    noise = torch.stack([torch.zeros(SHAPE), torch.ones(SHAPE)]).double()
    images = sample(
        model, diffusion, noise.shape, sampler, steps, noise=noise, clip_denoised=False, **options
    ).images
    return images[0], (images[1] - images[0]).abs()


def w2_exact(mean, std) -> float:
    """2-Wasserstein distance from N(mean, diag(std²)) to the data law."""
    return math.sqrt(((mean - MU) ** 2).sum() + ((std - S) ** 2).sum())


def w2_fitted(samples: torch.Tensor) -> float:
    """2-Wasserstein distance from the Gaussian fitted to `samples` [N, *SHAPE] to the data law."""
    x = samples.double().flatten(1)
    mean, cov = x.mean(0), torch.cov(x.T)
    root = torch.diag(S.flatten())
    cross = torch.linalg.eigvalsh(root @ cov @ root).clamp(min=0).sqrt().sum()
    trace = cov.trace() + (S**2).sum() - 2 * cross
    return math.sqrt(((mean - MU.flatten()) ** 2).sum() + trace.clamp(min=0))


def draw(sampler, steps, n=4000, seed=0, var_type="fixed_small", **options):
    model, diffusion = make(var_type=var_type)
    generator = torch.Generator().manual_seed(seed)
    return sample(
        model, diffusion, (n, *SHAPE), sampler, steps, generator=generator,
        clip_denoised=False, **options,
    ).images  # fmt: skip


@pytest.mark.parametrize(
    ("sampler", "steps", "options"),
    [
        ("ddpm", 250, {"var_type": "fixed_large"}),
        ("ddim", 100, {"spacing": "quadratic"}),
        ("ddim", 250, {"eta": 1.0}),
        ("dpm_solver", 20, {}),
        ("heun", 35, {}),
        ("heun", 35, {"s_churn": 10.0, "s_tmin": 0.05, "s_tmax": 50.0}),
    ],
)
def test_samples_have_the_data_mean_and_covariance(sampler, steps, options):
    n = 4000
    x = draw(sampler, steps, n, **options).double().flatten(1)
    s = S.flatten()
    # 4 standard errors of the estimate + a discretisation allowance
    mean_tol = 4 * s / math.sqrt(n) + 0.01
    std_tol = 4 * s / math.sqrt(2 * n) + 0.01
    assert ((x.mean(0) - MU.flatten()).abs() <= mean_tol).all()
    assert ((x.std(0) - s).abs() <= std_tol).all()
    correlation = torch.corrcoef(x.T) - torch.eye(len(s), dtype=torch.float64)
    assert correlation.abs().max() <= 4 / math.sqrt(n)


@pytest.mark.parametrize("mean_type", ["epsilon", "start_x", "v"])
@pytest.mark.parametrize("sampler", ["ddpm", "ddim", "dpm_solver", "heun"])
def test_every_output_type_gives_the_same_samples(sampler, mean_type):
    reference_model, reference = make("epsilon")
    model, diffusion = make(mean_type)
    runs = []
    for net, process in [(reference_model, reference), (model, diffusion)]:
        generator = torch.Generator().manual_seed(1)
        noise = torch.randn((64, *SHAPE), generator=generator, dtype=torch.float64)
        images = sample(net, process, noise.shape, sampler, 10, noise=noise, generator=generator)
        runs.append(images.images)
    # each output type reaches x̂_0 by other arithmetic: float64 rounding, grown by heun's
    # x̂ = x_t·√(1+σ²) (σ up to 157), stays ~1e-14; a wrong conversion is off by > 1e-3
    torch.testing.assert_close(runs[0], runs[1], atol=1e-9, rtol=0)


@pytest.mark.parametrize(
    ("sampler", "options"),
    [("ddim", {}), ("ddim", {"spacing": "quadratic"}), ("dpm_solver", {}), ("heun", {})],
)
def test_error_shrinks_as_steps_grow(sampler, options):
    errors = [w2_exact(*exact_law(sampler, steps, **options)) for steps in (10, 20, 50)]
    assert errors[0] > errors[1] > errors[2]


@pytest.mark.parametrize(
    ("sampler", "options", "expected"),
    [
        ("ddim", {}, 0.162648),
        ("dpm_solver", {}, 0.0103951),
        ("dpm_solver", {"skip": "time_uniform"}, 0.123498),
        ("heun", {"steps": 18}, 0.0600662),
    ],
)
def test_errors_match_an_independent_float64_computation(sampler, options, expected):
    """W2 at 20 steps, pinned from a separate NumPy implementation of the same algorithms (heun
    on EDM's exact levels; on levels snapped to trained timesteps it gives 0.0600340)."""
    steps = options.pop("steps", 20)
    # the pins keep 6 digits (≤ 5e-6 relative) and float64 sampling adds ~1e-13; another grid
    # or a first-order step changes W2 by far more than 1e-5 (ddim 0.16 vs dpm_solver 0.010)
    assert w2_exact(*exact_law(sampler, steps, **options)) == pytest.approx(expected, rel=1e-5)


def test_ancestral_error_shrinks_as_steps_grow():
    errors = [w2_fitted(draw("ddpm", steps, var_type="fixed_large")) for steps in (10, 50, 1000)]
    assert errors[0] > errors[1] > errors[2]
    assert errors[2] < 0.04  # the sampling error of 4000 draws is ≈ 0.02


def test_dpm_solver_is_second_order_where_ddim_is_first():
    """DPM-Solver++(2M) at 20 NFE: exact W2 0.0104; DDIM at 20 (first order): 0.16."""
    dpm = w2_exact(*exact_law("dpm_solver", 20))
    assert dpm < 0.015
    assert dpm < w2_exact(*exact_law("ddim", 20)) / 5
    assert dpm < w2_exact(*exact_law("dpm_solver", 20, skip="time_uniform")) / 5


def test_dpm_solver_20_nfe_is_as_accurate_as_ancestral_1000_steps():
    """Exact errors here: DPM-Solver++ 20 NFE 0.0104; ancestral 1000 steps 0.0106 (σ̃²) or
    0.0025 (β). Both lie below the sampling error of the fitted Gaussians (≈ 0.015 at 8000
    draws), so DPM-Solver must be within that sampling error of ancestral sampling; a
    first-order solver (0.10) or the time-uniform grid (0.12) fails."""
    n = 8000
    ancestral = w2_fitted(draw("ddpm", 1000, n, seed=0, var_type="fixed_large"))
    dpm = w2_fitted(draw("dpm_solver", 20, n, seed=1))
    assert dpm <= ancestral + 0.015, (dpm, ancestral)


def test_ddim_with_eta_one_has_the_ancestral_posterior_variance():
    _, diffusion = make()
    spaced = respace(diffusion, ddim_timesteps(1000, 20))
    sigmas = ddim_sigmas(spaced.alphas_cumprod, spaced.alphas_cumprod_prev, eta=1.0)
    torch.testing.assert_close(sigmas**2, spaced.posterior_variance, rtol=1e-9, atol=1e-15)
    assert torch.all(ddim_sigmas(spaced.alphas_cumprod, spaced.alphas_cumprod_prev, 0.0) == 0)


def test_ddim_with_eta_one_is_ancestral_sampling_with_the_posterior_variance():
    model, diffusion = make(var_type="fixed_small")
    spaced = respace(diffusion, ddim_timesteps(1000, 20))
    noise = torch.randn(64, *SHAPE, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    ddim = sample_ddim(
        Denoiser(model, spaced), noise, eta=1.0, generator=torch.Generator().manual_seed(1)
    )
    ddpm = sample_ddpm(Denoiser(model, spaced), noise, generator=torch.Generator().manual_seed(1))
    # eq. 12 and the posterior mean are different arithmetic: float64 rounding ~1e-15; a σ_t
    # off by a factor, or the noise drawn at other steps, is off by > 1e-2
    torch.testing.assert_close(ddim, ddpm, atol=1e-9, rtol=0)


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_respacing_that_keeps_every_step_is_the_full_process(sampler):
    model, diffusion = make(var_type="fixed_large", num_timesteps=100)
    noise = torch.randn(64, *SHAPE, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    run = sample_ddpm if sampler == "ddpm" else sample_ddim
    full = run(Denoiser(model, diffusion), noise, generator=torch.Generator().manual_seed(1))
    spaced = sample(
        model, diffusion, noise.shape, sampler, 100, noise=noise,
        generator=torch.Generator().manual_seed(1),
    ).images  # fmt: skip
    # respacing recomputes β from ᾱ: float64 rounding ~1e-16 per constant, ~1e-14 after 100
    # steps; dropping one step moves the samples by ≥ 5e-5 (ddim) or ~0.2 (ddpm)
    torch.testing.assert_close(spaced, full, atol=1e-9, rtol=0)


def test_reverse_ddim_encodes_images_that_ddim_decodes_back():
    model, diffusion = make()
    generator = torch.Generator().manual_seed(3)
    images = (MU + S * torch.randn(16, *SHAPE, generator=generator, dtype=torch.float64)).float()

    def reconstruction_error(steps):
        encoded = ddim_reverse(model, diffusion, images, steps, spacing="quadratic")
        assert encoded.nfe == steps
        decoded = sample(
            model, diffusion, images.shape, "ddim", steps, spacing="quadratic",
            noise=encoded.images, clip_denoised=False,
        ).images  # fmt: skip
        return (decoded - images).abs().max().item(), encoded.images

    error, latents = reconstruction_error(100)
    assert error < 0.06
    assert reconstruction_error(20)[0] > error
    assert 0.7 < latents.std().item() < 1.3  # latents look like noise
    other = sample(model, diffusion, images.shape, "ddim", 100, noise=latents.roll(1, 0))
    assert (other.images - images).abs().max().item() > 10 * error
