"""diffusers' `UNet2DModel` config (config.json) <-> the lab's UNetModel config."""

import inspect
import math
from typing import Any

from diffusion_lab.errors import ConfigError
from diffusion_lab.models import UNetModel
from diffusion_lab.models.blocks import NORM_GROUPS

# UNet2DModel.__init__'s defaults (diffusers 0.42): what diffusers builds for a missing key.
UNET2D_DEFAULTS = {
    "sample_size": None,
    "in_channels": 3,
    "out_channels": 3,
    "center_input_sample": False,
    "time_embedding_type": "positional",
    "time_embedding_dim": None,
    "freq_shift": 0,
    "flip_sin_to_cos": True,
    "down_block_types": ("DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"),
    "mid_block_type": "UNetMidBlock2D",
    "up_block_types": ("AttnUpBlock2D", "AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
    "block_out_channels": (224, 448, 672, 896),
    "layers_per_block": 2,
    "mid_block_scale_factor": 1,
    "downsample_padding": 1,
    "downsample_type": "conv",
    "upsample_type": "conv",
    "dropout": 0.0,
    "act_fn": "silu",
    "attention_head_dim": 8,
    "norm_num_groups": 32,
    "attn_norm_num_groups": None,
    "norm_eps": 1e-5,
    "resnet_time_scale_shift": "default",
    "add_attention": True,
    "class_embed_type": None,
    "num_class_embeds": None,
    "num_train_timesteps": None,
}
# What the lab's U-Net fixes; a config must have these values.
FIXED = {
    "center_input_sample": False,
    "time_embedding_type": "positional",
    "mid_block_type": "UNetMidBlock2D",
    "mid_block_scale_factor": 1,
    "act_fn": "silu",
    "norm_num_groups": NORM_GROUPS,
    "add_attention": True,
    "class_embed_type": None,
}
# The lab's `conventions` as (flip_sin_to_cos, freq_shift, downsample_padding, norm_eps).
CONVENTIONS = {"adm": (True, 0, 1, 1e-5), "ddpm_tf": (False, 1, 0, 1e-6)}
CONVENTION_KEYS = ("flip_sin_to_cos", "freq_shift", "downsample_padding", "norm_eps")
DOWN = {"plain": "DownBlock2D", "attention": "AttnDownBlock2D", "resnet": "ResnetDownsampleBlock2D"}
UP = {"plain": "UpBlock2D", "attention": "AttnUpBlock2D", "resnet": "ResnetUpsampleBlock2D"}
# How a block without attention resamples (one with attention: as down/upsample_type says).
RESAMPLING = {
    DOWN["plain"]: "conv",
    UP["plain"]: "conv",
    DOWN["resnet"]: "resnet",
    UP["resnet"]: "resnet",
}


def lab_net_config(config: dict[str, Any]) -> dict[str, Any]:
    """The lab's UNetModel config (`_target_`, keyword arguments, `learn_sigma`) for a diffusers
    UNet2DModel config; ConfigError naming the first key the lab's U-Net cannot express.

    `learn_sigma` is True when out_channels is twice in_channels (the mean and the variance).
    """
    if config.get("_class_name", "UNet2DModel") != "UNet2DModel":
        raise ConfigError(f"config.json describes a {config['_class_name']}, not a UNet2DModel")
    c = {**UNET2D_DEFAULTS, **{k: v for k, v in config.items() if not k.startswith("_")}}
    c["act_fn"] = "silu" if c["act_fn"] == "swish" else c["act_fn"]  # the same function
    for key, value in FIXED.items():
        if c[key] != value:
            raise ConfigError(f"{key}={c[key]!r}: the lab's U-Net has {key}={value!r}")
    conventions = conventions_of(c)
    widths = list(c["block_out_channels"])
    model_channels = widths[0]
    if c["time_embedding_dim"] not in (None, 4 * model_channels):
        raise ConfigError(
            f"time_embedding_dim={c['time_embedding_dim']}: the lab's U-Net embeds timesteps in "
            f"4 * block_out_channels[0] = {4 * model_channels} channels"
        )
    if any(width % model_channels for width in widths):
        raise ConfigError(
            f"block_out_channels={widths}: the lab's widths are whole multiples of the first"
        )
    if c["resnet_time_scale_shift"] not in ("default", "scale_shift"):
        raise ConfigError(
            f"resnet_time_scale_shift={c['resnet_time_scale_shift']!r}: the lab's U-Net adds the "
            f"timestep embedding ('default') or scales and shifts by it ('scale_shift')"
        )
    use_scale_shift_norm = c["resnet_time_scale_shift"] == "scale_shift"
    # diffusers' middle attention has no GroupNorm when scaling and shifting, unless told.
    attention_groups = c["attn_norm_num_groups"]
    if (attention_groups is None and use_scale_shift_norm) or attention_groups not in (
        None,
        NORM_GROUPS,
    ):
        raise ConfigError(
            f"attn_norm_num_groups={attention_groups} with resnet_time_scale_shift="
            f"{c['resnet_time_scale_shift']!r}: the lab's attention normalises with "
            f"{NORM_GROUPS} groups (set attn_norm_num_groups={NORM_GROUPS})"
        )
    attention, resblock_updown = block_layout(c)
    image_size = sample_size(c["sample_size"])
    in_channels, out_channels = c["in_channels"], c["out_channels"]
    learn_sigma = out_channels == 2 * in_channels
    head_dim = c["attention_head_dim"]
    return {
        "_target_": "diffusion_lab.models.UNetModel",
        "image_size": image_size,
        "in_channels": in_channels,
        "model_channels": model_channels,
        "channel_mult": [width // model_channels for width in widths],
        "num_res_blocks": c["layers_per_block"],
        "attention_resolutions": [image_size // 2**level for level in attention],
        "dropout": float(c["dropout"]),
        "num_heads": 1,
        "num_head_channels": -1 if head_dim is None else head_dim,
        "use_scale_shift_norm": use_scale_shift_norm,
        "resblock_updown": resblock_updown,
        "num_classes": c["num_class_embeds"],
        "use_checkpoint": False,
        "conventions": conventions,
        "out_channels": in_channels if learn_sigma else out_channels,
        "learn_sigma": learn_sigma,
    }


def conventions_of(c: dict[str, Any]) -> str:
    """The lab's `conventions` with a config's (flip_sin_to_cos, freq_shift, downsample_padding,
    norm_eps); ConfigError for a mixture."""
    for name, (flip, shift, padding, eps) in CONVENTIONS.items():
        same = bool(c["flip_sin_to_cos"]) == flip and c["freq_shift"] == shift
        if same and c["downsample_padding"] == padding and math.isclose(c["norm_eps"], eps):
            return name
    given = ", ".join(f"{key}={c[key]}" for key in CONVENTION_KEYS)
    allowed = " or ".join(
        f"({', '.join(map(str, values))}, conventions={name!r})"
        for name, values in CONVENTIONS.items()
    )
    raise ConfigError(f"{given}: the lab's U-Net computes {'/'.join(CONVENTION_KEYS)} as {allowed}")


def sample_size(size: Any) -> int:
    if isinstance(size, list | tuple):
        if len(set(size)) != 1:
            raise ConfigError(f"sample_size={list(size)}: the lab's U-Net takes square images")
        size = size[0]
    if not isinstance(size, int):
        raise ConfigError(f"sample_size={size!r}: the lab's U-Net needs the image size")
    return size


def block_layout(c: dict[str, Any]) -> tuple[list[int], bool]:
    """The levels with attention, and whether residual blocks resample (resblock_updown)."""
    down, up = list(c["down_block_types"]), list(c["up_block_types"])
    # The last block of each path does not resample.
    resample = {RESAMPLING.get(name, c["downsample_type"]) for name in down[:-1]}
    resample |= {RESAMPLING.get(name, c["upsample_type"]) for name in up[:-1]}
    known = set(down) <= set(DOWN.values()) and set(up) <= set(UP.values())
    if not known or len(resample) > 1 or not resample <= {"conv", "resnet"}:
        raise ConfigError(
            f"down_block_types={down}, up_block_types={up}, downsample_type="
            f"{c['downsample_type']!r}, upsample_type={c['upsample_type']!r}: the lab's U-Net "
            f"resamples all levels alike, with convolutions ({DOWN['plain']}/{UP['plain']}, "
            f"'conv') or residual blocks ({DOWN['resnet']}/{UP['resnet']}, 'resnet'), with "
            f"attention in {DOWN['attention']}/{UP['attention']}"
        )
    attended = [name == DOWN["attention"] for name in down]
    if [name == UP["attention"] for name in reversed(up)] != attended:
        raise ConfigError(
            f"down_block_types={down}, up_block_types={up}: the lab's U-Net has attention at the "
            f"same levels on the way down and up"
        )
    return [level for level, a in enumerate(attended) if a], resample == {"resnet"}


def unet_kwargs(net: dict[str, Any]) -> dict[str, Any]:
    """A lab network config with UNetModel's defaults filled in, without `_target_`."""
    if net.get("_target_") != "diffusion_lab.models.UNetModel":
        raise ConfigError(
            f"the network is a {net.get('_target_')}: only the lab's UNetModel has a diffusers "
            f"counterpart (UNet2DModel)"
        )
    defaults = {
        name: parameter.default
        for name, parameter in inspect.signature(UNetModel).parameters.items()
        if parameter.default is not inspect.Parameter.empty
    }
    return {**defaults, **{k: v for k, v in net.items() if k != "_target_"}}


def diffusers_config(net: dict[str, Any], learn_sigma: bool) -> dict[str, Any]:
    """The UNet2DModel config for a lab UNetModel config; ConfigError if diffusers' cannot hold
    it. The lab's null class (label num_classes) is kept: num_class_embeds = num_classes + 1."""
    n = unet_kwargs(net)
    if n["text_channels"] is not None:
        raise ConfigError(
            f"the network is text-conditioned (text_channels={n['text_channels']}): diffusers' "
            "UNet2DModel has no text conditioning"
        )
    levels = range(len(n["channel_mult"]))
    widths = [n["model_channels"] * mult for mult in n["channel_mult"]]
    attention = [n["image_size"] // 2**level in n["attention_resolutions"] for level in levels]
    resample = "resnet" if n["resblock_updown"] else "plain"
    flip, shift, padding, eps = CONVENTIONS[n["conventions"]]
    return {
        "_class_name": "UNet2DModel",
        "sample_size": n["image_size"],
        "in_channels": n["in_channels"],
        "out_channels": (n["out_channels"] or n["in_channels"]) * (2 if learn_sigma else 1),
        "block_out_channels": widths,
        "layers_per_block": n["num_res_blocks"],
        "down_block_types": [DOWN["attention" if a else resample] for a in attention],
        "up_block_types": [UP["attention" if a else resample] for a in reversed(attention)],
        "downsample_type": "resnet" if n["resblock_updown"] else "conv",
        "upsample_type": "resnet" if n["resblock_updown"] else "conv",
        "attention_head_dim": head_dim(n, widths, attention),
        "resnet_time_scale_shift": "scale_shift" if n["use_scale_shift_norm"] else "default",
        "attn_norm_num_groups": NORM_GROUPS,
        "num_class_embeds": None if n["num_classes"] is None else n["num_classes"] + 1,
        "dropout": n["dropout"],
        "flip_sin_to_cos": flip,
        "freq_shift": shift,
        "downsample_padding": padding,
        "norm_eps": eps,
        **FIXED,
    }


def head_dim(n: dict[str, Any], widths: list[int], attention: list[bool]) -> int | None:
    """diffusers' attention_head_dim: channels per head, one value for every attention layer
    (None: one head each)."""
    if n["num_head_channels"] != -1:
        return n["num_head_channels"]
    if n["num_heads"] == 1:
        return None
    attended = {w for w, a in zip(widths, attention, strict=True) if a} | {
        widths[-1]
    }  # and the middle
    if len(attended) > 1:
        raise ConfigError(
            f"num_heads={n['num_heads']} over attention layers of widths {sorted(attended)}: "
            f"diffusers' attention_head_dim fixes the channels per head instead, one value for "
            f"all (set num_head_channels)"
        )
    return attended.pop() // n["num_heads"]
