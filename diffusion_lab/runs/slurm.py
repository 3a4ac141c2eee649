"""Running under SLURM: the job's id, its run dir name, requeueing, Lightning's cluster plugin.

A requeued job (SLURM_RESTART_COUNT > 0) runs the same command again: its run dir must be the
one the first attempt wrote, so a run's dir under SLURM is named after the job, not the time.
"""

import logging
import os
import signal
import subprocess
from datetime import datetime

log = logging.getLogger(__name__)


def job_id() -> str | None:
    """`<array job>_<task>` for an array job (a submitit sweep), else SLURM_JOB_ID; None outside
    SLURM."""
    array_job, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    if array_job and task:
        return f"{array_job}_{task}"
    return os.environ.get("SLURM_JOB_ID")


def run_name() -> str:
    """The run dir's name: `slurm-<job id>` under SLURM (the same for every task and every
    requeue of the job), else the start time."""
    job = job_id()
    return f"slurm-{job}" if job else datetime.now().strftime("%Y-%m-%d_%H-%M-%S")


def requeued() -> bool:
    """Whether this is a requeued attempt of a SLURM job."""
    return int(os.environ.get("SLURM_RESTART_COUNT", 0)) > 0


SPAWNING = ("ddp_spawn", "ddp_fork", "ddp_notebook")  # Lightning starts the processes itself


def cluster_plugins(strategy: object) -> list:
    """Lightning's cluster environment under SLURM: ranks from srun's tasks, with Lightning's
    own requeue handler off (the lab's `LastCheckpoint` stops every process at the same step and
    rank 0 requeues once); or, for a strategy that starts its own processes inside one task,
    Lightning's plain environment."""
    from lightning.fabric.plugins.environments import LightningEnvironment, SLURMEnvironment

    if not SLURMEnvironment.detect():
        return []
    if strategy in SPAWNING:
        return [LightningEnvironment()]
    return [SLURMEnvironment(auto_requeue=False)]


def should_requeue(signum: int) -> bool:
    """Whether a run stopped by `signum` requeues its SLURM job: on the time-limit warning
    (SIGUSR1/SIGUSR2) and on preemption (SIGTERM), not on Ctrl-C nor after `scancel`."""
    job = job_id()
    if job is None:
        return False
    if signum in (signal.SIGUSR1, signal.SIGUSR2):
        return True
    return signum == signal.SIGTERM and not cancelled(job)


def cancelled(job: str) -> bool:
    """Whether SLURM reports the job cancelled (scancel), so a SIGTERM is not a preemption."""
    try:
        shown = subprocess.run(
            ["scontrol", "show", "job", job], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return "JobState=CANCELLED" in shown.stdout


def requeue(job: str) -> bool:
    """`scontrol requeue <job>`; whether SLURM accepted it."""
    try:
        done = subprocess.run(
            ["scontrol", "requeue", job], capture_output=True, text=True, timeout=60
        )
    except (OSError, subprocess.TimeoutExpired) as err:
        log.warning("scontrol requeue %s failed: %s", job, err)
        return False
    if done.returncode != 0:
        log.warning("scontrol requeue %s failed: %s", job, done.stderr.strip())
    return done.returncode == 0
