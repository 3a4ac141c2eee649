"""`resume=<run dir>`: the run's saved config, with the changes a resume may make applied.

What the overrides given with `resume=` change, on top of those the run was started with, is
compared with the saved `config.yaml`; a difference is applied if a resume can honour it (how
long and where to train, logging, callbacks, data loading) and refused in one line otherwise
(the model, the diffusion process, the data, the optimizer, the seed): a checkpoint cannot
continue as another run.
"""

import logging
from pathlib import Path
from typing import Any

from hydra import compose
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from diffusion_lab.checkpoints import resolve_checkpoint
from diffusion_lab.errors import ConfigError
from diffusion_lab.runs import slurm
from diffusion_lab.targets import RUN_PARTS, check_targets

log = logging.getLogger(__name__)

# Keys a resume may change (a prefix ending in "." covers a whole node).
RESUMABLE = (
    "trainer.",
    "callbacks.",
    "logger.",
    "sampler.",
    "paths.",
    "data.num_workers",
    "data.pin_memory",
    "data.persistent_workers",
    "data.root",
    "max_nonfinite_steps",
    "warmup_steps",
    "model.compile",  # speed switches: the same network, computed faster
    "model.channels_last",
    "optimizer.fused",
)
NOT_OVERRIDES = ("hydra.", "resume=")  # what never reaches the composed job config
REMOVED = "<removed>"  # the value of a key an override deletes


def flatten(node: Any, key: str = "") -> dict[str, Any]:
    """{dotted key: leaf value} of a nested dict (lists are leaves)."""
    if not isinstance(node, dict) or not node:
        return {key: node}
    flat = {}
    for name, value in node.items():
        flat |= flatten(value, f"{key}.{name}" if key else str(name))
    return flat


def resumable(key: str) -> bool:
    return any(key == p or (p.endswith(".") and key.startswith(p)) for p in RESUMABLE)


def composed(config_name: str, overrides: list[str]) -> dict[str, Any]:
    """The job config of `config_name` with `overrides`, resolved, flattened."""
    cfg = compose(config_name, overrides=overrides)
    return flatten(OmegaConf.to_container(cfg, resolve=True))


def changes(
    config_name: str, original: list[str] | None, given: list[str], saved: DictConfig
) -> dict[str, Any]:
    """{key: new value} that `given` asks of the saved run (REMOVED for a deleted key): of the
    keys that `given` moves on top of the run's `original` overrides (or of the defaults, when
    the run has no record of them), those whose value differs from the saved one. Repeating the
    run's own overrides changes nothing."""
    base = original or []
    before, after = composed(config_name, base), composed(config_name, base + given)
    current = flatten(OmegaConf.to_container(saved, resolve=True))
    touched = {
        key
        for key in before.keys() | after.keys()
        if before.get(key, REMOVED) != after.get(key, REMOVED)
    }
    return {
        key: after.get(key, REMOVED)
        for key in touched
        if after.get(key, REMOVED) != current.get(key, REMOVED)
    }


def original_overrides(run_dir: Path) -> list[str] | None:
    """The command-line overrides the run was started with (Hydra's record), or None."""
    record = run_dir / ".hydra" / "overrides.yaml"
    if not record.is_file():
        return None
    return [o for o in OmegaConf.load(record) if not o.startswith(NOT_OVERRIDES)]


def apply(saved: DictConfig, updates: dict[str, Any]) -> None:
    """Sets each dotted key of `saved`, or deletes it (REMOVED) with the nodes it leaves empty."""
    for key, value in sorted(updates.items()):
        if value != REMOVED:
            OmegaConf.update(saved, key, value, force_add=True)
            continue
        while key:
            parent, _, leaf = key.rpartition(".")
            node = OmegaConf.select(saved, parent) if parent else saved
            if node is None:
                break
            node.pop(leaf, None)
            if len(node) > 0:
                break
            key = parent


def resume_config(run_dir: str | Path, given: list[str], config_name: str = "train") -> DictConfig:
    """The config that continues `run_dir` from its `last.ckpt`, `given` overrides applied.

    Runs inside a Hydra app (it composes with the app's search path). ConfigError for a run dir
    without config or checkpoint, or for an override a resume cannot honour.
    """
    run_dir = Path(run_dir).expanduser().resolve()
    path = run_dir / "config.yaml"
    if not path.is_file():
        raise ConfigError(
            f"resume={run_dir}: no config.yaml there; pass the run dir of a training job"
        )
    saved = OmegaConf.load(path)
    check_targets(saved, RUN_PARTS, str(path))
    checkpoint = resolve_checkpoint(run_dir)
    given = [o for o in given if not o.startswith(NOT_OVERRIDES)]
    updates = changes(config_name, original_overrides(run_dir), given, saved) if given else {}
    refused = sorted(key for key in updates if not resumable(key))
    if refused:
        raise ConfigError(
            f"resume={run_dir} cannot change {', '.join(refused)}: a resume continues the same "
            f"model, process, data, optimizer and seed (it may change {', '.join(RESUMABLE)}); "
            f"to change them start a new run from the weights with ckpt_path={checkpoint}"
        )
    apply(saved, updates)
    if updates:
        log.info("resume: %s", ", ".join(f"{k}={v}" for k, v in sorted(updates.items())))
    saved.ckpt_path = str(checkpoint)
    saved.paths.output_dir = str(run_dir)
    saved.resume = None
    return saved


def continued(cfg: DictConfig, config_name: str = "train") -> DictConfig:
    """`cfg`, or the config that continues a run: `resume=<run dir>` with the command line's
    overrides, or this run dir itself when SLURM requeued the job after it saved `last.ckpt`."""
    overrides = list(HydraConfig.get().overrides.task)
    if cfg.resume:
        return resume_config(cfg.resume, overrides, config_name)
    output_dir = Path(cfg.paths.output_dir)
    if slurm.requeued() and (output_dir / "checkpoints" / "last.ckpt").is_file():
        return resume_config(output_dir, [], config_name)
    return cfg


def resume_in_place(argv: list[str]) -> list[str]:
    """The command line, made to run in the resumed run's own dir: Hydra would otherwise make a
    new, empty run dir (and write its `.hydra/` record over the run's own)."""
    given = [arg for arg in argv if arg.startswith("resume=")]
    if not given or given[-1] == "resume=null":
        return argv
    if "-m" in argv or "--multirun" in argv:
        raise ConfigError("resume= continues one run: leave out -m / --multirun")
    run_dir = Path(given[-1].partition("=")[2]).expanduser().resolve()
    return [*argv, f"hydra.run.dir={run_dir}", "hydra.output_subdir=null"]
