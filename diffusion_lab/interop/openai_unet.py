"""improved-diffusion's and guided-diffusion's networks as the lab's: their constructor arguments
as a lab network config, their state dicts in the lab's key layout (openai/improved-diffusion and
openai/guided-diffusion, `unet.py`: `UNetModel`, `EncoderUNetModel`)."""

import re
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from diffusion_lab.errors import ConfigError
from diffusion_lab.interop.weights import as_float32, load_exactly
from diffusion_lab.models import EncoderUNetModel, UNetModel
from diffusion_lab.models.blocks import AttentionBlock
from diffusion_lab.models.encoder_unet import POOLS

REQUIRED = ("in_channels", "model_channels", "out_channels", "num_res_blocks")
# guided-diffusion's UNetModel defaults (improved-diffusion's take a subset, with the same values).
UNET_DEFAULTS = {
    "attention_resolutions": (),
    "dropout": 0.0,
    "channel_mult": (1, 2, 4, 8),
    "conv_resample": True,
    "dims": 2,
    "num_classes": None,
    "use_checkpoint": False,
    "use_fp16": False,
    "num_heads": 1,
    "num_head_channels": -1,
    "num_heads_upsample": -1,
    "use_scale_shift_norm": False,
    "resblock_updown": False,
    "use_new_attention_order": False,
}
ENCODER_DEFAULTS = {
    **{k: v for k, v in UNET_DEFAULTS.items() if k != "num_classes"},
    "pool": "adaptive",
}

# OpenAI's layer paths -> the lab's, in order (the first match wins for `out.2.`).
RENAMES = [
    (r"\.in_layers\.0\.", ".in_norm."),
    (r"\.in_layers\.2\.", ".in_conv."),
    (r"\.emb_layers\.1\.", ".emb_proj."),
    (r"\.out_layers\.0\.", ".out_norm."),
    (r"\.out_layers\.3\.", ".out_conv."),
    (r"\.skip_connection\.", ".skip."),
    (r"\.op\.", ".conv."),  # Downsample's strided convolution
    (r"^out\.0\.", "out_norm."),
    (r"^out\.2\.qkv_proj\.", "head.qkv."),  # AttentionPool2d
    (r"^out\.2\.c_proj\.", "head.proj."),
    (r"^out\.2\.positional_embedding$", "head.positional_embedding"),
    (r"^out\.2\.", "out_conv."),  # the U-Net's output convolution
    (r"^out\.3\.", "head.1."),  # adaptive pooling's 1x1 convolution
]


def is_classifier(state_dict: Mapping[str, torch.Tensor]) -> bool:
    """Whether an OpenAI state dict is an EncoderUNetModel's: no decoder."""
    return not any(name.startswith("output_blocks.") for name in state_dict)


def openai_net_config(constructor: Mapping[str, Any], classifier: bool = False) -> dict[str, Any]:
    """The lab's network config (`_target_` and keyword arguments) for the keyword arguments of
    OpenAI's `UNetModel` (`classifier=False`) or `EncoderUNetModel`; ConfigError for what the
    lab's networks cannot express, naming the option.

    `attention_resolutions` are downsampling factors there (attention where ds is one of them)
    and resolutions in pixels here. For a U-Net, `learn_sigma` is True when out_channels is
    twice in_channels (script_util's rule), and out_channels then counts the mean's channels.
    """
    kind = "EncoderUNetModel" if classifier else "UNetModel"
    defaults = ENCODER_DEFAULTS if classifier else UNET_DEFAULTS
    unknown = sorted(set(constructor) - set(defaults) - set(REQUIRED) - {"image_size"})
    if unknown:
        raise ConfigError(f"{kind} has no arguments {unknown}")
    missing = [key for key in (*REQUIRED, "image_size") if key not in constructor]
    if missing:
        hint = (
            " (improved-diffusion's UNetModel takes no image_size, but the lab's networks need "
            "it: pass the images' height in pixels)"
            if "image_size" in missing
            else ""
        )
        raise ConfigError(f"{kind} arguments {missing} are missing{hint}")
    args = {**defaults, **constructor}
    refuse_unsupported(args)

    image_size, channel_mult = int(args["image_size"]), [int(m) for m in args["channel_mult"]]
    levels = {2**level for level in range(len(channel_mult))}
    # A factor that matches no level adds no attention in OpenAI's code either.
    resolutions = sorted(
        {image_size // int(ds) for ds in args["attention_resolutions"] if ds in levels},
        reverse=True,
    )
    config = {
        "_target_": f"diffusion_lab.models.{kind}",
        "image_size": image_size,
        "in_channels": int(args["in_channels"]),
        "model_channels": int(args["model_channels"]),
        "channel_mult": channel_mult,
        "num_res_blocks": int(args["num_res_blocks"]),
        "attention_resolutions": resolutions,
        "dropout": float(args["dropout"]),
        "num_heads": int(args["num_heads"]),
        "num_head_channels": int(args["num_head_channels"]),
        "use_scale_shift_norm": bool(args["use_scale_shift_norm"]),
        "resblock_updown": bool(args["resblock_updown"]),
        "use_checkpoint": bool(args["use_checkpoint"]),
    }
    out_channels, in_channels = int(args["out_channels"]), config["in_channels"]
    if classifier:
        return {**config, "out_channels": out_channels, "pool": args["pool"]}
    learn_sigma = out_channels == 2 * in_channels
    return {
        **config,
        "num_classes": args["num_classes"],
        "out_channels": in_channels if learn_sigma else out_channels,
        "learn_sigma": learn_sigma,
    }


def refuse_unsupported(args: Mapping[str, Any]) -> None:
    """ConfigError for OpenAI options whose network the lab's cannot reproduce."""
    if args["dims"] != 2:
        raise ConfigError(f"dims={args['dims']}: the lab's networks are 2-D (dims=2)")
    if not args["conv_resample"]:
        raise ConfigError(
            "conv_resample=False: the lab's U-Net up/downsamples with convolutions (or residual "
            "blocks, resblock_updown=True), never by plain interpolation and pooling"
        )
    if any(float(m) != int(m) for m in args["channel_mult"]):
        raise ConfigError(
            f"channel_mult={tuple(args['channel_mult'])}: the lab's widths are model_channels "
            f"times whole multipliers (guided-diffusion's 512x512 models start at 0.5)"
        )
    upsample_heads = args["num_heads_upsample"]
    if args["num_head_channels"] == -1 and upsample_heads not in (-1, args["num_heads"]):
        raise ConfigError(
            f"num_heads_upsample={upsample_heads} differs from num_heads={args['num_heads']}: "
            f"the lab's U-Net uses one head count in the encoder and the decoder"
        )
    if "pool" in args and args["pool"] not in POOLS:
        raise ConfigError(
            f"pool={args['pool']!r}: the lab's classifier pools with {list(POOLS)} only"
        )


def lab_state_dict(
    state_dict: Mapping[str, torch.Tensor], net: nn.Module, use_new_attention_order: bool = False
) -> dict[str, torch.Tensor]:
    """An OpenAI state dict in `net`'s key layout, in float32.

    OpenAI's attention projections are 1x1 Conv1d weights [out, in, 1]; the lab's are Linear
    [out, in]. Their qkv rows are grouped per head ([heads, 3, d]; "legacy" order) unless
    `use_new_attention_order`; the lab's are [3, heads, d]. The lab's label embedding has one
    more row, the null class of classifier-free guidance: it is zero (no label offset).
    """
    converted, layers = {}, dict(net.named_modules())
    for name, tensor in as_float32(state_dict).items():
        for pattern, replacement in RENAMES:
            name, found = re.subn(pattern, replacement, name)
            if found:
                break
        if tensor.ndim == 3 and name.endswith((".qkv.weight", ".proj_out.weight", ".proj.weight")):
            tensor = tensor[..., 0]
        layer = name.rpartition(".")[0]
        if layer.endswith(".qkv") and not use_new_attention_order:
            attention = layers.get(layer.removesuffix(".qkv"))  # None: load_exactly will say
            if isinstance(attention, AttentionBlock):  # AttentionPool2d splits q, k, v first
                tensor = qkv_from_legacy(tensor, attention.num_heads)
        if name == "head.positional_embedding":
            tensor = tensor.T  # [C, HW + 1] -> [HW + 1, C]
        if name == "label_emb.weight":
            tensor = torch.cat([tensor, tensor.new_zeros(1, tensor.shape[1])])
        converted[name] = tensor
    return converted


def qkv_from_legacy(tensor: torch.Tensor, heads: int) -> torch.Tensor:
    """qkv weight [3C, C] or bias [3C] with rows in [heads, 3, d] order, as [3, heads, d]."""
    return tensor.reshape(heads, 3, -1, *tensor.shape[1:]).transpose(0, 1).reshape(tensor.shape)


def from_openai(state_dict: Mapping[str, torch.Tensor], **constructor: Any) -> nn.Module:
    """The lab's UNetModel (or EncoderUNetModel) with the weights of an improved-diffusion or
    guided-diffusion `UNetModel` (or guided-diffusion `EncoderUNetModel`), in eval mode.

    `constructor`: the keyword arguments that OpenAI class was built with, plus `image_size`
    for improved-diffusion's UNetModel (which does not take it).
    """
    classifier = is_classifier(state_dict)
    config = openai_net_config(constructor, classifier)
    config.pop("_target_")
    net = EncoderUNetModel(**config) if classifier else UNetModel(**config)
    new_order = bool(constructor.get("use_new_attention_order", False))
    load_exactly(net, lab_state_dict(state_dict, net, new_order), "the OpenAI state dict")
    return net.eval()
