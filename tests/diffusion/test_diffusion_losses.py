"""training_losses: pinned values on a fixed input, closed forms, and where gradients flow."""

import math

import numpy as np
import pytest
import torch

from diffusion_lab.diffusion import create_diffusion

SHAPE = (2, 3, 4, 4)
X_START = torch.linspace(-1, 1, 96, dtype=torch.float64).view(SHAPE)
NOISE = torch.sin(torch.arange(96, dtype=torch.float64) * 1.7).view(SHAPE)
T = torch.tensor([10, 500])


def mean_model(x, t):
    return 0.1 * x


def sigma_model(x, t):
    return torch.cat([0.1 * x, torch.tanh(x)], dim=1)


def test_simple_loss_is_the_noise_mse_in_closed_form():
    diffusion = create_diffusion("linear", 1000)
    terms = diffusion.training_losses(mean_model, X_START, T, noise=NOISE)
    abar = np.cumprod(1 - np.linspace(1e-4, 0.02, 1000))[T.numpy()].reshape(-1, 1, 1, 1)
    x_t = np.sqrt(abar) * X_START.numpy() + np.sqrt(1 - abar) * NOISE.numpy()
    expected = ((NOISE.numpy() - 0.1 * x_t) ** 2).mean(axis=(1, 2, 3))
    np.testing.assert_allclose(terms["mse"].numpy(), expected, rtol=1e-12)
    assert terms["loss"].tolist() == pytest.approx([0.5003867484, 0.4089641273], rel=1e-9)
    assert set(terms) == {"loss", "mse"}


@pytest.mark.parametrize(
    "mean_type, var_type, loss_type, expected",
    [
        ("start_x", "fixed_large", "simple", [0.2758404222, 0.3276238124]),
        ("v", "fixed_large", "simple", [0.5040863387, 0.3517676319]),
        ("epsilon", "learned_range", "vlb", [55.38502816, 3.252216993]),
        ("epsilon", "learned_range", "hybrid", [0.5557717766, 0.4122163443]),
        ("v", "learned_range", "hybrid", [0.5597575456, 0.3519853642]),
        ("start_x", "learned_range", "vlb", [13910.59659, 0.2198854883]),
    ],
)
def test_pinned_losses_on_a_fixed_input(mean_type, var_type, loss_type, expected):
    diffusion = create_diffusion("linear", 1000, mean_type, var_type, loss_type)
    model = sigma_model if diffusion.learns_sigma else mean_model
    terms = diffusion.training_losses(model, X_START, T, noise=NOISE)
    assert terms["loss"].tolist() == pytest.approx(expected, rel=1e-8)


def test_vlb_with_the_posterior_variance_is_the_weighted_x0_error():
    """σ² = β̃_t makes L_t = ‖μ̃ − μ_θ‖²/(2β̃_t) = coef1²·‖x_0 − x̂_0‖²/(2β̃_t) (Ho et al., eq. 8)."""
    diffusion = create_diffusion("linear", 1000, "epsilon", "fixed_small", "vlb")
    vb = diffusion.training_losses(mean_model, X_START, T, noise=NOISE)["loss"]
    x_t = diffusion.q_sample(X_START, T, noise=NOISE)
    pred_xstart = diffusion._predict_xstart_from_eps(x_t, T, mean_model(x_t, T))
    coef1 = diffusion.posterior_mean_coef1[T].view(-1, 1, 1, 1)
    variance = diffusion.posterior_variance[T].view(-1, 1, 1, 1)
    per_dim = coef1**2 * (X_START - pred_xstart) ** 2 / (2 * variance)
    expected = per_dim.mean(dim=(1, 2, 3)) / math.log(2) * 1000
    torch.testing.assert_close(vb, expected, rtol=1e-10, atol=0)


def test_hybrid_vb_reaches_only_the_variance_and_mse_only_the_mean():
    diffusion = create_diffusion("cosine", 200, "epsilon", "learned_range", "hybrid")
    t = torch.tensor([0, 150])
    output = torch.randn(2, 6, 4, 4, dtype=torch.float64, requires_grad=True)
    terms = diffusion.training_losses(lambda x, t: output, X_START, t, noise=NOISE)
    (grad_vb,) = torch.autograd.grad(terms["vb"].sum(), output, retain_graph=True)
    assert torch.all(grad_vb[:, :3] == 0) and torch.all(grad_vb[:, 3:].abs().sum((1, 2, 3)) > 0)
    (grad_mse,) = torch.autograd.grad(terms["mse"].sum(), output)
    assert torch.all(grad_mse[:, 3:] == 0) and torch.all(grad_mse[:, :3].abs().sum((1, 2, 3)) > 0)
    # λ = 0.001: the hybrid's vb (L_t·T/1000) is 1/1000 of the full-bound loss (L_t·T)
    vlb = create_diffusion("cosine", 200, "epsilon", "learned_range", "vlb")
    full = vlb.training_losses(lambda x, t: output, X_START, t, noise=NOISE)["loss"]
    torch.testing.assert_close(terms["vb"], full / 1000)
    torch.testing.assert_close(terms["loss"], terms["mse"] + terms["vb"])


def test_vlb_loss_averaged_over_t_is_the_bound_without_its_prior():
    """T·E_t[L_t] = Σ_t L_t: training_losses at every t with calc_bpd_loop's noise."""
    diffusion = create_diffusion("cosine", 30, "v", "learned_range", "vlb")
    x_start = torch.rand(3, 2, 4, 4, dtype=torch.float64) * 2 - 1
    torch.manual_seed(4)
    bound = diffusion.calc_bpd_loop(sigma_model, x_start, clip_denoised=False)
    torch.manual_seed(4)  # calc_bpd_loop draws one noise per step, from t = T−1 down to 0
    noises = {step: torch.randn_like(x_start) for step in range(29, -1, -1)}
    losses = torch.stack(
        [
            diffusion.training_losses(
                sigma_model, x_start, torch.full((3,), step), noise=noises[step]
            )["loss"]
            for step in range(30)
        ],
        dim=1,
    )
    torch.testing.assert_close(losses.mean(dim=1), bound["total_bpd"] - bound["prior_bpd"])
    torch.testing.assert_close(losses / 30, bound["vb"])
    assert bound["vb"].shape == bound["mse"].shape == bound["xstart_mse"].shape == (3, 30)
