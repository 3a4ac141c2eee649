"""Classifier guidance against closed forms on Gaussian data (Dhariwal & Nichol 2021, §4.1–4.2).

x_0 ~ N(m, v·I) has the exact ε*(x_t) = √(1−ᾱ_t)·(x_t − √ᾱ_t·m)/(ᾱ_t·v + 1 − ᾱ_t). With a linear
(logistic) classifier log p(y=1 | x) = log σ(w·x + b), ∇ log p(y | x) = (y − σ(w·x + b))·w, so
Algorithm 1's mean is μ + s·Σ·(y − σ)·w and Algorithm 2's ε̂ is ε* − √(1−ᾱ_t)·s·(y − σ)·w.
The diffusion is respaced, so the classifier must see the original timesteps.
"""

import math

import pytest
import torch

from diffusion_lab.diffusion import create_diffusion
from diffusion_lab.guidance import ClassifierGuidance
from diffusion_lab.sampling.samplers import Denoiser

T = 100
SHAPE = (6, 1, 2, 2)
MEAN = torch.tensor([0.3, -0.2, 0.5, 0.1], dtype=torch.float64)
VAR = 0.3
W = torch.tensor([1.5, -0.7, 0.4, 2.0], dtype=torch.float64)
BASE = create_diffusion(num_timesteps=T, model_var_type="fixed_small")
SPACED = create_diffusion(num_timesteps=T, model_var_type="fixed_small", timestep_respacing="5")
ALPHAS_CUMPROD = BASE.alphas_cumprod  # float64, indexed by original timesteps


def bias(t: torch.Tensor) -> torch.Tensor:
    """b depends on the original timestep, so a respaced index would give a different answer."""
    return 0.5 - 0.01 * t.to(torch.float64)


class Logistic(torch.nn.Module):
    """Logits [0, w·x + b(t)]: p(y = 1 | x_t) = σ(w·x_t + b(t))."""

    def forward(self, x, t):
        logit = x.flatten(1) @ W + bias(t)
        return torch.stack([torch.zeros_like(logit), logit], dim=1)


def gaussian_eps(mean: torch.Tensor, var: float):
    """The exact ε-prediction network for x_0 ~ N(mean, var·I), called with original t."""

    def model(x, t, **_):
        abar = ALPHAS_CUMPROD[t].view(-1, 1, 1, 1)
        centred = x - abar.sqrt() * mean.view(1, *SHAPE[1:])
        return (1 - abar).sqrt() * centred / (abar * var + 1 - abar)

    return model


def gradient(x, y, t):
    """∇_x log p(y | x) of the logistic classifier: (y − σ(w·x + b))·w."""
    p1 = torch.sigmoid(x.flatten(1) @ W + bias(t))
    return ((y - p1).view(-1, 1) * W).view(x.shape)


def setting(seed: int):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(SHAPE, generator=generator, dtype=torch.float64)
    y = torch.tensor([0, 1, 0, 1, 1, 0])
    return x, y


@pytest.mark.parametrize("scale", [0.5, 3.0])
@pytest.mark.parametrize("index", [4, 2, 1])
def test_ancestral_mean_shift_is_s_sigma_grad(index, scale):
    """Algorithm 1: μ + s·Σ·∇ log p(y|x_t), Σ = β̃ of the respaced step, toward class y."""
    x, y = setting(index)
    denoiser = Denoiser(
        gaussian_eps(MEAN, VAR), SPACED, False, {"y": y}, ClassifierGuidance(Logistic(), scale)
    )
    t, t_prev = (int(SPACED.timestep_map[i]) for i in (index, index - 1))
    abar, abar_prev = ALPHAS_CUMPROD[t].item(), ALPHAS_CUMPROD[t_prev].item()
    beta = 1 - abar / abar_prev
    pred_xstart = MEAN.view(1, *SHAPE[1:]) + math.sqrt(abar) * VAR * (
        x - math.sqrt(abar) * MEAN.view(1, *SHAPE[1:])
    ) / (abar * VAR + 1 - abar)
    mean = (
        math.sqrt(abar_prev) * beta * pred_xstart + math.sqrt(1 - beta) * (1 - abar_prev) * x
    ) / (1 - abar)
    sigma = beta * (1 - abar_prev) / (1 - abar)
    expected = mean + scale * sigma * gradient(x, y, torch.full((6,), t))
    torch.testing.assert_close(denoiser.posterior(x, index)["mean"], expected)
    # the shift points to the requested class: w·(shift) has the sign of y − σ, i.e. of 2y − 1
    shift = (expected - mean).flatten(1) @ W
    assert torch.equal(shift > 0, y == 1)


@pytest.mark.parametrize("scale", [0.5, 3.0])
@pytest.mark.parametrize("index", [4, 2, 0])
def test_ddim_score_form_shifts_eps_by_minus_sqrt_one_minus_abar_s_grad(index, scale):
    """Algorithm 2: ε̂ = ε* − √(1−ᾱ_t)·s·∇ log p(y|x_t), at the original timestep t."""
    x, y = setting(10 + index)
    model = gaussian_eps(MEAN, VAR)
    denoiser = Denoiser(model, SPACED, False, {"y": y}, ClassifierGuidance(Logistic(), scale))
    t = torch.full((6,), int(SPACED.timestep_map[index]))
    abar = ALPHAS_CUMPROD[t].view(-1, 1, 1, 1)
    expected = model(x, t) - (1 - abar).sqrt() * scale * gradient(x, y, t)
    torch.testing.assert_close(denoiser(x, index)[1], expected)


@pytest.mark.parametrize("index", [4, 3, 1])
def test_bayes_classifier_at_scale_one_turns_the_mixture_into_the_class(index):
    """For a two-Gaussian mixture, ε_uncond − √(1−ᾱ)·∇ log p(y|x_t) = ε_cond(y) exactly
    (Algorithm 2 with the Bayes posterior, which is logistic in x_t for shared variances)."""
    x, y = setting(20 + index)
    means = torch.stack([MEAN, -MEAN])

    def mixture_eps(x_t, t, **_):
        abar = ALPHAS_CUMPROD[t].view(-1, 1)
        centred = x_t.flatten(1)[:, None] - abar.sqrt()[:, None] * means  # [N, 2, d]
        c = (abar * VAR + 1 - abar)[:, None]
        posterior = torch.softmax(-(centred**2).sum(-1) / (2 * c[..., 0]), dim=1)
        eps = (1 - abar).sqrt() * (posterior[..., None] * centred / c).sum(1)
        return eps.view(x_t.shape)

    class Bayes(torch.nn.Module):
        def forward(self, x_t, t):
            abar = ALPHAS_CUMPROD[t].view(-1, 1)
            centred = x_t.flatten(1)[:, None] - abar.sqrt()[:, None] * means
            return -(centred**2).sum(-1) / (2 * (abar * VAR + 1 - abar))

    denoiser = Denoiser(mixture_eps, SPACED, False, {"y": y}, ClassifierGuidance(Bayes(), 1.0))
    t = torch.full((6,), int(SPACED.timestep_map[index]))
    conditional = torch.stack(
        [gaussian_eps(means[k], VAR)(x[i : i + 1], t[:1])[0] for i, k in enumerate(y.tolist())]
    )
    torch.testing.assert_close(denoiser(x, index)[1], conditional)
