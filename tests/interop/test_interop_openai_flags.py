"""The READMEs' flags read as script_util reads them: constructor arguments and the lab's
diffusion settings."""

import pytest
import torch

from diffusion_lab.diffusion import create_diffusion
from diffusion_lab.errors import ConfigError
from diffusion_lab.interop import (
    classifier_kwargs,
    diffusion_kwargs,
    model_kwargs,
    openai_net_config,
    parse_flags,
    timestep_sampler,
)
from diffusion_lab.interop.diffusers_scheduler import scheduler_from_diffusion

# guided-diffusion's README: the 256x256 class-conditional model, then its classifier flags.
ADM_256 = (
    "--attention_resolutions 32,16,8 --class_cond True --diffusion_steps 1000 --image_size 256 "
    "--learn_sigma True --noise_schedule linear --num_channels 256 --num_head_channels 64 "
    "--num_res_blocks 2 --resblock_updown True --use_fp16 True --use_scale_shift_norm True"
)
CLASSIFIER = (
    "--classifier_depth 4 --classifier_width 128 --classifier_pool attention "
    "--classifier_attention_resolutions 32,16,8 --classifier_use_scale_shift_norm True "
    "--classifier_resblock_updown True"
)
SAMPLE = "--batch_size 4 --num_samples 100 --timestep_respacing 250"
# improved-diffusion's README: unconditional CIFAR-10, L_hybrid, cosine schedule.
IDDPM_CIFAR = (
    "--image_size 32 --num_channels 128 --num_res_blocks 3 --learn_sigma True --dropout 0.3 "
    "--diffusion_steps 4000 --noise_schedule cosine"
)


@pytest.mark.parametrize(
    ("flags", "codebase", "channel_mult", "factors"),
    [
        ("--image_size 256", "guided-diffusion", (1, 1, 2, 2, 4, 4), (8, 16, 32)),
        ("--image_size 128", "guided-diffusion", (1, 1, 2, 3, 4), (4, 8, 16)),
        ("--image_size 64", "guided-diffusion", (1, 2, 3, 4), (2, 4, 8)),
        ("--image_size 256", "improved-diffusion", (1, 1, 2, 2, 4, 4), (8, 16, 32)),
        ("--image_size 64", "improved-diffusion", (1, 2, 3, 4), (2, 4, 8)),
        ("--image_size 32", "improved-diffusion", (1, 2, 2, 2), (1, 2, 4)),
        ("--image_size 64 --channel_mult 1,2,2", "guided-diffusion", (1, 2, 2), (2, 4, 8)),
    ],
)
def test_channel_multipliers_and_attention_factors_follow_script_util(
    flags, codebase, channel_mult, factors
):
    kwargs = model_kwargs(parse_flags(f"{flags} --attention_resolutions 32,16,8", codebase))
    assert kwargs["channel_mult"] == channel_mult
    assert kwargs["attention_resolutions"] == factors  # image_size // res


def test_readme_model_flags():
    flags = parse_flags(f"{ADM_256} {CLASSIFIER} {SAMPLE}")
    assert flags["codebase"] == "guided-diffusion"
    kwargs = model_kwargs(flags)
    assert kwargs == {
        "image_size": 256,
        "in_channels": 3,
        "model_channels": 256,
        "out_channels": 6,  # learn_sigma doubles them
        "num_res_blocks": 2,
        "attention_resolutions": (8, 16, 32),
        "dropout": 0.0,
        "channel_mult": (1, 1, 2, 2, 4, 4),
        "num_classes": 1000,  # class_cond
        "use_checkpoint": False,
        "num_heads": 4,
        "num_heads_upsample": -1,
        "use_scale_shift_norm": True,
        "use_fp16": True,
        "num_head_channels": 64,
        "resblock_updown": True,
        "use_new_attention_order": False,
    }
    assert diffusion_kwargs(flags) == {
        "schedule": "linear",
        "num_timesteps": 1000,
        "model_mean_type": "epsilon",
        "model_var_type": "learned_range",
        "loss_type": "hybrid",
        "rescale_timesteps": False,  # guided-diffusion's default, and 1000 steps anyway
    }
    config = openai_net_config(kwargs)
    assert config["attention_resolutions"] == [32, 16, 8]
    assert (config["out_channels"], config["learn_sigma"], config["num_classes"]) == (3, True, 1000)


def test_readme_classifier_flags():
    kwargs = classifier_kwargs(parse_flags(f"{ADM_256} {CLASSIFIER}"))
    assert kwargs == {
        "image_size": 256,
        "in_channels": 3,
        "model_channels": 128,
        "out_channels": 1000,
        "num_res_blocks": 4,
        "attention_resolutions": (8, 16, 32),
        "channel_mult": (1, 1, 2, 2, 4, 4),
        "use_fp16": False,
        "num_head_channels": 64,
        "use_scale_shift_norm": True,
        "resblock_updown": True,
        "pool": "attention",
    }
    assert openai_net_config(kwargs, classifier=True)["attention_resolutions"] == [32, 16, 8]


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ("", ("linear", 1000, "epsilon", "fixed_large", "simple")),
        ("--learn_sigma True", ("linear", 1000, "epsilon", "learned_range", "hybrid")),
        ("--sigma_small True", ("linear", 1000, "epsilon", "fixed_small", "simple")),
        ("--predict_xstart True", ("linear", 1000, "start_x", "fixed_large", "simple")),
        ("--learn_sigma True --use_kl True", ("linear", 1000, "epsilon", "learned_range", "vlb")),
        (
            "--noise_schedule cosine --diffusion_steps 4000 --rescale_timesteps False",
            ("cosine", 4000, "epsilon", "fixed_large", "simple"),
        ),
    ],
)
def test_diffusion_flags_map_to_create_diffusion(extra, expected):
    settings = diffusion_kwargs(parse_flags(f"--image_size 64 {extra}", "improved-diffusion"))
    keys = ("schedule", "num_timesteps", "model_mean_type", "model_var_type", "loss_type")
    assert tuple(settings[key] for key in keys) == expected


def test_codebase_is_inferred_where_the_flags_decide():
    assert parse_flags("--image_size 64 --resblock_updown True")["codebase"] == "guided-diffusion"
    assert parse_flags("--image_size 64 --sigma_small True")["codebase"] == "improved-diffusion"
    assert parse_flags("--image_size 32")["codebase"] == "improved-diffusion"
    assert parse_flags("--image_size 128")["codebase"] == "guided-diffusion"
    # 1000 steps: rescale_timesteps does nothing, the codebases agree
    assert parse_flags("--image_size 64")["codebase"] == "guided-diffusion"
    with pytest.raises(ConfigError, match="--codebase"):
        parse_flags("--image_size 64 --diffusion_steps 4000")


def test_rescaled_timesteps_carry_over_and_reach_the_network_as_t_times_1000_over_t():
    settings = diffusion_kwargs(parse_flags(IDDPM_CIFAR))  # improved-diffusion's default: True
    assert settings["num_timesteps"] == 4000 and settings["rescale_timesteps"] is True
    seen = []

    def network(x, t, **kwargs):
        seen.append(t)
        return torch.zeros(x.shape[0], 2 * x.shape[1], *x.shape[2:])  # learned sigma

    x = torch.zeros(1, 3, 4, 4)
    create_diffusion(**settings).p_mean_variance(network, x, torch.tensor([2000]))
    assert seen[-1].tolist() == [500.0]  # the timesteps improved-diffusion's network saw
    assert diffusion_kwargs(parse_flags("--image_size 64"))["rescale_timesteps"] is False


def test_a_rescaled_network_does_not_convert_to_diffusers():
    settings = diffusion_kwargs(parse_flags(IDDPM_CIFAR))
    with pytest.raises(ConfigError, match="rescale_timesteps"):
        scheduler_from_diffusion(settings)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ("--large_size 256 --small_size 64", "super-resolution"),
        ("--image_size 64 --num_filters 3", r"no flags \['--num_filters'\]"),
        ("--image_size 64 --class_cond maybe", "takes True or False"),
        ("--image_size sixty-four", "must be of type int"),
        ("--image_size", "has no value"),
        ("image_size 64", "expected --name value"),
        ("--image_size 48", "not --image_size 48"),
        ("--image_size 64 --sigma_small True --use_fp16 True", "one codebase"),
        ("--image_size 64 --noise_schedule sigmoid", "'linear' and 'cosine'"),
    ],
)
def test_bad_flags_are_named(flags, message):
    with pytest.raises(ConfigError, match=message):
        parsed = parse_flags(flags)
        model_kwargs(parsed)
        diffusion_kwargs(parsed)


def test_sampling_and_training_flags_are_accepted():
    flags = parse_flags(f"--image_size 64 {SAMPLE} --lr 1e-4 --schedule_sampler loss-second-moment")
    assert timestep_sampler(flags) == "loss_aware"
    assert timestep_sampler(parse_flags("--image_size 64")) == "uniform"
