"""Beta schedules: pinned values, closed forms, and the config presets that name them."""

import math

import numpy as np
import pytest
from omegaconf import OmegaConf

from diffusion_lab import CONFIG_DIR
from diffusion_lab.diffusion import (
    create_diffusion,
    create_named_schedule_sampler,
    get_named_beta_schedule,
)
from diffusion_lab.errors import ConfigError


def test_linear_spans_ddpm_range_scaled_by_1000_over_t():
    betas = get_named_beta_schedule("linear", 1000)
    assert betas.dtype == np.float64 and betas.shape == (1000,)
    assert (betas[0], betas[-1]) == pytest.approx((1e-4, 0.02), rel=1e-12)
    long = get_named_beta_schedule("linear", 4000)
    assert (long[0], long[-1]) == pytest.approx((2.5e-5, 0.005), rel=1e-12)
    assert np.all(np.diff(long) > 0)


def test_linear_posterior_variance_pinned():
    diffusion = create_diffusion("linear", 1000)
    assert diffusion.posterior_variance[487].item() == pytest.approx(0.0097916, abs=5e-8)
    assert diffusion.posterior_variance[0].item() == 0.0


def test_cosine_pinned_values_and_single_clip():
    betas = get_named_beta_schedule("cosine", 1000)
    assert betas[0] == pytest.approx(4.1284e-05, rel=1e-4)
    assert np.sum(betas == 0.999) == 1 and betas[-1] == 0.999 and betas[-2] < 0.999

    # ᾱ_T telescopes: ᾱ(1 − 1/T)/ᾱ(0) for the unclipped steps, times 1 − 0.999 for the last
    def f(t):
        return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2

    alphas_cumprod_last = f(0.999) / f(0.0) * 0.001
    assert alphas_cumprod_last == pytest.approx(2.4287669e-09, rel=1e-7)
    assert np.prod(1 - betas) == pytest.approx(alphas_cumprod_last, rel=1e-10)


def test_cosine_alpha_bar_follows_the_formula_at_every_step():
    num_timesteps = 200
    alphas_cumprod = np.cumprod(1 - get_named_beta_schedule("cosine", num_timesteps))
    t = np.arange(1, num_timesteps) / num_timesteps
    expected = (
        np.cos((t + 0.008) / 1.008 * np.pi / 2) ** 2 / math.cos(0.008 / 1.008 * np.pi / 2) ** 2
    )
    np.testing.assert_allclose(alphas_cumprod[:-1], expected, rtol=1e-10)


def test_sigmoid_alpha_bar_is_the_normalised_sigmoid():
    num_timesteps = 1000
    betas = get_named_beta_schedule("sigmoid", num_timesteps)
    assert np.all((betas > 0) & (betas <= 0.999)) and betas[-1] == 0.999

    def sigmoid(z):
        return 1 / (1 + np.exp(-z))

    t = np.arange(1, num_timesteps) / num_timesteps
    expected = (sigmoid(3) - sigmoid(6 * t - 3)) / (sigmoid(3) - sigmoid(-3))
    np.testing.assert_allclose(np.cumprod(1 - betas)[:-1], expected, rtol=1e-9)
    assert betas[0] == pytest.approx(3.00279e-4, rel=1e-5)


def test_unknown_schedule_names_key_and_choices():
    with pytest.raises(ConfigError, match="schedule='quadratic'.*linear.*cosine.*sigmoid"):
        get_named_beta_schedule("quadratic", 1000)
    with pytest.raises(ConfigError, match="num_timesteps"):
        get_named_beta_schedule("cosine", 0)
    with pytest.raises(ConfigError, match="num_timesteps=20.*linear"):
        get_named_beta_schedule("linear", 20)  # β_T = 0.02·1000/T reaches 1


# loss=edm selects the EDM process instead (tests/processes/test_processes_edm_train_cli.py)
GAUSSIAN_LOSSES = sorted(p.stem for p in (CONFIG_DIR / "loss").glob("*.yaml") if p.stem != "edm")


@pytest.mark.parametrize(
    "schedule", sorted(p.stem for p in (CONFIG_DIR / "schedule").glob("*.yaml"))
)
@pytest.mark.parametrize("loss", GAUSSIAN_LOSSES)
def test_every_preset_builds_a_diffusion(schedule, loss):
    schedule_cfg = OmegaConf.load(CONFIG_DIR / "schedule" / f"{schedule}.yaml")
    loss_cfg = OmegaConf.load(CONFIG_DIR / "loss" / f"{loss}.yaml")
    assert schedule_cfg.name == schedule and schedule_cfg.num_timesteps == 1000
    diffusion = create_diffusion(
        schedule=schedule_cfg.name,
        num_timesteps=schedule_cfg.num_timesteps,
        model_mean_type=loss_cfg.model_mean_type,
        model_var_type=loss_cfg.model_var_type,
        loss_type=loss_cfg.loss_type,
    )
    create_named_schedule_sampler(loss_cfg.timestep_sampler, diffusion)
    assert diffusion.loss_type.value == loss


def test_loss_presets_are_the_papers():
    presets = {
        name: OmegaConf.load(CONFIG_DIR / "loss" / f"{name}.yaml") for name in GAUSSIAN_LOSSES
    }
    edm = OmegaConf.load(CONFIG_DIR / "loss" / "edm.yaml")
    assert "override /process" in str(edm.defaults) and "edm" in str(edm.defaults)
    rows = {
        name: (cfg.model_mean_type, cfg.model_var_type, cfg.timestep_sampler)
        for name, cfg in presets.items()
    }
    assert rows == {
        "simple": ("epsilon", "fixed_large", "uniform"),
        "hybrid": ("epsilon", "learned_range", "uniform"),
        "vlb": ("epsilon", "learned_range", "loss_aware"),
    }
