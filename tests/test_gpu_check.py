"""benchmarks/gpu_check.py on the CPU (--cpu-smoke): the GPU check's own code path, kept running
for the next GPU window; the `cuda` tests it runs skip here, each with its reason."""

import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from clitools import ROOT, command_env

SCRIPT = ROOT / "benchmarks" / "gpu_check.py"
HAS_DIFFUSERS = importlib.util.find_spec("diffusers") is not None  # the `bench` extra
CUDA_TESTS = 14

COMPARE = [
    f"{mode}_{what}_{name}"
    for mode in ("train", "sample")
    for what in ("images_per_s", "gflops", "mfu", "peak_mb", "first_step_s")
    for name in ("ours", "diffusers")
] + ["train_speed_ratio_ours_over_diffusers", "sample_speed_ratio_ours_over_diffusers"]
# what the GPU run fills, by section of gpu_check.json
FIELDS = {
    "device": [
        "name", "torch", "threads", "capability", "memory_gb", "multiprocessors",
        "datasheet_bf16_tflops", "matmul_tflops",
    ],
    "tests": ["passed", "failed", "skipped", "errors"],
    "train": [
        "parameters", "images_per_s", "images_per_s_window", "step_ms_median", "first_step_s",
        "train_flop_per_image", "tflops", "mfu", "fraction_of_measured_matmul",
        "peak_memory_mb", "peak_reserved_mb", "precision", "compiled", "channels_last", "fused",
        "checkpoint_keys_plain",
    ],
    "sampling": ["ddpm", "ddim", "dpm_solver"],
    "compare": COMPARE,
}  # fmt: skip
# null on the CPU: what only a GPU has (its properties, a datasheet rate, the caching allocator's
# reserve) and the comparison's peak memory, which the GPU run reads from CUDA's allocator (on
# the CPU, unet_benchmark.py measures it in fresh processes: too slow for a smoke)
NULL_ON_CPU = (
    {("device", key) for key in ("capability", "memory_gb", "multiprocessors")}
    | {("device", "datasheet_bf16_tflops"), ("train", "peak_reserved_mb")}
    | {("compare", key) for key in COMPARE if "peak_mb" in key}
)


def gpu_check(out: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), "--out", str(out), *args],
        cwd=out.parent,
        env=command_env(threads=1),  # one thread: a loaded 2-core machine oversubscribed is slow
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_cpu_smoke_fills_every_field_the_gpu_run_fills(tmp_path):
    out = tmp_path / "out"
    result = gpu_check(out, "--cpu-smoke", "--work", str(tmp_path / "work"))
    assert result.returncode == (0 if HAS_DIFFUSERS else 1), result.stderr[-3000:]
    report = json.loads((out / "gpu_check.json").read_text())
    statuses = {name: part["status"] for name, part in report["parts"].items()}
    expected = dict.fromkeys(("device", "tests", "train", "sampling", "compare"), "ok")
    if not HAS_DIFFUSERS:  # a part that fails is recorded, and the others still run
        expected["compare"] = "failed"
        assert "diffusers" in report["parts"]["compare"]["error"]
    assert statuses == expected, report["parts"]
    for section, keys in FIELDS.items():
        if report[section] is None and section == "compare" and not HAS_DIFFUSERS:
            continue
        for key in keys:
            value = report[section][key]
            assert (value is None) == ((section, key) in NULL_ON_CPU), (section, key, value)

    train, sampling = report["train"], report["sampling"]
    assert train["images_per_s"] > 0 and train["mfu"] > 0 and train["tflops"] > 0
    assert train["channels_last"] and not train["compiled"] and train["fused"] is False
    assert train["batch_sizes"] == [report["plan"]["train_batch"]]  # never a partial batch
    assert train["checkpoint_keys_plain"]
    assert all(sampling[name]["images_per_s"] > 0 for name in ("ddpm", "ddim", "dpm_solver"))
    tests = report["tests"]
    assert (tests["passed"], tests["failed"], tests["errors"]) == (0, 0, 0)
    assert tests["skipped"] == CUDA_TESTS
    assert tests["skip_reasons"] == ["needs a CUDA device (torch.cuda.is_available() is False)"]
    assert "training: tiny via python -m diffusion_lab.train" in result.stdout
    if HAS_DIFFUSERS:
        assert report["compare"]["train_speed_ratio_ours_over_diffusers"] > 0
        assert "train speed, ours / diffusers" in result.stdout
    # results only: scratch (images, the run dir, its checkpoint) went to --work
    logs = [f"{name}.log" for name in ("compare", "sampling", "tests", "train")]
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["gpu_check.json", "gpu_check.txt", *logs]
    )


def test_parts_the_budget_cannot_fit_are_skipped_with_a_line(tmp_path):
    result = gpu_check(tmp_path / "out", "--cpu-smoke", "--budget-s", "5", "--work", str(tmp_path))
    assert result.returncode == 1
    report = json.loads((tmp_path / "out" / "gpu_check.json").read_text())
    for name in ("tests", "train", "sampling", "compare"):
        assert report["parts"][name]["status"] == "skipped"
        assert re.search(rf"^{name}: skipped: .* needs \d+ s$", result.stdout, re.M)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks how they skip without CUDA")
def test_cuda_tests_are_collected_and_skip_with_their_reason():
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-m",
            "cuda",
            "tests/cuda",
            "-rs",
            "-p",
            "no:cacheprovider",
        ],
        cwd=ROOT,
        env=command_env(threads=1, extra={"PYTHONDONTWRITEBYTECODE": "1"}),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    assert re.search(rf"\b{CUDA_TESTS} skipped\b", result.stdout), result.stdout[-3000:]
    assert not re.search(r"\b(failed|error|errors|passed)\b", result.stdout.splitlines()[-1])
    reasons = re.findall(r"^SKIPPED \[\d+\] .*: (.*)$", result.stdout, re.M)
    assert reasons and all("needs a CUDA device" in reason for reason in reasons)
