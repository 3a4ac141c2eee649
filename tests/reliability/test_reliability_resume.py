"""Crashes, signals and `resume=`: a run killed (SIGKILL) or stopped (SIGTERM) part-way and resumed
ends with the weights of an uninterrupted run of the same seed; a resume applies what it can,
refuses what it cannot, makes no new run dir and keeps the run's metrics and W&B run."""

import csv
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml
from reliability.reltools import checkpoint, command, config, env, max_difference, run_command

from diffusion_lab.train import train

# T = 8 with the loss-aware sampler: its history fills up (and changes the timestep
# distribution) at step 19, after both interruptions, so the resumed run needs the history.
RUN = [
    "seed=0",
    "trainer.max_steps=24",
    "trainer.val_check_interval=5",
    "callbacks.last_checkpoint.every_n_train_steps=8",
    "schedule=cosine",
    "schedule.num_timesteps=8",
    "loss.timestep_sampler=loss_aware",
    "warmup_steps=0",
]


def start(cwd: Path, *overrides: str) -> subprocess.Popen:
    cwd.mkdir(exist_ok=True)
    return subprocess.Popen(
        command(*overrides),
        cwd=cwd,
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


def logged_steps(run_dir: Path) -> list[int]:
    with open(run_dir / "csv" / "metrics.csv") as f:
        return [int(row["step"]) for row in csv.DictReader(f) if row["train/loss"]]


def test_killed_and_stopped_run_resumes_to_the_uninterrupted_weights(tmp_path):
    run_dir, markers, cwd = tmp_path / "run", tmp_path / "markers", tmp_path / "cwd"
    markers.mkdir()
    hang = [
        "+callbacks.hang._target_=reliability.hang_at_step.HangAtStep",
        "+callbacks.hang.steps=[12,14]",
        f"+callbacks.hang.marker_dir={markers}",
        "logger=wandb",
        "logger.wandb.offline=true",
    ]
    first = start(cwd, *RUN, *hang, f"hydra.run.dir={run_dir}")
    wait_for(markers / "12", first)  # step 8's checkpoint is written; steps 9-12 will be lost
    first.send_signal(signal.SIGKILL)
    assert first.wait(30) == -signal.SIGKILL
    assert checkpoint(run_dir)["global_step"] == 8
    rows_before = logged_steps(run_dir)

    second = start(cwd, f"resume={run_dir}")
    wait_for(markers / "14", second)
    second.send_signal(signal.SIGTERM)  # preemption, `timeout`, Kubernetes: save, say, exit
    assert second.wait(60) == 128 + signal.SIGTERM
    message = second.stderr.read()
    assert "stopped by SIGTERM at step 15" in message
    assert f"resume={run_dir}" in message  # how to continue
    assert checkpoint(run_dir)["global_step"] == 15

    third = start(cwd, f"resume={run_dir}")
    assert third.wait(120) == 0, third.stderr.read()[-3000:]
    resumed = checkpoint(run_dir)
    assert resumed["global_step"] == 24

    reference_dir = tmp_path / "reference"
    train(config(reference_dir, *RUN))
    reference = checkpoint(reference_dir / "run")
    assert max_difference(resumed["state_dict"], reference["state_dict"]) < 1e-5
    assert max_difference(resumed["current_model_state"], reference["current_model_state"]) < 1e-5
    assert (resumed["timestep_sampler"]["loss_counts"] == 10).all()  # history full: loss-aware
    # the three parts logged into one metrics.csv, earlier rows kept, and into one W&B run
    steps = logged_steps(run_dir)
    assert steps[: len(rows_before)] == rows_before and max(steps) >= 22
    wandb_id = yaml.safe_load((run_dir / "config.yaml").read_text())["logger"]["wandb"]["id"]
    runs = sorted(p.name for p in (run_dir / "wandb").glob("offline-run-*"))
    assert len(runs) == 3 and all(name.endswith(f"-{wandb_id}") for name in runs)
    assert not (cwd / "logs").exists()  # no run dir besides the resumed one


def test_resume_applies_what_it_can_and_refuses_the_rest(tmp_path):
    run_dir, cwd = tmp_path / "run", tmp_path / "cwd"
    cwd.mkdir()
    assert run_command("trainer.max_steps=4", f"hydra.run.dir={run_dir}", cwd=cwd).returncode == 0

    longer = run_command(f"resume={run_dir}", "trainer.max_steps=6", cwd=cwd)
    assert longer.returncode == 0, longer.stderr[-3000:]
    assert checkpoint(run_dir)["global_step"] == 6
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["trainer"]["max_steps"] == 6

    refused = run_command(f"resume={run_dir}", "model.model_channels=64", "seed=3", cwd=cwd)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    [error] = [line for line in refused.stderr.splitlines() if line.startswith("error:")]
    assert "model.model_channels" in error and "seed" in error and "ckpt_path=" in error
    assert checkpoint(run_dir)["global_step"] == 6  # nothing touched
    assert not (cwd / "logs").exists()  # neither resume made a run dir of its own


def test_ctrl_c_leaves_only_last_ckpt_and_the_resume_keeps_the_grid_steps(tmp_path):
    run_dir, markers, cwd = tmp_path / "run", tmp_path / "markers", tmp_path / "cwd"
    markers.mkdir()
    run = [
        "trainer.max_steps=14",
        "trainer.val_check_interval=7",
        "callbacks.sample_grid.every_n_steps=7",
    ]
    hang = [
        "+callbacks.hang._target_=reliability.hang_at_step.HangAtStep",
        "+callbacks.hang.steps=[5]",
        f"+callbacks.hang.marker_dir={markers}",
    ]
    first = start(cwd, *run, *hang, f"hydra.run.dir={run_dir}")
    wait_for(markers / "5", first)
    first.send_signal(signal.SIGINT)  # Ctrl-C
    assert first.wait(60) == 128 + signal.SIGINT
    assert f"resume={run_dir}" in first.stderr.read()
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == ["last.ckpt"]
    assert checkpoint(run_dir)["global_step"] == 6

    second = start(cwd, f"resume={run_dir}")
    assert second.wait(120) == 0, second.stderr.read()[-3000:]
    grids = sorted(p.name for p in (run_dir / "samples").glob("step_*.png"))
    assert grids == ["step_0000007.png", "step_0000014.png"]  # the configured steps
    assert logged_steps(run_dir) == list(range(14))  # one row per step, none twice or missing


def test_train_classifier_saves_on_sigterm_says_how_to_resume_and_resumes(tmp_path):
    run_dir, markers, cwd = tmp_path / "classifier", tmp_path / "markers", tmp_path / "cwd"
    markers.mkdir()
    cwd.mkdir()
    tiny = [
        "data=digits",
        "trainer=cpu",
        "classifier.model_channels=32",
        "classifier.channel_mult=[1,2]",
        "classifier.attention_resolutions=[]",
        "classifier.num_head_channels=32",
        "data.batch_size=16",
        "trainer.max_steps=10",
        "trainer.val_check_interval=100",
        "trainer.limit_val_batches=1",
        "+callbacks.hang._target_=reliability.hang_at_step.HangAtStep",
        "+callbacks.hang.steps=[4]",
        f"+callbacks.hang.marker_dir={markers}",
        f"hydra.run.dir={run_dir}",
    ]
    command = [sys.executable, "-m", "diffusion_lab.train_classifier", *tiny]
    first = subprocess.Popen(command, cwd=cwd, env=env(), stderr=subprocess.PIPE, text=True)
    wait_for(markers / "4", first)
    first.send_signal(signal.SIGTERM)
    assert first.wait(60) == 128 + signal.SIGTERM
    assert f"python -m diffusion_lab.train_classifier resume={run_dir}" in first.stderr.read()
    assert checkpoint(run_dir)["global_step"] == 5

    resume = [sys.executable, "-m", "diffusion_lab.train_classifier", f"resume={run_dir}"]
    second = subprocess.run(resume, cwd=cwd, env=env(), capture_output=True, text=True, timeout=180)
    assert second.returncode == 0, second.stderr[-3000:]
    assert checkpoint(run_dir)["global_step"] == 10
    assert not (cwd / "logs").exists()
