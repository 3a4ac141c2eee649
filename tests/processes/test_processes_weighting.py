"""Loss weightings of the Gaussian process: min-SNR-γ agrees across targets in closed form;
`loss.weighting` reaches the module, and hyperparameters without a process still build."""

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir

from diffusion_lab import CONFIG_DIR
from diffusion_lab.errors import ConfigError
from diffusion_lab.lightning import DiffusionModule
from diffusion_lab.processes import create_process
from diffusion_lab.train import build_module

SHAPE = (6, 1, 4, 4)
X_START = torch.linspace(-1, 1, 96, dtype=torch.float64).view(SHAPE)
NOISE = torch.sin(torch.arange(96, dtype=torch.float64) * 1.7).view(SHAPE)
T = torch.tensor([0, 5, 40, 99, 200, 999])  # SNR from ~1e4 (t = 0) to ~4e-5: both sides of γ


def diffusion_kwargs(mean_type: str) -> dict:
    return {"schedule": "linear", "num_timesteps": 1000, "model_mean_type": mean_type}


def target_model(process):
    """A network whose x̂_0 = 0.7·x_t + 0.1 for every target, written in its own space."""
    diffusion = process.diffusion
    abar = diffusion.alphas_cumprod

    def model(x_t, t):
        a = abar[t].view(-1, 1, 1, 1)
        pred_x0 = 0.7 * x_t + 0.1
        eps = (x_t - a.sqrt() * pred_x0) / (1 - a).sqrt()
        v = (a.sqrt() * x_t - pred_x0) / (1 - a).sqrt()
        return {"epsilon": eps, "start_x": pred_x0, "v": v}[diffusion.model_mean_type.value]

    return model


def x0_error(process) -> torch.Tensor:
    """mean((x̂_0 − x_0)²) [N], the same for every target."""
    x_t = process.diffusion.q_sample(X_START, T, noise=NOISE)
    return ((0.7 * x_t + 0.1 - X_START) ** 2).mean(dim=(1, 2, 3))


@pytest.mark.parametrize(
    "weighting, x0_weight",
    [
        ("min_snr", lambda snr, g: np.minimum(snr, g)),
        ("soft_min_snr", lambda snr, g: snr * g / (snr + g)),
    ],
)
def test_min_snr_losses_of_eps_x0_and_v_agree_on_x0(weighting, x0_weight):
    gamma = 5.0
    losses = {}
    for mean_type in ("epsilon", "start_x", "v"):
        process = create_process(
            {"name": "gaussian", "weighting": weighting, "snr_gamma": gamma},
            diffusion_kwargs(mean_type),
        )
        terms = process.training_losses(target_model(process), X_START, T, noise=NOISE)
        losses[mean_type] = terms["loss"].numpy()
    abar = np.cumprod(1 - np.linspace(1e-4, 0.02, 1000))[T.numpy()]
    expected = x0_weight(abar / (1 - abar), gamma) * x0_error(process).numpy()
    # float64 throughout; ε and v divide by √(1−ᾱ) ≈ 1e-2 at t = 0, so ~1e-14 relative error
    for mean_type, loss in losses.items():
        np.testing.assert_allclose(loss, expected, rtol=1e-9, err_msg=mean_type)


def test_uniform_weighting_is_the_diffusions_loss_bit_for_bit():
    process = create_process(None, diffusion_kwargs("epsilon"))
    model = target_model(process)
    terms = process.training_losses(model, X_START, T, noise=NOISE)
    reference = process.diffusion.training_losses(model, X_START, T, noise=NOISE)
    assert torch.equal(terms["loss"], reference["loss"])


def test_min_snr_caps_the_weight_of_small_t_and_keeps_the_mse():
    process = create_process(
        {"name": "gaussian", "weighting": "min_snr"}, diffusion_kwargs("epsilon")
    )
    model = target_model(process)
    terms = process.training_losses(model, X_START, T, noise=NOISE)
    plain = process.diffusion.training_losses(model, X_START, T, noise=NOISE)
    torch.testing.assert_close(terms["mse"], plain["mse"], rtol=0, atol=0)
    assert terms["loss"][0] < 1e-2 * plain["loss"][0]  # SNR ≈ 1e4 at t = 0: weight 5/SNR
    torch.testing.assert_close(terms["loss"][-1], plain["loss"][-1])  # SNR < γ: weight 1


@pytest.mark.parametrize(
    "options, key",
    [
        ({"weighting": "snr"}, "loss.weighting"),
        ({"weighting": "min_snr", "snr_gamma": 0}, "loss.snr_gamma"),
        ({"name": "hot"}, "process.name"),
    ],
)
def test_bad_weighting_or_process_names_the_key(options, key):
    with pytest.raises(ConfigError, match=key):
        create_process({"name": "gaussian", **options}, diffusion_kwargs("epsilon"))


def test_min_snr_with_the_vlb_loss_is_refused():
    kwargs = {**diffusion_kwargs("epsilon"), "loss_type": "vlb", "model_var_type": "learned_range"}
    with pytest.raises(ConfigError, match="loss.weighting"):
        create_process({"name": "gaussian", "weighting": "min_snr"}, kwargs)


def compose_train(*overrides: str):
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose(config_name="train", overrides=["experiment=quickstart", *overrides])


def test_loss_weighting_reaches_the_modules_process():
    module = build_module(compose_train("loss.weighting=soft_min_snr", "loss.snr_gamma=2.0"))
    assert module.hparams.process == {
        "name": "gaussian",
        "weighting": "soft_min_snr",
        "snr_gamma": 2.0,
    }
    assert module.process.weighting == "soft_min_snr" and module.process.snr_gamma == 2.0
    with pytest.raises(ConfigError, match="loss.weighting"):
        build_module(compose_train("loss.weighting=max_snr"))


def test_a_module_from_before_processes_trains_the_uniform_gaussian_process():
    hparams = dict(build_module(compose_train()).hparams)
    hparams.pop("process")  # a checkpoint's hyperparameters from before the process argument
    module = DiffusionModule(**hparams)
    assert module.process.kind == "gaussian" and module.process.weighting == "uniform"
