"""The conf/model presets: pinned parameter counts, geometry errors, the summary command."""

import pytest
import torch

from diffusion_lab.errors import ConfigError
from diffusion_lab.models import EncoderUNetModel, UNetModel, summary
from diffusion_lab.models.presets import build_preset, preset_config
from diffusion_lab.models.summary import parameter_count

# (fixed sigma, learned sigma) on each preset's natural dataset (summary.NATURAL_DATA).
# ddpm_cifar10 equals diffusers' google/ddpm-cifar10-32 (Ho et al.'s 35.7M); iddpm_cifar10 with
# learned sigma is improved-diffusion's CIFAR-10 model (52.55M); adm_64 with learned sigma is ADM's
# ImageNet-64 U-Net without its class embedding.
PINNED = {
    "tiny": (651_041, 651_330),
    "small": (6_138_369, 6_138_946),
    "ddpm_cifar10": (35_746_307, 35_749_766),
    "iddpm_cifar10": (52_542_979, 52_546_438),
    "adm_64": (295_131_267, 295_136_454),
}

BASE = dict(image_size=32, in_channels=3, model_channels=32, num_res_blocks=1)


@pytest.mark.parametrize("name", sorted(PINNED))
def test_preset_parameter_counts(name):
    assert (parameter_count(name), parameter_count(name, learn_sigma=True)) == PINNED[name]


def test_tiny_preset_runs_on_8_to_32_px():
    for size, channels in [(8, 1), (28, 1), (32, 3)]:
        model = build_preset("tiny", size, channels)
        x = torch.randn(2, channels, size, size)
        assert model(x, torch.tensor([3, 7])).shape == x.shape


def test_preset_config_resolves_the_data_shape_and_applies_overrides():
    config = preset_config("small", 28, 1, dropout=0.3)
    assert config["_target_"] == "diffusion_lab.models.UNetModel"
    assert (config["image_size"], config["in_channels"], config["dropout"]) == (28, 1, 0.3)
    assert config["channel_mult"] == [1, 2, 2] and isinstance(config["channel_mult"], list)


def test_small_preset_builds_at_28_and_32_px():
    for size in (28, 32):
        assert isinstance(build_preset("small", size, 1, device="meta"), UNetModel)


def test_image_size_must_divide_by_total_downsampling():
    with pytest.raises(ConfigError, match=r"image_size=28 must be a multiple of 8"):
        build_preset("ddpm_cifar10", 28, 1, device="meta")
    with pytest.raises(ConfigError, match=r"image_size=36 must be a multiple of 8"):
        UNetModel(**{**BASE, "image_size": 36}, attention_resolutions=[], channel_mult=(1, 2, 2, 2))


def test_attention_resolution_must_occur():
    with pytest.raises(ConfigError, match=r"\[12\] do not occur.*\[32, 16, 8, 4\]"):
        UNetModel(**BASE, attention_resolutions=[16, 12], channel_mult=(1, 2, 2, 2))
    with pytest.raises(ConfigError, match=r"resolutions are \[8, 4\]"):
        build_preset("tiny", 8, 1, attention_resolutions=[16])


def test_bad_widths_and_heads_raise_config_error():
    with pytest.raises(ConfigError, match="multiple of 32"):
        UNetModel(**{**BASE, "model_channels": 48}, attention_resolutions=[])
    with pytest.raises(ConfigError, match="num_head_channels=24"):
        UNetModel(**BASE, attention_resolutions=[], num_head_channels=24)
    with pytest.raises(ConfigError, match="num_heads=3"):
        UNetModel(**BASE, attention_resolutions=[], num_heads=3)
    with pytest.raises(ConfigError, match="pool='max'"):
        EncoderUNetModel(**BASE, out_channels=2, attention_resolutions=[], pool="max")


def test_summary_prints_every_preset(capsys):
    summary.main()
    out = capsys.readouterr().out
    for name, counts in PINNED.items():
        line = next(row for row in out.splitlines() if row.startswith(name + " "))
        assert f"{counts[0]:,}" in line and f"{counts[1]:,}" in line
