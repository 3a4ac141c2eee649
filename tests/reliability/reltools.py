"""Shared by the reliability tests: tiny training runs, in-process and through the command."""

import sys
from pathlib import Path

import torch
from clitools import command_env, run_module
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from diffusion_lab import CONFIG_DIR
from diffusion_lab.targets import TRUSTED_ENV

ROOT = Path(__file__).resolve().parents[2]
TINY = ["experiment=quickstart", "debug=fast", "model.model_channels=32"]


def config(tmp_path: Path, *overrides: str) -> DictConfig:
    """The train config of a tiny run writing to `tmp_path/run`."""
    fixed = [f"paths.root_dir={tmp_path}", f"paths.output_dir={tmp_path / 'run'}"]
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose(config_name="train", overrides=fixed + TINY + list(overrides))


def train_args(*args: str) -> list[str]:
    """Arguments of the training command on tiny settings; flags such as `-m` go first, as Hydra
    wants."""
    flags = [a for a in args if a.startswith("-") and not a.startswith("~")]
    overrides = [a for a in args if a not in flags]
    return [*flags, *TINY, *overrides]


def command(*args: str) -> list[str]:
    """The training command on tiny settings."""
    return [sys.executable, "-m", "diffusion_lab.train", *train_args(*args)]


def env(**extra: str) -> dict[str, str]:
    """The command's environment: this process's threads, offline W&B, the test helpers (and
    the callbacks of tests/reliability trusted in stored configs), `extra` added."""
    trusted = "reliability.hang_at_step.HangAtStep,reliability.hang_at_step.RecordStep"
    return command_env(torch.get_num_threads(), {TRUSTED_ENV: trusted, **extra})


def run_command(*args: str, timeout: int = 180, cwd: Path | None = None):
    """The training command on tiny settings (see `command`), run to its end."""
    return run_module(
        "diffusion_lab.train", *train_args(*args), timeout=timeout, env=env(), cwd=cwd
    )


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("error:")]


def checkpoint(run_dir: Path, name: str = "last.ckpt") -> dict:
    return torch.load(run_dir / "checkpoints" / name, weights_only=True)


def max_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k].double() - b[k].double()).abs().max()) for k in a if a[k].numel())


def relative_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    """||a − b|| / ||b|| over all float entries of two state dicts.

    Two runs of the same training that differ only in float rounding (another thread count,
    so another summation order) drift apart in a few near-zero-gradient weights, which Adam's
    ~lr·sign(g) steps amplify to ~1e-4 each: a ratio ~1e-5 for the tiny U-Net. A run that
    missed, repeated or reordered a step moves every weight by ~lr = 1e-3: a ratio ~1e-2.
    """
    assert a.keys() == b.keys()
    keys = [k for k in a if a[k].is_floating_point()]
    diff = sum(float((a[k].double() - b[k].double()).square().sum()) for k in keys)
    norm = sum(float(b[k].double().square().sum()) for k in keys)
    return (diff / norm) ** 0.5
