"""SLURM on a CPU: a simulated job (SLURM's variables, fake `scontrol` on PATH) gets the time-limit
warning or a preemption mid-run; every process stops after the same step, one `last.ckpt` is
written there, the job is requeued once, and the requeued job finishes with the weights of an
uninterrupted run. The same for a job started by `srun` (one process per task)."""

import os
import signal
import socket
import stat
import subprocess
import time
from pathlib import Path

import pytest
from reliability.reltools import checkpoint, command, config, env, relative_difference

from diffusion_lab.runs import slurm
from diffusion_lab.train import train

RUN = [
    "seed=0",
    "trainer.max_steps=12",
    "trainer.val_check_interval=100",
    "callbacks.last_checkpoint.every_n_train_steps=100",
    "warmup_steps=0",
]
FAKE_SCONTROL = """#!/bin/sh
echo "$@" >> "$FAKE_SLURM_LOG"
if [ "$1" = show ]; then echo "JobId=$3 JobState=${FAKE_JOB_STATE:-RUNNING} Reason=None"; fi
"""
JOB = "4242"


@pytest.fixture
def fake_slurm(tmp_path) -> dict[str, str]:
    """SLURM's variables for a first start of job 4242, and `scontrol`/`sbatch` executables that
    record their arguments in `tmp_path/slurm.log`."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("scontrol", "sbatch"):
        tool = bin_dir / name
        tool.write_text(FAKE_SCONTROL)
        tool.chmod(tool.stat().st_mode | stat.S_IEXEC)
    return {
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "FAKE_SLURM_LOG": str(tmp_path / "slurm.log"),
        "SLURM_JOB_ID": JOB,
        "SLURM_JOB_NAME": "train",
        "SLURM_NTASKS": "1",
        "SLURM_RESTART_COUNT": "0",
    }


def recorded(tmp_path: Path) -> list[str]:
    log = tmp_path / "slurm.log"
    return log.read_text().splitlines() if log.is_file() else []


def hang_and_record(tmp_path: Path, step: int) -> list[str]:
    markers = tmp_path / "markers"
    markers.mkdir(exist_ok=True)
    return [
        "+callbacks.hang._target_=reliability.hang_at_step.HangAtStep",
        f"+callbacks.hang.steps=[{step}]",
        f"+callbacks.hang.marker_dir={markers}",
        "+callbacks.record._target_=reliability.hang_at_step.RecordStep",
        f"+callbacks.record.record_dir={tmp_path / 'steps'}",
    ]


def start(cwd: Path, variables: dict[str, str], *overrides: str) -> subprocess.Popen:
    cwd.mkdir(exist_ok=True)
    return subprocess.Popen(
        command(*overrides), cwd=cwd, env=env(**variables), stderr=subprocess.PIPE, text=True
    )


def wait_for(path: Path, *procs: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        for proc in procs:
            assert proc.poll() is None, proc.stderr.read()[-3000:]
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.1)


def spawned_workers(pid: int) -> list[int]:
    """The DDP processes `ddp_spawn` started below `pid` (not multiprocessing's helpers)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    found = []
    for child in map(int, children):
        cmdline = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ")
        if b"spawn_main" in cmdline:
            found.append(child)
    return found


def stopped_steps(tmp_path: Path) -> dict[str, int]:
    return {p.name: int(p.read_text()) for p in sorted((tmp_path / "steps").iterdir())}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> dict:
    """The final checkpoint of the same run on 2 processes, never interrupted."""
    root = tmp_path_factory.mktemp("uninterrupted")
    train(config(root, *RUN, "trainer=ddp_cpu"))
    return checkpoint(root / "run")


@pytest.mark.parametrize("to_all", [False, True], ids=["batch_process", "all_processes"])
def test_time_limit_warning_saves_requeues_once_and_the_requeued_job_finishes(
    tmp_path, fake_slurm, uninterrupted, to_all
):
    cwd = tmp_path / "job"
    run_dir = cwd / "logs" / "quickstart" / "runs" / f"slurm-{JOB}"
    job = start(cwd, fake_slurm, *RUN, "trainer=ddp_cpu", *hang_and_record(tmp_path, 5))
    wait_for(tmp_path / "markers" / "5", job)
    targets = [job.pid, *spawned_workers(job.pid)] if to_all else [job.pid]
    assert len(targets) == (3 if to_all else 1)
    sent = time.monotonic()
    for pid in targets:
        os.kill(pid, signal.SIGUSR2)  # SLURM's --signal=USR2@<delay>
    assert job.wait(60) == 128 + signal.SIGUSR2, job.stderr.read()[-3000:]
    assert time.monotonic() - sent < 30  # seconds, not the rest of the run
    assert f"requeued SLURM job {JOB}" in job.stderr.read()
    assert stopped_steps(tmp_path) == {"rank0": 6, "rank1": 6}  # every rank at the same step
    assert checkpoint(run_dir)["global_step"] == 6
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["last.ckpt"]
    assert recorded(tmp_path) == [f"requeue {JOB}"]  # exactly once
    if to_all:
        return  # how the job continues does not depend on who got the signal

    requeued = start(cwd, {**fake_slurm, "SLURM_RESTART_COUNT": "1"}, *RUN, "trainer=ddp_cpu")
    assert requeued.wait(180) == 0, requeued.stderr.read()[-3000:]
    final = checkpoint(run_dir)
    assert final["global_step"] == 12
    # the uninterrupted run's trajectory, up to float rounding (see relative_difference)
    assert relative_difference(final["state_dict"], uninterrupted["state_dict"]) < 1e-3
    raw, reference = final["current_model_state"], uninterrupted["current_model_state"]
    assert relative_difference(raw, reference) < 1e-3
    assert recorded(tmp_path) == [f"requeue {JOB}"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def srun_tasks(cwd: Path, variables: dict, port: int, *overrides: str) -> list[subprocess.Popen]:
    """Two processes as `srun --ntasks-per-node=2` starts them: one rank each."""
    layout = {
        "SLURM_NTASKS": "2",
        "SLURM_NTASKS_PER_NODE": "2",
        "SLURM_NNODES": "1",
        "SLURM_NODEID": "0",
        "SLURM_NODELIST": "localhost",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(port),
    }
    ddp = ["trainer=ddp", "trainer.accelerator=cpu", "trainer.precision=32-true"]
    return [
        start(
            cwd,
            {**variables, **layout, "SLURM_PROCID": str(rank), "SLURM_LOCALID": str(rank)},
            *RUN,
            *ddp,
            *overrides,
        )
        for rank in (0, 1)
    ]


def test_preempted_srun_job_stops_every_task_at_one_step_and_continues(
    tmp_path, fake_slurm, uninterrupted
):
    cwd = tmp_path / "job"
    run_dir = cwd / "logs" / "quickstart" / "runs" / f"slurm-{JOB}"
    tasks = srun_tasks(cwd, fake_slurm, free_port(), *hang_and_record(tmp_path, 5))
    wait_for(tmp_path / "markers" / "5", *tasks)
    tasks[0].send_signal(signal.SIGTERM)  # preemption reaching one task only
    assert [task.wait(60) for task in tasks] == [128 + signal.SIGTERM] * 2
    assert stopped_steps(tmp_path) == {"rank0": 6, "rank1": 6}
    assert checkpoint(run_dir)["global_step"] == 6
    assert recorded(tmp_path) == [f"show job {JOB}", f"requeue {JOB}"]  # not cancelled: requeue

    requeued = srun_tasks(cwd, {**fake_slurm, "SLURM_RESTART_COUNT": "1"}, free_port())
    assert [task.wait(180) for task in requeued] == [0, 0], requeued[0].stderr.read()[-3000:]
    final = checkpoint(run_dir)
    assert final["global_step"] == 12
    # srun's two processes train as ddp_spawn's two: the same rows (see relative_difference)
    assert relative_difference(final["state_dict"], uninterrupted["state_dict"]) < 1e-3


@pytest.mark.parametrize(
    ("signum", "state", "requeues"),
    [
        (signal.SIGUSR2, "RUNNING", True),  # the time-limit warning
        (signal.SIGUSR1, "RUNNING", True),  # Lightning's convention for it
        (signal.SIGTERM, "RUNNING", True),  # preemption
        (signal.SIGTERM, "CANCELLED", False),  # scancel: the user wants it gone
        (signal.SIGINT, "RUNNING", False),  # Ctrl-C in an interactive srun
    ],
)
def test_which_stops_requeue_the_job(fake_slurm, monkeypatch, signum, state, requeues):
    for key, value in {**fake_slurm, "FAKE_JOB_STATE": state}.items():
        monkeypatch.setenv(key, value)
    assert slurm.should_requeue(signum) is requeues
    monkeypatch.delenv("SLURM_JOB_ID")
    assert slurm.should_requeue(signum) is False  # not under SLURM: never


def test_an_array_job_requeues_its_own_task(monkeypatch):
    monkeypatch.setenv("SLURM_JOB_ID", "1001")
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "1000")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "3")
    assert slurm.job_id() == "1000_3"
    assert slurm.run_name() == "slurm-1000_3"


def torchrun_workers(cwd: Path, port: int, *overrides: str) -> list[subprocess.Popen]:
    """Two processes as `torchrun --nproc-per-node=2` starts them (no SLURM): every rank runs the
    command, so the run dir is pinned on the command line."""
    layout = {
        "WORLD_SIZE": "2",
        "LOCAL_WORLD_SIZE": "2",
        "GROUP_RANK": "0",
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(port),
        "TORCHELASTIC_RUN_ID": "test",
    }
    ddp = ["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2"]
    return [
        start(
            cwd,
            {**layout, "RANK": str(rank), "LOCAL_RANK": str(rank)},
            *RUN,
            *ddp,
            "trainer.precision=32-true",
            *overrides,
        )
        for rank in (0, 1)
    ]


def test_a_torchrun_job_stopped_on_one_rank_stops_every_rank_and_says_how_to_resume(tmp_path):
    cwd, run_dir = tmp_path / "job", tmp_path / "run"
    workers = torchrun_workers(
        cwd, free_port(), *hang_and_record(tmp_path, 5), f"hydra.run.dir={run_dir}"
    )
    wait_for(tmp_path / "markers" / "5", *workers)
    workers[0].send_signal(signal.SIGTERM)  # Kubernetes, `timeout`: one process told
    assert [worker.wait(60) for worker in workers] == [128 + signal.SIGTERM] * 2
    assert stopped_steps(tmp_path) == {"rank0": 6, "rank1": 6}
    assert checkpoint(run_dir)["global_step"] == 6
    assert f"resume={run_dir}" in workers[0].stderr.read()
