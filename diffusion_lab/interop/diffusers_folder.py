"""diffusers folders: a UNet2DModel (config.json with diffusion_pytorch_model.safetensors or
.bin) and its scheduler_config.json, read in the Hub's two layouts (all at the top, as
google/ddpm-*; or a pipeline's unet/ and scheduler/ sub-folders) and written as a pipeline."""

import json
import pickle
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from diffusion_lab.errors import CheckpointError
from diffusion_lab.interop.diffusers_config import diffusers_config, lab_net_config, unet_kwargs
from diffusion_lab.interop.diffusers_scheduler import (
    diffusion_from_scheduler,
    scheduler_from_diffusion,
)
from diffusion_lab.interop.diffusers_weights import (
    from_diffusers_state_dict,
    to_diffusers_state_dict,
)
from diffusion_lab.interop.weights import check_fits, load_exactly
from diffusion_lab.models import UNetModel

WEIGHTS = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")
PIPELINE = {
    "_class_name": "DDPMPipeline",
    "scheduler": ["diffusers", "DDPMScheduler"],
    "unet": ["diffusers", "UNet2DModel"],
}


def read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"cannot read {path}: {exc}") from exc


def unet_folder(path: Path) -> Path:
    """The folder holding the UNet2DModel's config.json: `path` or its `unet/`."""
    for folder in (path, path / "unet"):
        if (folder / "config.json").is_file():
            return folder
    raise CheckpointError(f"no config.json in {path} or {path / 'unet'}: not a diffusers folder")


def scheduler_file(path: Path, unet: Path) -> Path | None:
    candidates = (
        path / "scheduler" / "scheduler_config.json",
        path / "scheduler_config.json",
        unet.parent / "scheduler" / "scheduler_config.json",
    )
    return next((candidate for candidate in candidates if candidate.is_file()), None)


def read_weights(folder: Path) -> dict[str, torch.Tensor]:
    """The UNet2DModel's tensors: safetensors, else a .bin read with `weights_only=True`."""
    safetensors, pickled = (folder / name for name in WEIGHTS)
    if safetensors.is_file():
        return load_file(str(safetensors))
    if not pickled.is_file():
        raise CheckpointError(f"no {' or '.join(WEIGHTS)} in {folder}")
    try:
        return torch.load(pickled, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(f"refusing to load {pickled}: it holds more than tensors") from exc
    except (RuntimeError, EOFError) as exc:
        raise CheckpointError(f"cannot read {pickled}: truncated or corrupt ({exc})") from exc


def from_diffusers(
    path: str | Path, **scheduler_overrides: Any
) -> tuple[UNetModel, dict[str, Any], dict[str, Any]]:
    """The lab's UNetModel with a diffusers folder's weights (eval mode), its network config and
    its diffusion settings.

    `scheduler_overrides` (beta_schedule, num_train_timesteps, prediction_type, variance_type;
    None: not given) replace the folder's scheduler_config.json values, or DDPMScheduler's
    defaults where it has none.
    """
    path = Path(path).expanduser()
    unet = unet_folder(path)
    net = lab_net_config(read_json(unet / "config.json"))
    scheduler_path = scheduler_file(path, unet)
    scheduler = read_json(scheduler_path) if scheduler_path else {}
    scheduler |= {key: value for key, value in scheduler_overrides.items() if value is not None}
    diffusion = diffusion_from_scheduler(scheduler, net["learn_sigma"])
    model = UNetModel(**{key: value for key, value in net.items() if key != "_target_"})
    weights = from_diffusers_state_dict(read_weights(unet), model, unet_kwargs(net))
    load_exactly(model, weights, str(unet))
    return model.eval(), net, diffusion


def to_diffusers(
    out: str | Path,
    net: dict[str, Any],
    state_dict: dict[str, torch.Tensor],
    diffusion: dict[str, Any],
) -> Path:
    """Writes a UNetModel (its config, weights and diffusion settings) as a DDPMPipeline folder:
    model_index.json, unet/ (config.json, diffusion_pytorch_model.safetensors) and
    scheduler/scheduler_config.json. ConfigError, before writing, for what diffusers cannot
    express."""
    learn_sigma = diffusion.get("model_var_type") in ("learned", "learned_range")
    config = diffusers_config(net, learn_sigma)
    scheduler = scheduler_from_diffusion(diffusion)
    with torch.device("meta"):  # the layout only: no memory for a second copy of the weights
        model = UNetModel(**{**unet_kwargs(net), "learn_sigma": learn_sigma})
    check_fits(model, state_dict, "the checkpoint")
    weights = to_diffusers_state_dict(state_dict, model, unet_kwargs(net))

    out = Path(out)
    (out / "unet").mkdir(parents=True)
    (out / "scheduler").mkdir()
    save_file(weights, str(out / "unet" / WEIGHTS[0]))
    for path, content in (
        (out / "unet" / "config.json", config),
        (out / "scheduler" / "scheduler_config.json", scheduler),
        (out / "model_index.json", PIPELINE),
    ):
        path.write_text(json.dumps(content, indent=2) + "\n")
    return out
