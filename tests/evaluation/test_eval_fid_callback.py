"""The FID training callback: scores the EMA weights, logs fid_<K>k, off unless switched on."""

import csv

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
from evaluation.evaltools import TINY_TRAINING, compose_config
from hydra.utils import instantiate

from diffusion_lab.callbacks import EMA, FID
from diffusion_lab.data import DigitsDataModule
from diffusion_lab.lightning import DiffusionModule
from diffusion_lab.metrics import PRCSettings, random_subset
from diffusion_lab.models.presets import preset_config
from diffusion_lab.train import train

NET = preset_config("tiny", image_size=8, channels=1)


class WeightsProbe(pl.Callback):
    """After each validation (EMA has swapped the raw weights back): the averaged and raw nets."""

    def __init__(self, ema: EMA):
        self.ema = ema
        self.after_validation = []

    def on_validation_end(self, trainer, pl_module):
        averaged = self.ema._average_model.module.net.state_dict()
        raw = pl_module.net.state_dict()
        self.after_validation.append((trainer.global_step, clone(averaged), clone(raw)))


def clone(state: dict) -> dict:
    return {k: v.detach().clone() for k, v in state.items()}


def test_fid_scores_the_ema_weights(tmp_path, monkeypatch):
    torch.manual_seed(0)
    module = DiffusionModule(
        NET,
        {"schedule": "linear", "num_timesteps": 100},
        {"_target_": "torch.optim.Adam", "_partial_": True, "lr": 1e-2},
    )
    ema = EMA(decay=0.5)
    fid = FID(
        every_n_steps=1,
        num_samples=8,
        sampler={"name": "ddim", "steps": 2},
        features="digits",
        reference_split="test",
        cache_dir=tmp_path,
        batch_size=8,
        metrics=("fid", "is", "precision", "recall"),
    )
    scored_weights = []
    compute = fid.compute

    def recording(trainer, pl_module):
        scored_weights.append(clone(pl_module.net.state_dict()))
        return compute(trainer, pl_module)

    monkeypatch.setattr(fid, "compute", recording)
    probe = WeightsProbe(ema)
    trainer = pl.Trainer(
        accelerator="cpu",
        max_steps=3,
        val_check_interval=1,
        limit_val_batches=1,
        num_sanity_val_steps=0,
        callbacks=[ema, fid, probe],
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(module, datamodule=DigitsDataModule(batch_size=16))

    assert len(scored_weights) == len(probe.after_validation) == 3
    for scored, (step, averaged, raw) in zip(scored_weights, probe.after_validation, strict=True):
        assert all(torch.equal(scored[k], averaged[k]) for k in scored)
        if step >= 2:  # the first EMA update copies the weights: they differ from step 2 on
            assert any(not torch.equal(scored[k], raw[k]) for k in scored)
    assert torch.isfinite(trainer.callback_metrics["fid_digits_0.008k"])
    assert {"is_digits_0.008k", "precision_digits_0.008k"} <= set(trainer.callback_metrics)

    # precision/recall as evaluate computes them: the reference side is a seeded random subset
    # of the split (here as many as samples), not its first images
    test_split = DigitsDataModule().reference_dataset("test").tensors[0]
    subset = test_split[random_subset(len(test_split), 8, seed=0)]
    expected = fid.extractor(subset).features.numpy()
    # float32 features of images batched otherwise round apart by ~1e-7 relative; features of
    # other images differ by order 1
    np.testing.assert_allclose(fid.reference.features, expected, rtol=1e-5, atol=1e-5)
    assert fid.prc == PRCSettings(num_reference=8, num_generated=8)


def test_fid_from_the_training_config_logs_in_two_processes(tmp_path):
    run = tmp_path / "run"
    train(
        compose_config(
            "train",
            tmp_path,
            *TINY_TRAINING,
            "trainer=ddp_cpu",
            "callbacks.fid.every_n_steps=2",
            "callbacks.fid.num_samples=15",  # odd: shards of 8 and 7
            "callbacks.fid.features=digits",
            "callbacks.fid.batch_size=8",
        )
    )
    with open(run / "csv" / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    scores = [float(r["fid_digits_0.015k"]) for r in rows if r.get("fid_digits_0.015k")]
    assert len(scores) == 2  # at the validations of steps 2 and 4
    assert list((tmp_path / "cache" / "metrics").glob("digits-train-8-digits-*.npz"))


def test_fid_is_off_by_default(tmp_path):
    cfg = compose_config("train", tmp_path)
    fid = instantiate(cfg.callbacks.fid)
    assert isinstance(fid, FID) and fid.every_n_steps == 0
    assert fid.prc == PRCSettings(num_reference=5000, num_generated=5000, k=3, seed=0)
    fid.setup(trainer=None, pl_module=None, stage="fit")  # builds nothing when off
    assert fid.extractor is None and fid.reference is None


@pytest.mark.parametrize(
    ("num_samples", "features", "name"),
    [
        (50_000, "inception", "fid_50k"),
        (1000, "digits", "fid_digits_1k"),
        (500, "fmnist", "fid_fmnist_0.5k"),
    ],
)
def test_logged_name_carries_thousands_of_samples(num_samples, features, name):
    fid = FID(every_n_steps=0, num_samples=num_samples, sampler={"name": "ddim"}, features=features)
    key = "fid" if features == "inception" else f"fid_{features}"
    assert fid.log_name(key) == name
