"""`sample` and `evaluate` stop within seconds of a stop signal, saying how far they got, and
show one overall progress bar (log lines without a terminal, none with progress=false)."""

import logging
import re
import signal
import subprocess
import sys
import time

import pytest
from clitools import command_env
from evaluation.evaltools import compose_config

from diffusion_lab.sample import generate

ENDLESS = ["sampler.steps=20", "batch_size=2", "progress=true"]  # far more than the test waits


def start(module: str, *overrides: str, cwd) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", f"diffusion_lab.{module}", *overrides],
        cwd=cwd,
        env=command_env(threads=1),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def stopped_mid_run(process: subprocess.Popen, signum: int) -> tuple[int, str, float]:
    """Waits for the first progress line (sampling has begun), sends `signum`; the exit status,
    stderr and the seconds from the signal to the exit."""
    for line in process.stdout:
        if line.startswith("sampling: "):
            break
    else:
        pytest.fail(f"no progress line; stderr: {process.stderr.read()[-3000:]}")
    process.send_signal(signum)
    sent = time.monotonic()
    try:
        _, stderr = process.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        pytest.fail(f"still running 10 s after {signal.Signals(signum).name}")
    return process.returncode, stderr, time.monotonic() - sent


@pytest.mark.parametrize(
    "signum", [signal.SIGTERM, pytest.param(signal.SIGINT, marks=pytest.mark.slow)]
)
def test_sample_stops_on_a_signal_and_says_how_far_it_got(trained_run, tmp_path, signum):
    run_dir = tmp_path / "sample"
    process = start(
        "sample",
        f"ckpt={trained_run}",
        "n=100000",
        *ENDLESS,
        f"hydra.run.dir={run_dir}",
        cwd=tmp_path,
    )
    code, stderr, seconds = stopped_mid_run(process, signum)
    assert code == 128 + signum, stderr[-3000:]
    assert "Traceback" not in stderr
    assert f"stopped by {signal.Signals(signum).name}" in stderr
    assert re.search(r"sampling: \d+/100000 samples", stderr), stderr[-3000:]
    assert "unfinished work is not saved" in stderr
    assert not (run_dir / "samples.npz").exists()


def test_evaluate_stops_on_sigterm(trained_run, tmp_path):
    process = start(
        "evaluate",
        f"ckpt={trained_run}",
        "metrics=[is]",
        "features=digits",
        "num_samples=100000",
        *ENDLESS,
        f"paths.root_dir={tmp_path}",
        f"hydra.run.dir={tmp_path / 'eval'}",
        cwd=tmp_path,
    )
    code, stderr, _ = stopped_mid_run(process, signal.SIGTERM)
    assert code == 128 + signal.SIGTERM, stderr[-3000:]
    assert "Traceback" not in stderr and "stopped by SIGTERM" in stderr
    assert not (tmp_path / "eval" / "results.json").exists()


def sample_lines(trained_run, tmp_path, caplog, *overrides: str) -> list[str]:
    cfg = compose_config(
        "sample", tmp_path, f"ckpt={trained_run}", "n=20", "batch_size=2", "sampler.steps=2",
        "grid_size=0", *overrides,
    )  # fmt: skip
    with caplog.at_level(logging.INFO, logger="diffusion_lab.progress"):
        generate(cfg)
    return [r.getMessage() for r in caplog.records if r.name == "diffusion_lab.progress"]


def test_sample_without_a_terminal_logs_one_overall_count_every_ten_percent(
    trained_run, tmp_path, caplog
):
    lines = sample_lines(trained_run, tmp_path, caplog, "progress=true")
    counts = [int(re.match(r"sampling: (\d+)/20 samples", line)[1]) for line in lines]
    assert counts == [2, 4, 6, 8, 10, 12, 14, 16, 18, 20]  # one bar over all 10 batches
    assert "samples/s" in lines[0] and "s left" in lines[0]


def test_progress_false_is_quiet(trained_run, tmp_path, caplog):
    assert sample_lines(trained_run, tmp_path, caplog, "progress=false") == []
