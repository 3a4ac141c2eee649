"""Data-parallel training on 2 CPU processes: equivalent to 1 process with twice the batch; one
run dir and one W&B run per job."""

import csv
from pathlib import Path
from types import SimpleNamespace

import lightning.pytorch as pl
import torch
from reliability.reltools import checkpoint, config, max_difference, run_command

from diffusion_lab.lightning.rows import draw_rows, global_rows
from diffusion_lab.train import build_module, train

# lr 1e-3 without warmup: Adam moves every weight by ~1e-3 per step, far above float noise
# float64: one process with batch 16 and two with batch 8 sum in other orders; in float64 that
# rounding (~1e-16) stays far below anything Adam could amplify into the 1e-4 bound below
STEPS = [
    "seed=0",
    "trainer.max_steps=3",
    "warmup_steps=0",
    "trainer.val_check_interval=3",
    "trainer.precision=64-true",
]


def losses(run_dir: Path) -> torch.Tensor:
    with open(run_dir / "csv" / "metrics.csv") as f:
        return torch.tensor([float(r["train/loss"]) for r in csv.DictReader(f) if r["train/loss"]])


def test_two_processes_match_one_process_with_twice_the_batch(tmp_path):
    one_cfg = config(tmp_path / "one", *STEPS, "data.batch_size=16")
    pl.seed_everything(0)
    initial = {f"net.{k}": v for k, v in build_module(one_cfg).net.state_dict().items()}
    train(one_cfg)
    wandb = ["logger=wandb", "logger.wandb.offline=true"]
    train(config(tmp_path / "two", *STEPS, *wandb, "trainer=ddp_cpu", "data.batch_size=8"))
    one_dir, two_dir = tmp_path / "one" / "run", tmp_path / "two" / "run"
    one, two = checkpoint(one_dir), checkpoint(two_dir)
    assert two["global_step"] == one["global_step"] == 3
    raw_one = {k: v for k, v in one["current_model_state"].items() if k.startswith("net.")}
    raw_two = {k: v for k, v in two["current_model_state"].items() if k.startswith("net.")}
    # float64 summation noise (~1e-16) grows through 3 Adam steps to ~3e-14 (measured); different
    # noise, timesteps or data would move the weights by ~lr = 1e-3
    assert max_difference(raw_one, initial) > 1e-3  # training moved the weights ...
    assert max_difference(raw_one, raw_two) < 1e-10  # ... the same way in both runs
    assert max_difference(one["state_dict"], two["state_dict"]) < 1e-10  # EMA weights too
    assert torch.allclose(losses(two_dir), losses(one_dir), rtol=1e-5)  # logged loss: synced
    assert len(list((two_dir / "wandb").glob("offline-run-*"))) == 1  # one W&B run, not two
    assert "group: quickstart" in (two_dir / "config.yaml").read_text()
    assert "max_steps: 3" in (two_dir / "csv" / "hparams.yaml").read_text()  # the whole config


def test_relaunched_ranks_share_the_job_dir_and_do_not_replay_the_sweep(tmp_path):
    # trainer=ddp on the CPU: Lightning re-runs the command (with -m and the sweep) for rank 1
    sweep, logs = tmp_path / "sweep", tmp_path / "logs"
    ddp = ["trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2"]
    result = run_command(
        "-m", "seed=0,1", *ddp, "trainer.precision=32-true", "trainer.max_steps=2",
        "~callbacks.sample_grid", f"hydra.sweep.dir={sweep}", f"paths.log_dir={logs}",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    assert sorted(p.name for p in sweep.iterdir()) == ["0", "1", "multirun.yaml"]
    for job in ("0", "1"):
        assert checkpoint(sweep / job)["global_step"] == 2
        assert f"seed: {job}" in (sweep / job / "config.yaml").read_text()
    assert not logs.exists()  # no run dir made by a relaunched rank
    assert result.stderr.count("Starting with 2 processes") == 2  # two jobs, not four


def test_processes_draw_their_rows_of_the_global_batch_and_only_those(monkeypatch):
    """(t, noise, label dropout) of global row g come from its own (seed, step, g) stream."""
    one = draw_rows(0, 7, global_rows(8, 1, 0), (1, 4, 4))
    shares = [draw_rows(0, 7, global_rows(4, 2, rank), (1, 4, 4)) for rank in (0, 1)]
    for whole, first, second in zip(one, *shares, strict=True):
        assert torch.equal(whole[0::2], first) and torch.equal(whole[1::2], second)

    module = build_module(config(Path("/nonexistent"), "cond_drop_prob=0.5"))
    module.trainer = SimpleNamespace(world_size=64, global_rank=3, global_step=0)  # 64 processes
    drawn = []
    randn = torch.randn

    def recording_randn(*args, **kwargs):
        drawn.append(randn(*args, **kwargs))
        return drawn[-1]

    monkeypatch.setattr(torch, "randn", recording_randn)
    t, weights, noise, u_drop = module._draw(torch.zeros(8, 1, 8, 8))
    assert noise.shape == (8, 1, 8, 8) and t.shape == weights.shape == u_drop.shape == (8,)
    assert max(x.numel() for x in drawn) == 64  # one image at a time, never the global batch
    local = draw_rows(0, 0, global_rows(8, 64, 3), (1, 8, 8))[2]
    assert torch.equal(noise, local)


def fake_process(module, world_size: int, rank: int, step: int = 0):
    module.trainer = SimpleNamespace(world_size=world_size, global_rank=rank, global_step=step)
    return module


def test_label_dropout_drops_the_same_global_rows_on_any_number_of_processes():
    module = build_module(config(Path("/nonexistent"), "cond_drop_prob=0.5"))
    images = torch.zeros(4, 1, 8, 8)
    one = fake_process(module, 1, 0)._draw(torch.zeros(8, 1, 8, 8))[3] < 0.5
    two = [fake_process(module, 2, rank)._draw(images)[3] < 0.5 for rank in (0, 1)]
    assert torch.equal(one[0::2], two[0]) and torch.equal(one[1::2], two[1])
    assert 0 < int(one.sum()) < 8  # some rows dropped, some kept


def test_each_process_draws_its_own_dropout_masks():
    module = build_module(config(Path("/nonexistent"), "model.dropout=0.5")).train()
    masks = []
    dropout = next(m for m in module.net.modules() if isinstance(m, torch.nn.Dropout))
    dropout.register_forward_hook(lambda mod, args, out: masks.append(out == 0))
    x, t = torch.randn(2, 1, 8, 8), torch.tensor([5, 500])

    def mask(rank: int, step: int = 3) -> torch.Tensor:
        fake_process(module, 2, rank, step).seed_dropout()
        module.net(x, t)
        return masks[-1]

    assert not torch.equal(mask(0), mask(1))  # two ranks: different units dropped
    assert torch.equal(mask(0), mask(0))  # the same rank and step: the same (resumes exactly)
    assert not torch.equal(mask(0, step=3), mask(0, step=4))


def test_accumulated_micro_batches_hold_the_rows_of_one_bigger_batch():
    """Process r's k-th micro-batch of batch B holds the data sampler's positions k·N·B + r +
    N·j; its noise rows must be those positions, so K micro-batches draw like one K·B batch."""
    rows = [list(global_rows(4, 2, rank, micro)) for micro in (0, 1) for rank in (0, 1)]
    assert sorted(sum(rows, [])) == list(range(16))  # every row once
    assert rows[2] == [8, 10, 12, 14]  # micro-batch 1 of process 0
