"""Lightning's `ddp` strategy over NCCL with one process: `train` trains, then resumes in place."""

import csv

import pytest
import torch
from clitools import run_module

pytestmark = pytest.mark.cuda

DDP = ["experiment=quickstart", "debug=fast", "trainer=ddp", "trainer.devices=1"]


def test_ddp_over_nccl_trains_and_resumes(tmp_path):
    run_dir = tmp_path / "run"
    first = run_module("diffusion_lab.train", *DDP, f"hydra.run.dir={run_dir}", timeout=300)
    assert first.returncode == 0, first.stderr[-3000:]
    assert "distributed_backend=nccl" in first.stdout + first.stderr
    ckpt = run_dir / "checkpoints" / "last.ckpt"
    assert torch.load(ckpt, weights_only=True, map_location="cpu")["global_step"] == 4

    resumed = run_module("diffusion_lab.train", f"resume={run_dir}", "trainer.max_steps=8")
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "distributed_backend=nccl" in resumed.stdout + resumed.stderr
    state = torch.load(ckpt, weights_only=True, map_location="cpu")
    assert state["global_step"] == 8
    assert all(
        torch.isfinite(v).all() for v in state["state_dict"].values() if v.is_floating_point()
    )
    with open(run_dir / "csv" / "metrics.csv") as f:
        steps = [int(row["step"]) for row in csv.DictReader(f) if row["train/loss"]]
    assert steps == sorted(steps) and max(steps) >= 7  # one log, appended across the resume
