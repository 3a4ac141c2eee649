"""The training command end to end, through a subprocess as a user runs it (tiny settings)."""

import csv
import subprocess
from pathlib import Path

import pytest
import torch
import yaml
from clitools import run_module


def run_train(*overrides: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return run_module("diffusion_lab.train", *overrides, timeout=timeout)


def read_metrics(run_dir: Path) -> list[dict[str, str]]:
    with open(run_dir / "csv" / "metrics.csv") as f:
        return list(csv.DictReader(f))


def test_quickstart_leaves_config_checkpoints_samples_and_metrics(tmp_path):
    result = run_train(
        "experiment=quickstart",
        "trainer.max_steps=40",
        "trainer.val_check_interval=20",
        "trainer.log_every_n_steps=10",
        "callbacks.sample_grid.num_samples=16",
        "sampler.steps=5",
        f"hydra.run.dir={tmp_path}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "config.yaml").read_text().count("${") == 0  # resolved
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()
    assert (tmp_path / "checkpoints" / "best.ckpt").is_file()
    assert (tmp_path / "samples" / "final.png").is_file()
    assert (tmp_path / "samples" / "step_0000020.png").is_file()
    rows = read_metrics(tmp_path)
    columns = set(rows[0])
    expected = {"train/loss", "train/grad_norm", "val/loss", "lr-Adam"}
    expected |= {f"train/loss_q{q}" for q in range(4)}
    assert expected <= columns, columns
    ckpt = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] == 40


def test_sweep_as_the_readme_writes_it_runs_each_job_under_logs(tmp_path):
    # no hydra.sweep.dir: the sweep dir resolves below the directory the command starts in
    result = run_module(
        "diffusion_lab.train",
        "-m",
        "experiment=quickstart",
        "debug=fast",
        "schedule=linear,cosine",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    [sweep] = (tmp_path / "logs" / "quickstart" / "multiruns").iterdir()
    schedules = {
        (sweep / str(job) / "config.yaml").read_text().count("name: cosine") for job in (0, 1)
    }
    assert schedules == {0, 1}
    for job in (0, 1):
        assert (sweep / str(job) / "checkpoints" / "last.ckpt").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["logs"]  # nothing else written


def test_a_run_says_where_its_results_went(tmp_path):
    result = run_train("experiment=quickstart", "debug=fast", f"hydra.run.dir={tmp_path / 'run'}")
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout + result.stderr
    run_dir = tmp_path / "run"
    assert f"run dir: {run_dir}" in out
    for path in ("checkpoints/best.ckpt", "checkpoints/last.ckpt", "samples/final.png"):
        assert str(run_dir / path) in out
    assert f"python -m diffusion_lab.sample ckpt={run_dir}" in out
    assert f"python -m diffusion_lab.evaluate ckpt={run_dir}" in out
    for noise in ("Total FLOPs: 0", "/-2", "litlogger", "LeafSpec", "log_every_n_steps"):
        assert noise not in out


def test_missing_dataset_is_one_line_error(tmp_path):
    missing = tmp_path / "nowhere"
    result = run_train(
        "data=cifar10", "debug=fast", f"paths.data_dir={missing}", f"hydra.run.dir={tmp_path}"
    )
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1 and str(missing) in error_lines[0]


def test_unknown_group_option_lists_the_choices(tmp_path):
    result = run_train("schedule=quadratic", f"hydra.run.dir={tmp_path}")
    assert result.returncode != 0
    assert "schedule" in result.stderr and "cosine" in result.stderr


def test_a_run_that_fails_before_it_starts_leaves_nothing_behind(tmp_path):
    result = run_module(
        "diffusion_lab.train", "experiment=quickstart", "trainer.max_steps=0", cwd=tmp_path
    )
    assert result.returncode == 1 and "trainer.max_steps" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_an_error_during_a_run_is_recorded_in_its_log(tmp_path):
    run_dir = tmp_path / "run"
    result = run_train(
        "experiment=quickstart",
        "debug=fast",
        "optimizer.lr=1e30",  # the first step blows the weights up: every later loss is inf
        "warmup_steps=0",
        "max_nonfinite_steps=2",
        "callbacks.last_checkpoint.every_n_train_steps=1",
        f"hydra.run.dir={run_dir}",
    )
    assert result.returncode == 1 and "not finite" in result.stderr
    log = (run_dir / "train.log").read_text()
    assert "error: the loss was not finite" in log and "run dir:" in log


def test_a_two_trial_optuna_search_reports_its_best_value(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    search = ["hparams_search=quickstart_optuna", "hydra.sweeper.n_trials=2"]
    result = run_module(
        "diffusion_lab.train", "experiment=quickstart", "debug=fast", *search, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-3000:]
    [sweep] = (tmp_path / "logs" / "quickstart" / "multiruns").iterdir()
    found = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    final = [
        float([r for r in read_metrics(sweep / t) if r["val/loss"]][-1]["val/loss"]) for t in "01"
    ]
    assert found["best_value"] == pytest.approx(min(final))  # the better trial's final val/loss
    assert set(found["best_params"]) == {"optimizer.lr", "callbacks.ema.decay"}
