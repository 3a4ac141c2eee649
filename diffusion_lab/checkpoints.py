"""Finding, safely loading and atomically writing training checkpoints; random-number state as
plain tensors."""

import json
import os
import pickle
import random
import re
import zipfile
from pathlib import Path

import numpy as np
import torch
from lightning.fabric.plugins import TorchCheckpointIO
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file

from diffusion_lab.errors import CheckpointError
from diffusion_lab.targets import MODEL_PARTS, check_targets

UNSAFE = re.compile(r"Unsupported global: GLOBAL (\S+)")  # torch's weights_only refusal


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint file, or a run dir's `checkpoints/last.ckpt`; CheckpointError if none."""
    path = Path(path).expanduser()
    if path.is_dir():
        path = path / "checkpoints" / "last.ckpt"
    if not path.is_file():
        raise CheckpointError(
            f"no checkpoint at {path}: give a checkpoint file or a run dir with checkpoints/"
        )
    return path


def load_checkpoint(path: str | Path, mmap: bool = False) -> dict:
    """Loads a checkpoint with `weights_only=True`: tensors and plain values, never code; every
    `_target_` in its hyperparameters must be one the lab builds (`targets.MODEL_PARTS`).

    `mmap=True` maps the tensors instead of reading them: a cheap check of a large file.
    A file that is not a torch checkpoint, or a damaged one, is called corrupt; one whose pickle
    names Python objects beyond tensors and plain values is refused as unsafe.
    """
    path = resolve_checkpoint(path)
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as exc:
        found = UNSAFE.search(str(exc))
        if found is None:
            raise CheckpointError(f"{path} is not a readable checkpoint: corrupt") from None
        raise CheckpointError(
            f"refusing to load {path}: it holds {found.group(1)}, not only tensors and plain "
            "values; a lab checkpoint never does"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError, KeyError, IndexError):
        raise CheckpointError(
            f"{path} is not a readable checkpoint: truncated or corrupt"
        ) from None
    if isinstance(checkpoint, dict):
        check_targets(
            checkpoint.get("hyper_parameters"), MODEL_PARTS, str(path), "hyper_parameters"
        )
    return checkpoint


def lab_checkpoint(path: str | Path) -> dict:
    """`load_checkpoint`, and a CheckpointError unless it is one the lab wrote (weights and the
    hyperparameters that rebuild its module)."""
    path = resolve_checkpoint(path)
    checkpoint = load_checkpoint(path)
    if not isinstance(checkpoint, dict) or not {"state_dict", "hyper_parameters"} <= set(
        checkpoint
    ):
        raise CheckpointError(
            f"{path} is not a checkpoint of the lab (it has no state_dict and hyper_parameters); "
            "pass one written by train, train_classifier or convert, or an exported .safetensors"
        )
    return checkpoint


def checkpoint_step(path: str | Path) -> int | None:
    """The optimizer step a checkpoint (or snapshot) was written at; None for an export."""
    path = resolve_checkpoint(path)
    if path.suffix == ".safetensors":
        return None
    step = load_checkpoint(path, mmap=True).get("global_step")
    return None if step is None else int(step)


def load_module(path: str | Path):
    """The `DiffusionModule` of a checkpoint (the weights it stores as `state_dict`: EMA) or of
    an exported `.safetensors` file, in eval mode."""
    from diffusion_lab.lightning import DiffusionModule

    path = resolve_checkpoint(path)
    if path.suffix == ".safetensors":
        return load_exported(path)
    checkpoint = lab_checkpoint(path)
    module = DiffusionModule(**checkpoint["hyper_parameters"])
    module.load_state_dict(checkpoint["state_dict"])
    module.process.load_state_dict(checkpoint.get("process", {}))  # e.g. cold's fitted prior
    return module.eval()


def load_exported(path: str | Path):
    """The `DiffusionModule` of a file written by `python -m diffusion_lab.export`: the
    network's tensors, and the run's hyperparameters as JSON metadata (no pickle)."""
    from diffusion_lab.lightning import DiffusionModule

    path = Path(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
        weights = load_file(str(path))
    except (SafetensorError, OSError, ValueError):
        raise CheckpointError(f"{path} is not a readable .safetensors file: corrupt") from None
    if "hyper_parameters" not in metadata:
        raise CheckpointError(
            f"{path} is not an export of the lab (no hyper_parameters metadata); write one with "
            "python -m diffusion_lab.export <run dir>"
        )
    hyper_parameters = json.loads(metadata["hyper_parameters"])
    check_targets(hyper_parameters, MODEL_PARTS, str(path), "hyper_parameters")
    module = DiffusionModule(**hyper_parameters)
    module.net.load_state_dict(weights)
    return module.eval()


class AtomicCheckpointIO(TorchCheckpointIO):
    """Writes a checkpoint to a file beside its path, flushes it to disk, then renames it into
    place: a process killed mid-write leaves the previous file whole."""

    def save_checkpoint(self, checkpoint: dict, path, storage_options=None) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
        try:
            with open(partial, "wb") as f:
                torch.save(checkpoint, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(partial, path)
        finally:
            partial.unlink(missing_ok=True)


def rng_state() -> dict:
    """Python's, NumPy's and torch's (CPU, and the current GPU's once CUDA is in use) generator
    states, as tensors and numbers: what `weights_only=True` loads."""
    version, python, gauss = random.getstate()
    _, keys, pos, has_gauss, cached_gauss = np.random.get_state()  # noqa: NPY002 (seeded)
    state = {
        "python": torch.tensor(python, dtype=torch.int64),
        "python_meta": [version, gauss],
        "numpy": torch.from_numpy(keys.astype(np.int64)),
        "numpy_meta": [int(pos), int(has_gauss), float(cached_gauss)],
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def set_rng_state(state: dict) -> None:
    """Restores `rng_state()`'s output."""
    version, gauss = state["python_meta"]
    random.setstate((version, tuple(state["python"].tolist()), gauss))
    pos, has_gauss, cached_gauss = state["numpy_meta"]
    keys = state["numpy"].numpy().astype(np.uint32)
    np.random.set_state(("MT19937", keys, pos, has_gauss, cached_gauss))  # noqa: NPY002
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])
