"""The training callbacks and `evaluate` on the GPU, and a checkpoint written there that loads
and samples on the CPU."""

import csv
import math
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from hydra import compose, initialize_config_dir

from diffusion_lab import CONFIG_DIR
from diffusion_lab.callbacks import EMA, FID
from diffusion_lab.checkpoints import load_module
from diffusion_lab.data import DigitsDataModule
from diffusion_lab.evaluate import evaluate
from diffusion_lab.lightning import DiffusionModule
from diffusion_lab.models.presets import preset_config
from diffusion_lab.sampling import sample
from diffusion_lab.train import train

pytestmark = pytest.mark.cuda

FID_OPTIONS = ["features=digits", "num_samples=16", "batch_size=16", "reference_split=test"]


def config(name: str, root: Path, *overrides: str):
    fixed = [f"paths.root_dir={root}", f"paths.output_dir={root / 'run'}"]
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose(config_name=name, overrides=fixed + list(overrides))


@pytest.fixture(scope="module")
def gpu_run(tmp_path_factory) -> Path:
    """A run dir of the quickstart through `train` on the GPU: bf16-mixed, channels_last, fused
    Adam, EMA, FID on the digits features at step 2 and 4."""
    root = tmp_path_factory.mktemp("gpu")
    fid = [f"callbacks.fid.{option}" for option in FID_OPTIONS]
    train(
        config(
            "train",
            root,
            "experiment=quickstart",
            "debug=fast",
            "trainer=gpu",
            "model.channels_last=true",
            "callbacks.fid.every_n_steps=2",
            *fid,
        )
    )
    return root / "run"


class Devices(pl.Callback):
    """Where the module, EMA's average and FID's feature network are at each validation."""

    def __init__(self, ema: EMA, fid: FID):
        self.ema, self.fid, self.seen = ema, fid, set()

    def on_validation_end(self, trainer, pl_module):
        average = next(self.ema._average_model.parameters())
        self.seen |= {pl_module.device.type, average.device.type, self.fid.extractor.device.type}


def test_ema_and_fid_run_on_the_gpu(tmp_path):
    torch.manual_seed(0)
    net = preset_config("tiny", image_size=8, channels=1)
    optimizer = {"_target_": "torch.optim.Adam", "_partial_": True, "lr": 1e-3}
    module = DiffusionModule(net, {"schedule": "linear", "num_timesteps": 100}, optimizer)
    ema = EMA(decay=0.5)
    fid = FID(
        every_n_steps=1,
        num_samples=8,
        sampler={"name": "ddim", "steps": 2},
        features="digits",
        reference_split="test",
        cache_dir=tmp_path,
        batch_size=8,
    )
    devices = Devices(ema, fid)
    trainer = pl.Trainer(
        accelerator="gpu",
        devices=1,
        precision="bf16-mixed",
        max_steps=2,
        val_check_interval=1,
        check_val_every_n_epoch=None,
        limit_val_batches=1,
        num_sanity_val_steps=0,
        callbacks=[ema, fid, devices],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(module, datamodule=DigitsDataModule(batch_size=8))
    assert devices.seen == {"cuda"}
    assert math.isfinite(float(trainer.callback_metrics["fid_digits_0.008k"]))


def test_train_logs_fid_and_keeps_ema_weights(gpu_run):
    with open(gpu_run / "csv" / "metrics.csv") as f:
        scores = [
            float(r["fid_digits_0.016k"]) for r in csv.DictReader(f) if r["fid_digits_0.016k"]
        ]
    assert len(scores) == 2 and all(math.isfinite(s) for s in scores)
    ckpt = torch.load(gpu_run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    ema, raw = ckpt["state_dict"], ckpt["current_model_state"]
    assert any(not torch.equal(ema[k], raw[k]) for k in ema if k.startswith("net."))


def test_gpu_checkpoint_loads_on_the_cpu_and_samples_there(gpu_run):
    path = gpu_run / "checkpoints" / "last.ckpt"
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    assert "cuda" in ckpt["rng_state"]  # written by a process that trained on the GPU
    tensors = [v for v in ckpt["state_dict"].values() if isinstance(v, torch.Tensor)]
    assert tensors and all(v.device.type == "cpu" for v in tensors)
    module = load_module(path)
    assert {p.device.type for p in module.net.parameters()} == {"cpu"}
    images = sample(module.net, module.diffusion, (4, 1, 8, 8), "ddim", 5).images
    assert images.device.type == "cpu" and torch.isfinite(images).all()


def test_evaluate_scores_on_the_gpu(gpu_run, tmp_path):
    results = evaluate(
        config(
            "evaluate",
            tmp_path,
            f"ckpt={gpu_run}",
            "trainer=gpu",
            "device=cuda",
            "metrics=[fid]",
            "sampler.steps=5",
            "feature_batch_size=16",
            *FID_OPTIONS,
        )
    )
    assert math.isfinite(results["metrics"]["fid_digits"])
    assert (tmp_path / "run" / "results.json").is_file()
