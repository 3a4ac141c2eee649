"""The lab's UNetModel state dict <-> diffusers' UNet2DModel state dict (same tensors, renamed;
the fused qkv projection split into to_q, to_k, to_v)."""

import re
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from diffusion_lab.errors import ConfigError
from diffusion_lab.interop.weights import as_float32, listed
from diffusion_lab.models.blocks import AttentionBlock, ResBlock

RESNET = {
    "in_norm": "norm1",
    "in_conv": "conv1",
    "emb_proj": "time_emb_proj",
    "out_norm": "norm2",
    "out_conv": "conv2",
    "skip": "conv_shortcut",
}
ATTENTION = {"norm": "group_norm", "proj_out": "to_out.0"}  # qkv: to_q, to_k, to_v
# diffusers' attention names before 0.15, which its loader still renames.
DEPRECATED_ATTENTION = {"query": "to_q", "key": "to_k", "value": "to_v", "proj_attn": "to_out.0"}


def layer_pairs(net: dict[str, Any]) -> list[tuple[str, str]]:
    """(lab path, diffusers path) of every layer with weights, for a filled-in UNetModel config
    (`diffusers_config.unet_kwargs`)."""
    levels, blocks = len(net["channel_mult"]), net["num_res_blocks"]
    attention = [
        net["image_size"] // 2**level in net["attention_resolutions"] for level in range(levels)
    ]
    pairs = [
        ("time_embed.0", "time_embedding.linear_1"),
        ("time_embed.2", "time_embedding.linear_2"),
        ("input_blocks.0.0", "conv_in"),
    ]
    if net["num_classes"] is not None:
        pairs.append(("label_emb", "class_embedding"))
    index = 1
    for level in range(levels):
        for i in range(blocks):
            pairs.append((f"input_blocks.{index}.0", f"down_blocks.{level}.resnets.{i}"))
            if attention[level]:
                pairs.append((f"input_blocks.{index}.1", f"down_blocks.{level}.attentions.{i}"))
            index += 1
        if level < levels - 1:
            pairs.append((f"input_blocks.{index}.0", f"down_blocks.{level}.downsamplers.0"))
            index += 1
    pairs += [
        ("middle_block.0", "mid_block.resnets.0"),
        ("middle_block.1", "mid_block.attentions.0"),
        ("middle_block.2", "mid_block.resnets.1"),
    ]
    for up, level in enumerate(reversed(range(levels))):
        for i in range(blocks + 1):
            index = up * (blocks + 1) + i
            pairs.append((f"output_blocks.{index}.0", f"up_blocks.{up}.resnets.{i}"))
            if attention[level]:
                pairs.append((f"output_blocks.{index}.1", f"up_blocks.{up}.attentions.{i}"))
            if level and i == blocks:
                layer = 2 if attention[level] else 1
                pairs.append((f"output_blocks.{index}.{layer}", f"up_blocks.{up}.upsamplers.0"))
    return pairs + [("out_norm", "conv_norm_out"), ("out_conv", "conv_out")]


def links(model: nn.Module, net: dict[str, Any]) -> list[tuple[str, list[str]]]:
    """(lab key, its diffusers keys) for every tensor: one key, or to_q, to_k, to_v for qkv."""
    found = []
    for ours, theirs in layer_pairs(net):
        layer = model.get_submodule(ours)
        for name in layer.state_dict():
            first, _, rest = name.partition(".")
            if isinstance(layer, AttentionBlock) and first == "qkv":
                keys = [f"{theirs}.{part}.{rest}" for part in ("to_q", "to_k", "to_v")]
            elif isinstance(layer, AttentionBlock):
                keys = [f"{theirs}.{ATTENTION[first]}.{rest}"]
            elif isinstance(layer, ResBlock):
                keys = [f"{theirs}.{RESNET[first]}.{rest}"]
            else:
                keys = [f"{theirs}.{name}"]
            found.append((f"{ours}.{name}", keys))
    return found


def to_diffusers_state_dict(
    state_dict: Mapping[str, torch.Tensor], model: nn.Module, net: dict[str, Any]
) -> dict[str, torch.Tensor]:
    """The lab's UNetModel weights under UNet2DModel's names (contiguous, for safetensors)."""
    converted = {}
    for ours, theirs in links(model, net):
        parts = state_dict[ours].chunk(len(theirs))
        converted.update({key: part.contiguous() for key, part in zip(theirs, parts, strict=True)})
    return converted


def from_diffusers_state_dict(
    state_dict: Mapping[str, torch.Tensor], model: nn.Module, net: dict[str, Any]
) -> dict[str, torch.Tensor]:
    """UNet2DModel weights under the lab's names, in float32. The lab's label embedding has one
    more row, the null class of classifier-free guidance: it is zero (no label offset)."""
    state_dict = {renamed(key): tensor for key, tensor in as_float32(state_dict).items()}
    used, converted = set(), {}
    for ours, theirs in links(model, net):
        missing = [key for key in theirs if key not in state_dict]
        if missing:
            raise ConfigError(f"the UNet2DModel weights have no {missing[0]} (for {ours})")
        converted[ours] = torch.cat([state_dict[key] for key in theirs])
        used.update(theirs)
    unused = sorted(state_dict.keys() - used)
    if unused:
        raise ConfigError(
            f"the UNet2DModel weights hold tensors its config.json has no place for: "
            f"{listed(unused)}"
        )
    if "label_emb.weight" in converted:
        rows = converted["label_emb.weight"]
        converted["label_emb.weight"] = torch.cat([rows, rows.new_zeros(1, rows.shape[1])])
    return converted


def renamed(key: str) -> str:
    """`key` with diffusers' deprecated attention names replaced by the current ones."""
    match = re.fullmatch(r"(.*\.attentions\.\d+)\.(query|key|value|proj_attn)\.(weight|bias)", key)
    if match is None:
        return key
    prefix, name, kind = match.groups()
    return f"{prefix}.{DEPRECATED_ATTENTION[name]}.{kind}"
