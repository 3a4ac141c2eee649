"""Preemption and crashes: a run killed (SIGKILL) or signalled (SIGUSR1) part-way and resumed with
`resume=<run_dir>` ends with the weights of an uninterrupted run of the same seed."""

import signal
import subprocess
import time
from pathlib import Path

from reliability.reltools import ROOT, checkpoint, command, config, env, max_difference

from diffusion_lab.train import train

# T = 10 with the loss-aware sampler: its history fills up (and changes the timestep
# distribution) only after the first kill, so the resumed run needs the restored history.
RUN = [
    "seed=0",
    "trainer.max_steps=24",
    "trainer.val_check_interval=5",
    "callbacks.last_checkpoint.every_n_train_steps=8",
    "schedule=cosine",
    "schedule.num_timesteps=10",
    "loss.timestep_sampler=loss_aware",
    "warmup_steps=0",
]


def start(run_dir: Path, *overrides: str) -> subprocess.Popen:
    return subprocess.Popen(
        command(*overrides),
        cwd=ROOT,
        env=env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.stderr.read()[-3000:]
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.1)


def test_killed_and_preempted_run_resumes_to_the_uninterrupted_weights(tmp_path):
    run_dir, markers = tmp_path / "run", tmp_path / "markers"
    markers.mkdir()
    hang = [
        "+callbacks.hang._target_=reliability.hang_at_step.HangAtStep",
        "+callbacks.hang.steps=[12,14]",
        f"+callbacks.hang.marker_dir={markers}",
    ]
    first = start(run_dir, *RUN, *hang, f"hydra.run.dir={run_dir}")
    wait_for(markers / "12", first)  # step 8's checkpoint is written; steps 9-12 will be lost
    first.send_signal(signal.SIGKILL)
    assert first.wait(30) == -signal.SIGKILL
    assert checkpoint(run_dir)["global_step"] == 8

    second = start(run_dir, f"resume={run_dir}")
    wait_for(markers / "14", second)
    second.send_signal(signal.SIGUSR1)  # a scheduler's warning: save, exit non-zero
    assert second.wait(60) == 1
    assert "stopped by SIGTERM at step 15" in second.stderr.read()
    assert checkpoint(run_dir)["global_step"] == 15

    third = start(run_dir, f"resume={run_dir}")
    assert third.wait(120) == 0, third.stderr.read()[-3000:]
    resumed = checkpoint(run_dir)
    assert resumed["global_step"] == 24

    reference_dir = tmp_path / "reference"
    train(config(reference_dir, *RUN))
    reference = checkpoint(reference_dir / "run")
    assert max_difference(resumed["state_dict"], reference["state_dict"]) < 1e-5
    assert max_difference(resumed["current_model_state"], reference["current_model_state"]) < 1e-5
    assert (resumed["timestep_sampler"]["loss_counts"] == 10).all()  # history full: loss-aware
