"""Running the lab's commands in a subprocess, as a user does: offline W&B, few threads, in a
directory outside the checkout (so nothing a command writes lands in it)."""

import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def command_env(threads: int = 2, extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment, offline W&B, `threads` OpenMP threads, the checkout's package
    and the test helpers first on the path, `extra` added."""
    path = os.pathsep.join([str(ROOT), str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")])
    environment = {
        **os.environ,
        "WANDB_MODE": "offline",
        "OMP_NUM_THREADS": str(threads),
        "PYTHONPATH": path,
    }
    return {**environment, **(extra or {})}


def run_module(
    module: str,
    *args: str,
    timeout: int = 300,
    threads: int = 2,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess:
    """`python -m <module> <args>` in `cwd` (default: a new temporary dir); its output captured
    as text, `env` added to this process's."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd or tempfile.mkdtemp(prefix="diffusion-lab-cwd-"),
        env=command_env(threads, env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
