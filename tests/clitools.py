"""Running the lab's commands in a subprocess, as a user does: offline W&B, few threads."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_module(
    module: str,
    *args: str,
    timeout: int = 300,
    threads: int = 2,
    cwd: Path = ROOT,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess:
    """`python -m <module> <args>`; its output captured as text, `env` added to this process's."""
    environment = {**os.environ, "WANDB_MODE": "offline", "OMP_NUM_THREADS": str(threads)}
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=cwd,
        env={**environment, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )
