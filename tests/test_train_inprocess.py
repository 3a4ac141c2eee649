"""Short training runs in-process: every datamodule, seeding, resuming, W&B offline."""

from pathlib import Path

import fakedata
import pytest
import torch
from hydra import compose, initialize_config_dir

from diffusion_lab import CONFIG_DIR
from diffusion_lab.checkpoints import load_module
from diffusion_lab.train import train

TINY = ["experiment=quickstart", "debug=fast", "model.model_channels=32"]


def run(tmp_path: Path, *overrides: str) -> Path:
    out = tmp_path / "run"
    fixed = [f"paths.root_dir={tmp_path}", f"paths.output_dir={out}"]
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(config_name="train", overrides=fixed + TINY + list(overrides))
    train(cfg)
    return out


def final_weights(run_dir: Path) -> dict[str, torch.Tensor]:
    return torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]


def make_data(name: str, root: Path) -> list[str]:
    """Writes a tiny copy of dataset `name` under `root`; returns the overrides that train on it."""
    if name == "cifar10":
        fakedata.make_fake_cifar10(root)
    elif name == "celeba":
        fakedata.make_fake_celeba(root)
    elif name == "fashion_mnist":
        fakedata.make_fake_fashion_mnist(root)
    elif name == "folder":
        fakedata.make_fake_image_folder(root / "images")
        return ["data=folder", f"data.root={root / 'images'}", "data.image_size=16"]
    return [f"data={name}", f"paths.data_dir={root}"]


@pytest.mark.parametrize("name", ["digits", "fashion_mnist", "cifar10", "celeba", "folder"])
def test_trains_on_each_datamodule(tmp_path, monkeypatch, name):
    fakedata.bypass_integrity_checks(monkeypatch)
    overrides = make_data(name, tmp_path / "data")
    if name == "celeba":
        overrides.append("data.image_size=16")  # keep the test small; the recipe resizes to 64
    run_dir = run(tmp_path, *overrides)
    assert torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 4
    assert (run_dir / "samples" / "final.png").is_file()


def test_seed_zero_is_reproducible(tmp_path):
    first = final_weights(run(tmp_path / "a", "seed=0"))
    second = final_weights(run(tmp_path / "b", "seed=0"))
    other = final_weights(run(tmp_path / "c", "seed=1"))
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert any(not torch.equal(first[k], other[k]) for k in first)


def test_resume_from_checkpoint_continues_the_step_count(tmp_path):
    first = run(tmp_path / "a")
    resumed = run(
        tmp_path / "b", f"ckpt_path={first / 'checkpoints' / 'last.ckpt'}", "trainer.max_steps=8"
    )
    ckpt = torch.load(resumed / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["global_step"] == 8


def test_checkpoint_holds_ema_weights_and_raw_weights(tmp_path):
    ckpt = torch.load(run(tmp_path) / "checkpoints" / "last.ckpt", weights_only=True)
    ema, raw = ckpt["state_dict"], ckpt["current_model_state"]
    assert ema.keys() == raw.keys()
    assert any(not torch.equal(ema[k], raw[k]) for k in ema if k.startswith("net."))


def test_wandb_offline_logger_writes_locally(tmp_path):
    run_dir = run(tmp_path, "logger=wandb", "logger.wandb.offline=true")
    assert list((run_dir / "wandb").glob("offline-run-*")), "no offline W&B run written"
    assert (run_dir / "csv" / "metrics.csv").is_file()


def test_each_job_of_a_sweep_gets_its_own_wandb_run(tmp_path):
    # jobs of a basic-launcher multirun train one after another in one process
    first = run(tmp_path / "a", "logger=wandb", "logger.wandb.offline=true")
    second = run(tmp_path / "b", "logger=wandb", "logger.wandb.offline=true")
    assert len(list((first / "wandb").glob("offline-run-*"))) == 1
    assert len(list((second / "wandb").glob("offline-run-*"))) == 1


def test_tensorboard_logger_writes_event_files(tmp_path):
    pytest.importorskip("tensorboard")
    run_dir = run(tmp_path, "logger=tensorboard")
    assert list((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    assert (run_dir / "csv" / "metrics.csv").is_file()


def test_ema_snapshots_appear_at_their_steps_keep_the_last_and_load(tmp_path):
    snap = [
        "trainer.max_steps=6",
        "callbacks.snapshots.every_n_steps=2",
        "callbacks.snapshots.keep_last=2",
    ]
    run_dir = run(tmp_path, *snap)
    names = sorted(p.name for p in (run_dir / "snapshots").iterdir())
    assert names == ["step_0000004.ckpt", "step_0000006.ckpt"]  # step 2's dropped: keep the last 2
    snapshot = torch.load(run_dir / "snapshots" / "step_0000006.ckpt", weights_only=True)
    last = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert snapshot["global_step"] == 6
    # the same EMA weights as last.ckpt's state_dict at the same step, a fraction of its size
    assert all(torch.equal(snapshot["state_dict"][k], v) for k, v in last["state_dict"].items())
    assert set(snapshot) == {"state_dict", "hyper_parameters", "global_step"}
    module = load_module(run_dir / "snapshots" / "step_0000006.ckpt")
    assert module.num_classes is None


def test_best_checkpoint_follows_fid_when_the_fid_callback_is_on(tmp_path):
    fid = [
        "callbacks.fid.every_n_steps=2",
        "callbacks.fid.features=digits",
        "callbacks.fid.num_samples=8",
    ]
    cfg_dir = run(tmp_path, *fid, "callbacks.fid.batch_size=8", "sampler.steps=2")
    best = torch.load(cfg_dir / "checkpoints" / "best.ckpt", weights_only=True)
    [state] = [v for k, v in best["callbacks"].items() if k.startswith("ModelCheckpoint")]
    assert state["monitor"] == "fid_digits_0.008k"  # FID of 8 samples on the digits features
    assert float(state["best_model_score"]) > 0
