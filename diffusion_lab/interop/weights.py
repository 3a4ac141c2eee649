"""Converted weights against a lab network: every tensor present, in float32, of its shape."""

from collections.abc import Mapping

import torch
from torch import nn

from diffusion_lab.errors import ConfigError

SHOWN = 5  # keys named in an error, per kind of mismatch


def as_float32(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Floating tensors in float32 (released weights are often float16); others unchanged."""
    return {
        name: tensor.float() if tensor.is_floating_point() else tensor
        for name, tensor in state_dict.items()
    }


def listed(keys: list[str]) -> str:
    return ", ".join(keys[:SHOWN]) + (" ..." if len(keys) > SHOWN else "")


def check_fits(net: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str) -> None:
    """ConfigError naming the first missing, unexpected and misshapen keys unless `state_dict`
    fits `net` exactly (else the weights and the configuration disagree)."""
    expected = net.state_dict()
    misshapen = sorted(
        f"{name} {tuple(state_dict[name].shape)} (expected {tuple(expected[name].shape)})"
        for name in expected.keys() & state_dict.keys()
        if state_dict[name].shape != expected[name].shape
    )
    problems = [
        f"{label}: {listed(keys)}"
        for label, keys in (
            ("missing", sorted(expected.keys() - state_dict.keys())),
            ("unexpected", sorted(state_dict.keys() - expected.keys())),
            ("wrong shape", misshapen),
        )
        if keys
    ]
    if problems:
        raise ConfigError(
            f"the weights of {source} do not fit the network its configuration describes "
            f"({'; '.join(problems)}); check the architecture settings"
        )


def load_exactly(net: nn.Module, state_dict: Mapping[str, torch.Tensor], source: str) -> None:
    """`check_fits`, then loads `state_dict` into `net`."""
    check_fits(net, state_dict, source)
    net.load_state_dict(state_dict)
