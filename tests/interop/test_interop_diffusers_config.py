"""diffusers configs <-> the lab's (without diffusers installed): google/ddpm-cifar10-32 is the
ddpm_cifar10 preset, schedulers map to the lab's processes, and what cannot be expressed is
refused by name."""

import pytest
import torch

from benchmarks.unet_benchmark import DIFFUSERS_CONFIG
from diffusion_lab.errors import ConfigError
from diffusion_lab.interop.diffusers_config import diffusers_config, lab_net_config
from diffusion_lab.interop.diffusers_scheduler import (
    diffusion_from_scheduler,
    scheduler_from_diffusion,
)
from diffusion_lab.models import UNetModel
from diffusion_lab.models.presets import preset_config

SMALL = {
    "sample_size": 16,
    "block_out_channels": [32, 64],
    "layers_per_block": 1,
    "down_block_types": ["DownBlock2D", "AttnDownBlock2D"],
    "up_block_types": ["AttnUpBlock2D", "UpBlock2D"],
}


def test_google_ddpm_cifar10_is_the_ddpm_cifar10_preset_with_tf_conventions():
    config = lab_net_config({"_class_name": "UNet2DModel", **DIFFUSERS_CONFIG, "dropout": 0.1})
    preset = preset_config("ddpm_cifar10", 32, 3)
    assert config["conventions"] == "ddpm_tf"
    assert {key: config[key] for key in preset} == preset
    with torch.device("meta"):
        net = UNetModel(**{k: v for k, v in config.items() if k != "_target_"})
    assert sum(p.numel() for p in net.parameters()) == 35_746_307

    back = diffusers_config({**preset, "conventions": "ddpm_tf"}, learn_sigma=False)
    for key, value in DIFFUSERS_CONFIG.items():
        expected = list(value) if isinstance(value, tuple) else value
        assert back[key] == expected, key


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"time_embedding_type": "fourier"}, "time_embedding_type='fourier'"),
        ({"center_input_sample": True}, "center_input_sample=True"),
        ({"norm_num_groups": 16}, "norm_num_groups=16"),
        ({"mid_block_scale_factor": 1.414}, "mid_block_scale_factor=1.414"),
        ({"class_embed_type": "timestep"}, "class_embed_type='timestep'"),
        ({"add_attention": False}, "add_attention=False"),
        ({"flip_sin_to_cos": False}, "flip_sin_to_cos=False, freq_shift=0"),
        ({"block_out_channels": [32, 48]}, r"block_out_channels=\[32, 48\]"),
        ({"time_embedding_dim": 64}, "time_embedding_dim=64"),
        ({"resnet_time_scale_shift": "scale_shift"}, "attn_norm_num_groups=None"),
        ({"up_block_types": ["UpBlock2D", "AttnUpBlock2D"]}, "same levels on the way down"),
        (
            {"down_block_types": ["CrossAttnDownBlock2D", "AttnDownBlock2D"]},
            "resamples all levels alike",
        ),
        (
            {"down_block_types": ["ResnetDownsampleBlock2D", "AttnDownBlock2D"]},
            "resamples all levels alike",
        ),
        ({"sample_size": [16, 32]}, "square images"),
        ({"sample_size": None}, "needs the image size"),
        ({"_class_name": "UNet2DConditionModel"}, "not a UNet2DModel"),
    ],
)
def test_inexpressible_unet_configs_are_refused_by_name(change, message):
    with pytest.raises(ConfigError, match=message):
        lab_net_config({**SMALL, **change})


def test_swish_is_silu_and_heads_map_to_channels_per_head():
    config = lab_net_config({**SMALL, "act_fn": "swish", "attention_head_dim": 16})
    assert (config["num_heads"], config["num_head_channels"]) == (1, 16)
    assert lab_net_config({**SMALL, "attention_head_dim": None})["num_head_channels"] == -1
    # diffusers' default attention_head_dim is 8, not one head per layer
    assert lab_net_config(SMALL)["num_head_channels"] == 8


def test_lab_head_counts_diffusers_cannot_hold_are_refused():
    heads = {**preset_config("iddpm_cifar10", 32, 3)}  # 4 heads at 16 and 8 px: 256 channels each
    assert diffusers_config(heads, learn_sigma=True)["attention_head_dim"] == 64
    uneven = {**heads, "channel_mult": [1, 2, 4, 4]}  # 256 and 512 channels
    with pytest.raises(ConfigError, match="num_heads=4 over attention layers of widths"):
        diffusers_config(uneven, learn_sigma=True)
    classifier = {"_target_": "diffusion_lab.models.EncoderUNetModel"}
    with pytest.raises(ConfigError, match="only the lab's UNetModel"):
        diffusers_config(classifier, learn_sigma=False)


@pytest.mark.parametrize(
    ("scheduler", "learn_sigma", "expected"),
    [
        ({}, False, ("linear", 1000, "epsilon", "fixed_small", "simple")),  # DDPMScheduler's
        (
            {"variance_type": "fixed_large"},
            False,
            ("linear", 1000, "epsilon", "fixed_large", "simple"),
        ),
        ({}, True, ("linear", 1000, "epsilon", "learned_range", "hybrid")),
        (
            {"beta_schedule": "squaredcos_cap_v2", "num_train_timesteps": 4000},
            False,
            ("cosine", 4000, "epsilon", "fixed_small", "simple"),
        ),
        (
            {"num_train_timesteps": 2000, "beta_start": 5e-5, "beta_end": 0.01},
            False,
            ("linear", 2000, "epsilon", "fixed_small", "simple"),
        ),
        (
            {"prediction_type": "sample"},
            False,
            ("linear", 1000, "start_x", "fixed_small", "simple"),
        ),
        (
            {"prediction_type": "v_prediction"},
            False,
            ("linear", 1000, "v", "fixed_small", "simple"),
        ),
    ],
)
def test_schedulers_map_to_the_labs_processes(scheduler, learn_sigma, expected):
    settings = diffusion_from_scheduler(scheduler, learn_sigma)
    keys = ("schedule", "num_timesteps", "model_mean_type", "model_var_type", "loss_type")
    assert tuple(settings[key] for key in keys) == expected
    assert diffusion_from_scheduler(scheduler_from_diffusion(settings), learn_sigma) == settings


@pytest.mark.parametrize(
    ("scheduler", "learn_sigma", "message"),
    [
        ({"beta_schedule": "scaled_linear"}, False, "beta_schedule='scaled_linear'"),
        ({"beta_schedule": "sigmoid"}, False, "'sigmoid' is not the lab's"),
        ({"beta_end": 0.012}, False, "beta_end=0.012 over 1000 steps"),
        ({"trained_betas": [0.1, 0.2]}, False, "trained_betas is set"),
        ({"variance_type": "learned"}, True, "variance_type='learned'"),
        ({"variance_type": "fixed_small"}, True, "out_channels are twice"),
        ({"prediction_type": "flow"}, False, "prediction_type='flow'"),
    ],
)
def test_schedulers_the_lab_lacks_are_refused(scheduler, learn_sigma, message):
    with pytest.raises(ConfigError, match=message):
        diffusion_from_scheduler(scheduler, learn_sigma)


@pytest.mark.parametrize(
    ("diffusion", "message"),
    [
        ({"schedule": "sigmoid"}, "schedule='sigmoid'"),
        ({"model_var_type": "learned"}, "model_var_type='learned'"),
    ],
)
def test_lab_processes_diffusers_lacks_are_refused(diffusion, message):
    with pytest.raises(ConfigError, match=message):
        scheduler_from_diffusion(diffusion)
