"""Converted networks as lab checkpoints, laid out like a run dir: `<out>/checkpoints/last.ckpt`
(what `load_module`, `sample ckpt=`, `evaluate ckpt=`, `load_classifier` and `train ckpt_path=`
read) and, for a diffusion model, `<out>/ema.safetensors` (`export`'s format)."""

from pathlib import Path
from typing import Any

import lightning
import torch
from omegaconf import OmegaConf
from torch import nn

from diffusion_lab.config import CONFIG_DIR
from diffusion_lab.diffusion import create_diffusion
from diffusion_lab.errors import ConfigError
from diffusion_lab.export import export_ema


def default_optimizer(config_name: str) -> dict[str, Any]:
    """The `optimizer` of a packaged command config (train.yaml: DDPM's Adam)."""
    return OmegaConf.to_container(OmegaConf.load(CONFIG_DIR / config_name).optimizer)


def checkpoint(net: nn.Module, hyper_parameters: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint of step 0 with empty optimizer and LR-scheduler states: `train ckpt_path=`
    starts a fresh optimizer, LR warmup and EMA (initialised from these weights) at step 0."""
    return {
        "state_dict": {f"net.{name}": tensor for name, tensor in net.state_dict().items()},
        "hyper_parameters": hyper_parameters,
        "epoch": 0,
        "global_step": 0,
        "pytorch-lightning_version": lightning.__version__,
        "optimizer_states": [],
        "lr_schedulers": [],
    }


def write_diffusion_checkpoint(
    out: str | Path,
    net: nn.Module,
    net_config: dict[str, Any],
    diffusion: dict[str, Any],
    timestep_sampler: str = "uniform",
) -> Path:
    """Writes `net` (config `net_config`) with its diffusion settings; returns the checkpoint.

    A DiffusionModule sets the network's `learn_sigma` from the diffusion's variance type, so
    the config leaves it out; a config whose `learn_sigma` disagrees is a ConfigError.
    """
    net_config = dict(net_config)
    learns_sigma = create_diffusion(**diffusion).learns_sigma
    if net_config.pop("learn_sigma", learns_sigma) != learns_sigma:
        raise ConfigError(
            f"the network {'does not output' if learns_sigma else 'outputs'} a variance, but the "
            f"diffusion's model_var_type={diffusion['model_var_type']!r} "
            f"{'needs' if learns_sigma else 'has no place for'} one"
        )
    hyper_parameters = {
        "net": net_config,
        "diffusion": diffusion,
        "optimizer": default_optimizer("train.yaml"),
        "timestep_sampler": timestep_sampler,
    }
    path = Path(out) / "checkpoints" / "last.ckpt"
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(checkpoint(net, hyper_parameters), path)
    export_ema(path, Path(out) / "ema.safetensors")
    return path


def write_classifier_checkpoint(
    out: str | Path, net: nn.Module, net_config: dict[str, Any], diffusion: dict[str, Any]
) -> Path:
    """Writes a noisy classifier as `train_classifier` would; the diffusion's schedule is the
    one it was trained on (sampling with guidance checks it against the model's)."""
    hyper_parameters = {
        "net": net_config,
        "diffusion": {key: diffusion[key] for key in ("schedule", "num_timesteps")},
        "optimizer": default_optimizer("train_classifier.yaml"),
        "num_classes": net_config["out_channels"],
    }
    path = Path(out) / "checkpoints" / "last.ckpt"
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(checkpoint(net, hyper_parameters), path)
    return path
