"""diffusers' UNet2DModel and the lab's UNetModel compute the same function after conversion,
both ways; the folder layouts the Hub uses are read."""

import json

import pytest
import torch
from interoptools import perturbed

from diffusion_lab.interop import from_diffusers, to_diffusers
from diffusion_lab.interop.diffusers_config import unet_kwargs
from diffusion_lab.models import UNetModel
from diffusion_lab.models.presets import preset_config

diffusers = pytest.importorskip("diffusers")

# Both networks compute the same float32 function from the same weights; they group some
# matrix products differently (the lab projects q, k, v with one fused Linear, diffusers with
# three, and BLAS blocks those sums differently), so each layer's outputs round differently by a
# few float32 ulps (1.2e-7 relative). Through these ~15-layer nets, outputs of order 1 differ by
# at most 4.2e-6 (measured). Mapping errors show above that: GroupNorm's eps alone (1e-5 instead
# of 1e-6, the smallest difference between the conventions) moves the ddpm_tf outputs by 4e-5
# (measured).
TOLERANCE = {"atol": 1e-5, "rtol": 1e-5}

SMALL = {"sample_size": 16, "block_out_channels": (32, 64), "layers_per_block": 1}
CONFIGS = {
    "no attention": {
        **SMALL,
        "down_block_types": ("DownBlock2D", "DownBlock2D"),
        "up_block_types": ("UpBlock2D", "UpBlock2D"),
        "attention_head_dim": None,
    },
    "attention, classes": {
        **SMALL,
        "down_block_types": ("DownBlock2D", "AttnDownBlock2D"),
        "up_block_types": ("AttnUpBlock2D", "UpBlock2D"),
        "attention_head_dim": 16,
        "num_class_embeds": 5,
    },
    "google/ddpm conventions": {
        **SMALL,
        "down_block_types": ("AttnDownBlock2D", "DownBlock2D"),
        "up_block_types": ("UpBlock2D", "AttnUpBlock2D"),
        "attention_head_dim": None,
        "flip_sin_to_cos": False,
        "freq_shift": 1,
        "downsample_padding": 0,
        "norm_eps": 1e-6,
    },
    "residual resampling, scale-shift, learned sigma": {
        **SMALL,
        "block_out_channels": (32, 64, 64),
        "down_block_types": ("ResnetDownsampleBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"),
        "up_block_types": ("AttnUpBlock2D", "AttnUpBlock2D", "ResnetUpsampleBlock2D"),
        "downsample_type": "resnet",
        "upsample_type": "resnet",
        "resnet_time_scale_shift": "scale_shift",
        "attn_norm_num_groups": 32,
        "attention_head_dim": 32,
        "out_channels": 6,
    },
}


def inputs(class_rows: int | None = None):
    """x, t and, for `class_rows` class embeddings, labels: the last row's and another."""
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, 16, 16, generator=generator)
    labels = None if class_rows is None else torch.tensor([class_rows - 1, 1])
    return x, torch.tensor([999, 17]), labels


def run_diffusers(model, x, t, labels):
    with torch.no_grad():
        return model(x, t, class_labels=labels).sample


def run_lab(net, x, t, labels):
    with torch.no_grad():
        return net(x, t) if labels is None else net(x, t, labels)


@pytest.mark.parametrize("name", CONFIGS)
def test_diffusers_unet_converts_and_back(tmp_path, name):
    config = CONFIGS[name]
    reference = perturbed(diffusers.UNet2DModel(**config))
    reference.save_pretrained(tmp_path / "diffusers")
    net, net_config, diffusion = from_diffusers(tmp_path / "diffusers")
    x, t, labels = inputs(config.get("num_class_embeds"))
    expected = run_diffusers(reference, x, t, labels)
    torch.testing.assert_close(run_lab(net, x, t, labels), expected, **TOLERANCE)
    assert diffusion["model_var_type"] == (
        "learned_range" if "out_channels" in config else "fixed_small"
    )

    to_diffusers(tmp_path / "back", net_config, net.state_dict(), diffusion)
    back = diffusers.UNet2DModel.from_pretrained(tmp_path / "back", subfolder="unet").eval()
    torch.testing.assert_close(run_diffusers(back, x, t, labels), expected, **TOLERANCE)


ADM_LIKE = {
    **preset_config("tiny", 16, 3),
    "attention_resolutions": [16, 8],
    "num_head_channels": 16,
    "use_scale_shift_norm": True,
    "resblock_updown": True,
    "num_classes": 3,
}


@pytest.mark.parametrize(
    ("net_config", "learn_sigma"),
    [
        (preset_config("tiny", 16, 3), False),
        (ADM_LIKE, True),
        (
            {**preset_config("tiny", 16, 3), "conventions": "ddpm_tf", "num_head_channels": -1},
            False,
        ),
    ],
)
def test_lab_unet_converts_to_diffusers(tmp_path, net_config, learn_sigma):
    kwargs = {**unet_kwargs(net_config), "learn_sigma": learn_sigma}
    net = perturbed(UNetModel(**kwargs))
    diffusion = {"model_var_type": "learned_range" if learn_sigma else "fixed_large"}
    to_diffusers(tmp_path / "out", net_config, net.state_dict(), diffusion)
    pipeline = diffusers.DDPMPipeline.from_pretrained(tmp_path / "out")
    rows = net.label_emb.num_embeddings if net.label_emb is not None else None
    x, t, labels = inputs(rows)  # with the lab's null class
    torch.testing.assert_close(
        run_diffusers(pipeline.unet.eval(), x, t, labels), run_lab(net, x, t, labels), **TOLERANCE
    )
    assert pipeline.scheduler.config.variance_type == diffusion["model_var_type"]


def test_old_layout_with_bin_weights_and_deprecated_attention_names(tmp_path):
    """google/ddpm-*: config.json, diffusion_pytorch_model.bin and scheduler_config.json side by
    side, attention weights named query/key/value/proj_attn (diffusers before 0.15)."""
    config = CONFIGS["google/ddpm conventions"]
    reference = perturbed(diffusers.UNet2DModel(**config))
    old_names = {"to_q": "query", "to_k": "key", "to_v": "value", "to_out.0": "proj_attn"}
    state_dict = {}
    for key, tensor in reference.state_dict().items():
        for new, old in old_names.items():
            key = key.replace(f".{new}.", f".{old}.")
        state_dict[key] = tensor
    folder = tmp_path / "ddpm"
    folder.mkdir()
    torch.save(state_dict, folder / "diffusion_pytorch_model.bin")
    (folder / "config.json").write_text(json.dumps({"_class_name": "UNet2DModel", **config}))
    scheduler = {"_class_name": "DDPMScheduler", "variance_type": "fixed_large"}
    (folder / "scheduler_config.json").write_text(json.dumps(scheduler))
    net, _, diffusion = from_diffusers(folder)
    assert diffusion["model_var_type"] == "fixed_large"
    x, t, _ = inputs()
    torch.testing.assert_close(
        run_lab(net, x, t, None), run_diffusers(reference, x, t, None), **TOLERANCE
    )
