"""The U-Net presets of conf/model/, outside Hydra: their settings for one image shape, and the
networks built from them."""

from typing import Any

import torch
from hydra.utils import get_class
from omegaconf import OmegaConf

from diffusion_lab.config import CONFIG_DIR

PRESET_DIR = CONFIG_DIR / "model"
# conf/model keys that are not network arguments: how `DiffusionModule` trains the network
TRAINING_SWITCHES = ("compile", "channels_last")


def preset_config(name: str, image_size: int, channels: int, **overrides: Any) -> dict[str, Any]:
    """conf/model/<name>.yaml for images of `image_size`² × `channels`, as a plain dict with its
    `_target_` (what a DiffusionModule's `net` takes), without the training switches,
    `overrides` applied."""
    data = {"image_size": image_size, "channels": channels}
    root = OmegaConf.create({"data": data, "model": OmegaConf.load(PRESET_DIR / f"{name}.yaml")})
    config = OmegaConf.to_container(root.model, resolve=True)
    return {**{k: v for k, v in config.items() if k not in TRAINING_SWITCHES}, **overrides}


def build_preset(
    name: str, image_size: int, channels: int, device: str | torch.device = "cpu", **overrides
) -> torch.nn.Module:
    """The network of `preset_config(name, image_size, channels, **overrides)` on `device`."""
    kwargs = preset_config(name, image_size, channels, **overrides)
    model_class = get_class(kwargs.pop("_target_"))  # not instantiate: its errors would be wrapped
    with torch.device(device):
        return model_class(**kwargs)
