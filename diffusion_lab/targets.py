"""Objects built from configs that come from a file: only allow-listed `_target_` classes.

A checkpoint's hyperparameters or a run's saved `config.yaml` could name any callable as a
`_target_` (`shutil.copy`, `builtins.open`, ...), and Hydra's `instantiate` would call it. Every
`_target_`, at any depth, is checked before anything is built: its module must lie in a trusted
package (checked as text, before any import) and it must be a class of an allowed kind. Extra
classes, e.g. your own network, are trusted by full name in DIFFUSION_LAB_TRUSTED_TARGETS
(comma-separated).
"""

import importlib
import os
from collections.abc import Iterator
from typing import Any

import lightning.pytorch as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, ListConfig, OmegaConf

from diffusion_lab.errors import CheckpointError

TRUSTED_ENV = "DIFFUSION_LAB_TRUSTED_TARGETS"

# (package prefix, base class): a target is allowed if it lies below one prefix and subclasses
# that prefix's base.
NETWORKS = (("diffusion_lab.models.", torch.nn.Module),)
OPTIMIZERS = (("torch.optim.", torch.optim.Optimizer),)
MODEL_PARTS = NETWORKS + OPTIMIZERS  # what a checkpoint or an exported file may build
RUN_PARTS = MODEL_PARTS + (  # what a run's config.yaml may build
    ("diffusion_lab.data.", pl.LightningDataModule),
    ("diffusion_lab.callbacks.", pl.Callback),
    ("diffusion_lab.lightning.", pl.loggers.Logger),
    ("lightning.pytorch.callbacks.", pl.Callback),
    ("lightning.pytorch.loggers.", pl.loggers.Logger),
    ("lightning.pytorch.", pl.Trainer),
)


def targets(node: Any, key: str = "") -> Iterator[tuple[str, Any]]:
    """(dotted key, target) for every `_target_` in a nested config, at any depth."""
    if isinstance(node, DictConfig | ListConfig):
        node = OmegaConf.to_container(node)
    if isinstance(node, dict):
        for name, value in node.items():
            path = f"{key}.{name}" if key else str(name)
            if name == "_target_":
                yield path, value
            else:
                yield from targets(value, path)
    elif isinstance(node, list | tuple):
        for index, value in enumerate(node):
            yield from targets(value, f"{key}[{index}]")


def trusted(target: Any, allowed: tuple[tuple[str, type], ...]) -> bool:
    """Whether `target` names a class of an allowed kind (or is trusted by name)."""
    if not isinstance(target, str):
        return False
    if target in os.environ.get(TRUSTED_ENV, "").replace(" ", "").split(","):
        return True
    module_name, _, name = target.rpartition(".")
    for prefix, base in allowed:
        if not target.startswith(prefix):
            continue
        try:
            found = getattr(importlib.import_module(module_name), name)
        except (ImportError, AttributeError):
            return False
        if isinstance(found, type) and issubclass(found, base):
            return True
    return False


def check_targets(
    node: Any, allowed: tuple[tuple[str, type], ...], source: str, key: str = ""
) -> None:
    """CheckpointError naming the key, the target and `source` (a file) for the first untrusted
    target in `node`, whose own key is `key`."""
    for path, target in targets(node, key):
        if not trusted(target, allowed):
            kinds = ", ".join(f"{base.__name__} in {prefix}*" for prefix, base in allowed)
            raise CheckpointError(
                f"refusing {source}: {path}={target!r} is not a class the lab builds from a "
                f"stored config (allowed: {kinds}); if you trust it, add it to {TRUSTED_ENV}"
            )


def build(node: Any, allowed: tuple[tuple[str, type], ...], key: str, **kwargs: Any) -> Any:
    """`instantiate(node, **kwargs)` once every target in `node` (the config's `key`) is allowed."""
    check_targets(node, allowed, f"the {key} config", key)
    return instantiate(node, **kwargs)
