"""`python -m diffusion_lab.evaluate` end to end, as a user runs it: a checkpoint trained in the
test, sampled by 2 CPU processes, scored with every metric; and its one-line errors."""

import csv
import json
import subprocess
import time

import numpy as np
from clitools import run_module
from evaluation.evaltools import compose_config

import diffusion_lab
from diffusion_lab.evaluate import evaluate

SCHEMA = {
    "metrics", "num_samples", "nfe", "sampler", "guidance", "features", "reference", "prc",
    "seeds", "ckpt", "seconds_per_image", "step", "version",
}  # fmt: skip
SCORES = {
    "fid_digits", "is_digits", "precision_digits", "recall_digits", "nll_bpd", "nll_bpd_stderr",
}  # fmt: skip
TINY_EVAL = [
    "metrics=[fid,is,prc,nll]",
    "features=digits",
    "num_samples=45",  # odd: the two processes draw 23 and 22
    "batch_size=16",
    "sampler.steps=5",
    "metrics.nll.num_images=16",
    "metrics.prc.num_reference=45",  # as many as samples, as Kynkäänniemi et al. compare
    "reference.split=test",
]


def run_evaluate(*overrides: str, timeout: int = 120) -> subprocess.CompletedProcess:
    return run_module("diffusion_lab.evaluate", *overrides, timeout=timeout, threads=1)


def test_two_processes_sample_exactly_num_samples_and_score_every_metric(trained_run, tmp_path):
    out = tmp_path / "eval"
    result = run_evaluate(
        f"ckpt={trained_run}",
        *TINY_EVAL,
        "trainer=ddp_cpu",
        f"paths.root_dir={tmp_path}",
        f"hydra.run.dir={out}",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "MEMBER: 2/2" in result.stdout + result.stderr  # really two processes
    assert f"run dir: {out}" in result.stdout and f"wrote {out / 'results.json'}" in result.stdout
    results = json.loads((out / "results.json").read_text())
    assert set(results) == SCHEMA
    assert set(results["metrics"]) == SCORES
    assert all(np.isfinite(v) for v in results["metrics"].values())
    assert results["metrics"]["nll_bpd_stderr"] > 0
    assert results["num_samples"] == 45 and results["nfe"] == 5
    assert results["sampler"]["name"] == "ddim" and results["sampler"]["steps"] == 5
    assert results["guidance"] == {"name": "none", "scale": None}
    assert results["features"] == "digits"
    assert results["reference"] == {"dataset": "digits", "split": "test", "num_images": 180}
    assert results["prc"] == {"num_reference": 45, "num_generated": 45, "k": 3, "seed": 0}
    assert "precision/recall: 45 generated vs 45 reference features" in result.stdout
    assert results["ckpt"] == str((trained_run / "checkpoints" / "last.ckpt").resolve())
    assert results["step"] == 4 and results["version"] == diffusion_lab.__version__
    assert results["seconds_per_image"] > 0

    samples = np.load(out / "samples.npz")["arr_0"]
    assert samples.shape == (45, 8, 8, 1) and samples.dtype == np.uint8
    assert len({image.tobytes() for image in samples}) == 45  # distinct: no index drawn twice
    with open(out / "csv" / "metrics.csv") as f:
        logged = next(csv.DictReader(f))
    assert float(logged["fid_digits"]) == results["metrics"]["fid_digits"]

    # one process draws the same samples: sample i depends on (seed, i) only
    one = compose_config("evaluate", tmp_path / "one", f"ckpt={trained_run}", *TINY_EVAL)
    evaluate(one)
    alone = np.load(tmp_path / "one" / "run" / "samples.npz")["arr_0"]
    assert np.abs(alone.astype(int) - samples).max() <= 1  # float noise of other batchings


def test_missing_inception_weights_fail_in_seconds_on_one_line(trained_run, tmp_path):
    missing = tmp_path / "nowhere" / "inception.pth"
    started = time.monotonic()
    result = run_evaluate(
        f"ckpt={trained_run}",  # 50,000 samples by default: the error must come before them
        f"inception_weights={missing}",
        f"paths.root_dir={tmp_path}",
        f"hydra.run.dir={tmp_path / 'eval'}",
    )
    assert result.returncode == 1
    assert time.monotonic() - started < 60
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and str(missing) in errors[0]
    assert not (tmp_path / "eval" / "samples.npz").exists()


def test_sweep_without_a_sweep_dir_runs_each_job_under_logs(trained_run, tmp_path):
    result = run_module(
        "diffusion_lab.evaluate",
        "-m",
        f"ckpt={trained_run}",
        "features=digits",
        "metrics=[fid]",
        "num_samples=8",
        "batch_size=8",
        "sampler.steps=2,3",
        cwd=tmp_path,
        threads=1,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    [sweep] = (tmp_path / "logs" / "evaluate" / "multiruns").iterdir()
    steps = [json.loads((sweep / job / "results.json").read_text())["nfe"] for job in ("0", "1")]
    assert steps == [2, 3]
