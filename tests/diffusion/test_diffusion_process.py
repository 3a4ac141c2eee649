"""The forward process q and the model's p_θ against closed forms computed independently."""

import numpy as np
import pytest
import torch
from scipy.stats import norm

from diffusion_lab.diffusion import (
    GaussianDiffusion,
    ModelMeanType,
    create_diffusion,
    discretized_gaussian_log_likelihood,
    get_named_beta_schedule,
    normal_kl,
)
from diffusion_lab.errors import ConfigError

SHAPE = (4, 3, 2, 2)


def make(schedule="linear", num_timesteps=1000, **kwargs):
    return GaussianDiffusion(betas=get_named_beta_schedule(schedule, num_timesteps), **kwargs)


def constant(value):
    """A 'network' that returns `value` whatever its input."""
    return lambda x, t, **_: value


def test_constants_match_an_independent_float64_computation():
    betas = get_named_beta_schedule("cosine", 50)
    diffusion = make("cosine", 50)
    alphas_cumprod = np.cumprod(1 - betas)
    previous = np.concatenate([[1.0], alphas_cumprod[:-1]])
    expected = {
        "betas": betas,
        "alphas_cumprod": alphas_cumprod,
        "alphas_cumprod_prev": previous,
        "alphas_cumprod_next": np.concatenate([alphas_cumprod[1:], [0.0]]),
        "sqrt_alphas_cumprod": np.sqrt(alphas_cumprod),
        "sqrt_one_minus_alphas_cumprod": np.sqrt(1 - alphas_cumprod),
        "sqrt_recip_alphas_cumprod": 1 / np.sqrt(alphas_cumprod),
        "sqrt_recipm1_alphas_cumprod": np.sqrt(1 / alphas_cumprod - 1),
        "posterior_variance": betas * (1 - previous) / (1 - alphas_cumprod),
        "posterior_mean_coef1": betas * np.sqrt(previous) / (1 - alphas_cumprod),
        "posterior_mean_coef2": (1 - previous) * np.sqrt(1 - betas) / (1 - alphas_cumprod),
    }
    for name, values in expected.items():
        constant_ = getattr(diffusion, name)
        assert constant_.dtype == torch.float64 and constant_.device.type == "cpu", name
        np.testing.assert_allclose(constant_.numpy(), values, rtol=1e-12, err_msg=name)
    clipped = np.log(
        np.concatenate([[expected["posterior_variance"][1]], expected["posterior_variance"][1:]])
    )
    np.testing.assert_allclose(
        diffusion.posterior_log_variance_clipped.numpy(), clipped, rtol=1e-12
    )
    assert diffusion.num_timesteps == 50


def test_marginal_equals_chained_one_step_kernels():
    """x_t from t+1 steps of q(x_s | x_{s−1}) = N(√(1−β_s)·x_{s−1}, β_s) has law q(x_t | x_0):
    exactly for the moments' recursion, within Monte Carlo error for the samples."""
    diffusion = make()
    samples = 20000
    x_start = torch.tensor([-0.8, -0.1, 0.3, 0.9], dtype=torch.float64)
    x = x_start.repeat(samples, 1)
    chain_mean, chain_variance = x_start.clone(), torch.zeros(4, dtype=torch.float64)
    generator = torch.Generator().manual_seed(0)
    checked = {0, 1, 4, 60, 300}
    for step in range(max(checked) + 1):
        beta = diffusion.betas[step]
        noise = torch.randn(x.shape, generator=generator, dtype=torch.float64)
        x = torch.sqrt(1 - beta) * x + torch.sqrt(beta) * noise
        chain_mean = torch.sqrt(1 - beta) * chain_mean
        chain_variance = (1 - beta) * chain_variance + beta
        if step not in checked:
            continue
        t = torch.full((4,), step)
        mean, variance, log_variance = diffusion.q_mean_variance(x_start.view(4, 1), t)
        mean, variance = mean.view(4), variance.view(4)
        torch.testing.assert_close(mean, chain_mean, rtol=1e-12, atol=0)
        torch.testing.assert_close(variance, chain_variance, rtol=1e-10, atol=0)
        torch.testing.assert_close(log_variance.view(4).exp(), variance, rtol=1e-12, atol=0)
        direct = diffusion.q_sample(x_start.repeat(samples, 1), torch.full((samples,), step))
        standard_error = torch.sqrt(2 * variance / samples)  # of a difference of two means
        assert torch.all((x.mean(0) - direct.mean(0)).abs() < 5 * standard_error), step
        assert torch.all((x.var(0) / direct.var(0) - 1).abs() < 5 * (4 / samples) ** 0.5), step
        assert torch.all((x.var(0) / variance - 1).abs() < 5 * (2 / samples) ** 0.5), step


def test_posterior_is_bayes_rule():
    """q(x_{t−1}|x_t,x_0) ∝ q(x_t|x_{t−1})·q(x_{t−1}|x_0): a product of two Gaussians in x_{t−1}."""
    betas = get_named_beta_schedule("cosine", 100)
    diffusion = make("cosine", 100)
    t = torch.tensor([1, 2, 10, 50, 98, 99])
    generator = torch.Generator().manual_seed(1)
    x_start = torch.rand((6, 1), generator=generator, dtype=torch.float64) * 2 - 1
    x_t = torch.randn((6, 1), generator=generator, dtype=torch.float64)
    mean, variance, log_variance = diffusion.q_posterior_mean_variance(x_start, x_t, t)

    beta = betas[t.numpy()]
    abar_prev = np.cumprod(1 - betas)[t.numpy() - 1]
    # q(x_t|x_{t−1}) as a density in x_{t−1}: N(x_t/√α_t, β_t/α_t); q(x_{t−1}|x_0) = N(√ᾱ x_0, 1−ᾱ)
    precision = (1 - beta) / beta + 1 / (1 - abar_prev)
    expected_mean = (
        np.sqrt(1 - beta) / beta * x_t.view(-1).numpy()
        + np.sqrt(abar_prev) / (1 - abar_prev) * x_start.view(-1).numpy()
    ) / precision
    np.testing.assert_allclose(mean.view(-1).numpy(), expected_mean, rtol=1e-10)
    np.testing.assert_allclose(variance.view(-1).numpy(), 1 / precision, rtol=1e-10)
    np.testing.assert_allclose(log_variance.view(-1).numpy(), -np.log(precision), rtol=1e-10)
    # at t = 0 the posterior is x_0 itself
    mean0, variance0, _ = diffusion.q_posterior_mean_variance(
        x_start, x_t, torch.zeros(6, dtype=torch.long)
    )
    torch.testing.assert_close(mean0, x_start)
    assert torch.all(variance0 == 0)


def test_normal_kl_zero_for_identical_and_closed_form_otherwise():
    mean, log_variance = torch.randn(10, dtype=torch.float64), torch.randn(10, dtype=torch.float64)
    assert torch.all(normal_kl(mean, log_variance, mean, log_variance).abs() < 1e-15)
    # KL(N(0, 1) ‖ N(1, 4)) = log 2 + (1 + 1)/(2·4) − 1/2
    value = normal_kl(torch.tensor(0.0, dtype=torch.float64), 0.0, 1.0, np.log(4.0))
    assert value.item() == pytest.approx(np.log(2) + 0.25 - 0.5, rel=1e-12)


def test_discretized_likelihood_is_a_distribution_over_the_256_levels():
    levels = torch.linspace(-1, 1, 256, dtype=torch.float64)
    mean, log_scale = torch.full_like(levels, 0.13), torch.full_like(levels, np.log(0.21))
    probs = discretized_gaussian_log_likelihood(levels, means=mean, log_scales=log_scale).exp()
    assert probs.sum().item() == pytest.approx(1.0, abs=1e-12)  # the bins tile the real line
    upper = np.append(levels[:-1].numpy() + 1 / 255, np.inf)
    lower = np.append(-np.inf, levels[1:].numpy() - 1 / 255)
    exact = norm.cdf((upper - 0.13) / 0.21) - norm.cdf((lower - 0.13) / 0.21)
    np.testing.assert_allclose(probs.numpy(), exact, atol=3e-5)  # tanh approximation of Φ


@pytest.mark.parametrize("mean_type", ["epsilon", "start_x", "v"])
def test_parameterisations_agree_on_exact_targets(mean_type):
    diffusion = make("cosine", 200, model_mean_type=mean_type, model_var_type="fixed_small")
    generator = torch.Generator().manual_seed(2)
    x_start = torch.rand(SHAPE, generator=generator, dtype=torch.float64) * 2 - 1
    noise = torch.randn(SHAPE, generator=generator, dtype=torch.float64)
    t = torch.tensor([0, 1, 100, 199])
    x_t = diffusion.q_sample(x_start, t, noise=noise)
    a = diffusion.sqrt_alphas_cumprod[t].view(-1, 1, 1, 1)
    b = diffusion.sqrt_one_minus_alphas_cumprod[t].view(-1, 1, 1, 1)
    target = {"epsilon": noise, "start_x": x_start, "v": a * noise - b * x_start}[mean_type]
    out = diffusion.p_mean_variance(constant(target), x_t, t, clip_denoised=False)
    torch.testing.assert_close(out["pred_xstart"], x_start, rtol=0, atol=1e-9)
    expected_mean, _, _ = diffusion.q_posterior_mean_variance(x_start, x_t, t)
    torch.testing.assert_close(out["mean"], expected_mean, rtol=0, atol=1e-9)
    eps = diffusion._predict_eps_from_xstart(x_t, t, out["pred_xstart"])
    torch.testing.assert_close(eps, noise, rtol=0, atol=1e-6)
    assert diffusion.model_mean_type == ModelMeanType(mean_type) == mean_type


def test_q_sample_then_x0_from_true_noise_recovers_x0():
    diffusion = make()
    x_start = torch.rand(SHAPE, dtype=torch.float64) * 2 - 1
    noise = torch.randn(SHAPE, dtype=torch.float64)
    for step in (0, 250, 999):
        t = torch.full((SHAPE[0],), step)
        x_t = diffusion.q_sample(x_start, t, noise=noise)
        recovered = diffusion._predict_xstart_from_eps(x_t, t, noise)
        torch.testing.assert_close(recovered, x_start, rtol=0, atol=1e-10)
    x32 = x_start.float()
    t = torch.full((SHAPE[0],), 999)
    recovered = diffusion._predict_xstart_from_eps(
        diffusion.q_sample(x32, t, noise.float()), t, noise.float()
    )
    assert recovered.dtype == torch.float32
    torch.testing.assert_close(recovered, x32, rtol=0, atol=1e-4)


def test_learned_range_endpoints_are_log_posterior_and_log_beta():
    diffusion = make(model_var_type="learned_range", loss_type="hybrid")
    x = torch.zeros(3, 1, 2, 2, dtype=torch.float64)
    t = torch.tensor([0, 487, 999])
    for value, expected in [
        (-1.0, diffusion.posterior_log_variance_clipped[t]),
        (1.0, torch.log(diffusion.betas[t])),
        (0.0, 0.5 * (diffusion.posterior_log_variance_clipped[t] + torch.log(diffusion.betas[t]))),
    ]:
        output = torch.cat([torch.zeros_like(x), torch.full_like(x, value)], dim=1)
        out = diffusion.p_mean_variance(constant(output), x, t)
        torch.testing.assert_close(out["log_variance"][:, 0, 0, 0], expected, rtol=1e-12, atol=0)
        torch.testing.assert_close(out["variance"], out["log_variance"].exp())
    learned = make(model_var_type="learned", loss_type="vlb")
    output = torch.cat([torch.zeros_like(x), torch.full_like(x, -3.5)], dim=1)
    assert torch.all(learned.p_mean_variance(constant(output), x, t)["log_variance"] == -3.5)


def test_fixed_variances_and_their_t0_value():
    """As improved-diffusion: at t = 0 both log variances are log β̃_1 (β̃_0 = 0); fixed_small's
    variance itself stays β̃_0 = 0 there (no guidance shift at the last step)."""
    t = torch.tensor([0, 1, 487])
    x = torch.zeros(3, 1, 1, 1, dtype=torch.float64)
    small = make(model_var_type="fixed_small").p_mean_variance(constant(x), x, t)
    large = make(model_var_type="fixed_large").p_mean_variance(constant(x), x, t)
    diffusion = make()
    first, beta = diffusion.posterior_variance[1], diffusion.betas
    expected_small = torch.stack([first, first, diffusion.posterior_variance[487]])
    torch.testing.assert_close(small["log_variance"].view(-1), expected_small.log())
    torch.testing.assert_close(small["variance"].view(-1), diffusion.posterior_variance[t])
    expected_large = torch.stack([first, beta[1], beta[487]])
    torch.testing.assert_close(large["variance"].view(-1), expected_large)
    torch.testing.assert_close(large["log_variance"].view(-1), expected_large.log())


def test_clip_and_denoised_fn_act_on_pred_xstart_in_order():
    diffusion = make(model_mean_type="start_x")
    x = torch.zeros(2, 1, 1, 1)
    t = torch.tensor([5, 5])
    output = torch.tensor([3.0, -0.2]).view(2, 1, 1, 1)
    out = diffusion.p_mean_variance(constant(output), x, t, denoised_fn=lambda x0: x0 / 2)
    assert out["pred_xstart"].view(-1).tolist() == pytest.approx([1.0, -0.1])


def test_guidance_shifts_mean_by_variance_and_eps_by_sigma():
    diffusion = make(model_var_type="fixed_small")
    x = torch.randn(SHAPE, dtype=torch.float64)
    t = torch.tensor([3, 100, 500, 999])
    eps = torch.randn(SHAPE, dtype=torch.float64)
    gradient = torch.randn(SHAPE, dtype=torch.float64)
    out = diffusion.p_mean_variance(constant(eps), x, t, clip_denoised=False)
    seen = []

    def cond_fn(x_, t_, y):
        seen.append((t_, y))
        return gradient

    mean = diffusion.condition_mean(cond_fn, out, x, t, model_kwargs={"y": 7})
    torch.testing.assert_close(mean, out["mean"] + out["variance"] * gradient)
    guided = diffusion.condition_score(cond_fn, out, x, t, model_kwargs={"y": 7})
    sigma = diffusion.sqrt_one_minus_alphas_cumprod[t].view(-1, 1, 1, 1)
    torch.testing.assert_close(
        diffusion._predict_eps_from_xstart(x, t, guided["pred_xstart"]), eps - sigma * gradient
    )
    expected_mean, _, _ = diffusion.q_posterior_mean_variance(guided["pred_xstart"], x, t)
    torch.testing.assert_close(guided["mean"], expected_mean)
    assert guided["variance"] is out["variance"] and all(
        torch.equal(s, t) and y == 7 for s, y in seen
    )


def empty_output(channels):
    return lambda x, t, **_: torch.empty(x.shape[0], channels, *x.shape[2:], device=x.device)


def test_hot_path_has_no_host_round_trip():
    """On the meta device any .item()/.tolist()/data-dependent branch raises: none is taken."""
    x = torch.empty(SHAPE, device="meta")
    t = torch.zeros(SHAPE[0], dtype=torch.long, device="meta")
    for var_type, loss_type in [
        ("fixed_large", "simple"),
        ("learned_range", "hybrid"),
        ("learned", "vlb"),
    ]:
        for respacing in (None, "50"):
            diffusion = create_diffusion(
                "cosine", 100, "v", var_type, loss_type, timestep_respacing=respacing
            )
            model = empty_output(6 if diffusion.learns_sigma else 3)
            terms = diffusion.training_losses(model, x, t)
            assert terms["loss"].device.type == "meta" and terms["loss"].shape == (SHAPE[0],)
            out = diffusion.p_mean_variance(model, x, t)
            assert all(v.device.type == "meta" and v.shape == SHAPE for v in out.values())
            assert diffusion.betas.device.type == "cpu" and diffusion.betas.dtype == torch.float64


def test_bf16_autocast_output_is_upcast_before_the_math():
    diffusion = make(model_var_type="learned_range", loss_type="hybrid")
    layer = torch.nn.Conv2d(3, 6, 1)
    x_start = torch.rand(SHAPE) * 2 - 1
    t = torch.tensor([0, 10, 500, 999])
    noise = torch.randn(SHAPE)

    def model(x, t_):
        return layer(x)

    reference = diffusion.training_losses(model, x_start, t, noise=noise)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert model(x_start, t).dtype == torch.bfloat16
        terms = diffusion.training_losses(model, x_start, t, noise=noise)
        out = diffusion.p_mean_variance(model, x_start, t)
    assert all(v.dtype == torch.float32 for v in [*terms.values(), *out.values()])
    torch.testing.assert_close(terms["loss"], reference["loss"], rtol=2e-2, atol=2e-2)


def test_float32_arithmetic_agrees_with_float64():
    diffusion = make("cosine", 1000, model_var_type="learned_range", loss_type="vlb")
    generator = torch.Generator().manual_seed(3)
    x64 = torch.rand(SHAPE, generator=generator, dtype=torch.float64) * 2 - 1
    output64 = torch.randn((4, 6, 2, 2), generator=generator, dtype=torch.float64).tanh()
    t = torch.tensor([0, 1, 600, 998])
    out64 = diffusion.p_mean_variance(constant(output64), x64, t)
    out32 = diffusion.p_mean_variance(constant(output64.float()), x64.float(), t)
    for key in out64:
        assert out32[key].dtype == torch.float32
        torch.testing.assert_close(out32[key], out64[key].float(), rtol=1e-5, atol=1e-6)
    # 1 − ᾱ_t is formed in float64 before the cast: no cancellation at small t
    variance32 = diffusion.q_mean_variance(x64.float(), t)[1]
    torch.testing.assert_close(variance32, diffusion.q_mean_variance(x64, t)[1].float())


def test_choices_are_validated_with_allowed_values():
    betas = get_named_beta_schedule("linear", 50)
    with pytest.raises(ConfigError, match="model_mean_type='x0'.*'epsilon', 'start_x', 'v'"):
        GaussianDiffusion(betas=betas, model_mean_type="x0")
    with pytest.raises(ConfigError, match="model_var_type='big'.*'fixed_small'"):
        GaussianDiffusion(betas=betas, model_var_type="big")
    with pytest.raises(ConfigError, match="loss_type='kl'.*'simple', 'vlb', 'hybrid'"):
        create_diffusion(loss_type="kl")
    with pytest.raises(ConfigError, match="betas"):
        GaussianDiffusion(betas=[0.1, 0.0])
    with pytest.raises(ConfigError, match="no gradient"):
        create_diffusion(model_var_type="learned_range", loss_type="simple")
    with pytest.raises(ConfigError, match="is fixed"):
        create_diffusion(model_var_type="fixed_small", loss_type="hybrid")
    # constructing it directly is allowed (a sampler needs no loss), training is not
    direct = GaussianDiffusion(betas=betas, model_var_type="learned", loss_type="simple")
    x = torch.zeros(2, 1, 2, 2)
    with pytest.raises(ConfigError, match="no gradient"):
        direct.training_losses(constant(torch.zeros(2, 2, 2, 2)), x, torch.tensor([1, 2]))
    with pytest.raises(ValueError, match="learn_sigma"):
        direct.p_mean_variance(constant(x), x, torch.tensor([1, 2]))
    assert direct.learns_sigma and not create_diffusion().learns_sigma
