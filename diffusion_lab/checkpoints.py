"""Finding and safely loading training checkpoints."""

import pickle
import zipfile
from pathlib import Path

import torch

from diffusion_lab.errors import CheckpointError


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint file, or a run dir's `checkpoints/last.ckpt`; CheckpointError if none."""
    path = Path(path).expanduser()
    if path.is_dir():
        path = path / "checkpoints" / "last.ckpt"
    if not path.is_file():
        raise CheckpointError(
            f"no checkpoint at {path}; pass ckpt=<file.ckpt> or ckpt=<run dir with checkpoints/>"
        )
    return path


def load_checkpoint(path: str | Path) -> dict:
    """Loads a checkpoint with `weights_only=True`: tensors and plain values, never code."""
    path = resolve_checkpoint(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"refusing to load {path}: it holds more than tensors ({exc})"
        ) from exc
    except (RuntimeError, EOFError, zipfile.BadZipFile) as exc:
        raise CheckpointError(
            f"cannot read checkpoint {path}: truncated or corrupt ({exc})"
        ) from exc


def load_module(path: str | Path):
    """The `DiffusionModule` of a checkpoint, with the weights it stores as `state_dict` (EMA)."""
    from diffusion_lab.lightning import DiffusionModule

    checkpoint = load_checkpoint(path)
    module = DiffusionModule(**checkpoint["hyper_parameters"])
    module.load_state_dict(checkpoint["state_dict"])
    return module.eval()
