"""process=cold through the commands: configs compose, a few steps train, the sample grid comes
from the cold sampler, the checkpoint keeps the prior and loads for sampling, and `sample
restore=true` restores degraded validation images."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir

from diffusion_lab import CONFIG_DIR
from diffusion_lab.checkpoints import load_module
from diffusion_lab.errors import ConfigError
from diffusion_lab.evaluate import read_samples
from diffusion_lab.processes.cold import ColdProcess
from diffusion_lab.sample import generate
from diffusion_lab.sampling import sample
from diffusion_lab.train import train


def config(tmp_path: Path, *overrides: str):
    fixed = [f"paths.root_dir={tmp_path}", f"paths.output_dir={tmp_path / 'run'}"]
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose(config_name="train", overrides=fixed + list(overrides))


@pytest.mark.parametrize(
    "experiment, degradation",
    [
        ("digits_cold_blur", "blur"),
        ("fashion_mnist_cold_blur", "blur"),
        ("fashion_mnist_cold_inpaint", "inpaint"),
    ],
)
def test_cold_experiments_compose(tmp_path, experiment, degradation):
    cfg = config(tmp_path, f"experiment={experiment}")
    assert cfg.process.name == "cold" and cfg.process.degradation.name == degradation
    assert cfg.sampler.name == "cold" and cfg.sampler.steps == cfg.process.num_timesteps


def test_digits_cold_blur_trains_samples_and_reloads(tmp_path):
    cfg = config(tmp_path, "experiment=digits_cold_blur", "debug=fast")
    train(cfg)
    run_dir = tmp_path / "run"
    assert (run_dir / "samples" / "final.png").is_file()
    checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert checkpoint["hyper_parameters"]["process"]["name"] == "cold"
    assert set(checkpoint["process"]) == {"weights", "means", "scale_tril"}
    module = load_module(run_dir)
    assert isinstance(module.process, ColdProcess) and module.process.prior is not None
    generator = torch.Generator().manual_seed(0)
    out = sample(module.net, module.diffusion, (3, 1, 8, 8), "cold_naive", 4, generator=generator)
    assert out.nfe == 4 and out.images.shape == (3, 1, 8, 8)

    sampled_dir = tmp_path / "sampled"
    overrides = [f"ckpt={run_dir}", "sampler=cold", "sampler.steps=10", "n=4", "grid_size=0"]
    overrides += ["progress=false", f"paths.output_dir={sampled_dir}"]
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        npz = generate(compose(config_name="sample", overrides=overrides))
    assert np.load(npz)["arr_0"].shape == (4, 8, 8, 1)

    restored_dir = tmp_path / "restored"
    overrides = [f"ckpt={run_dir}", "restore=true", "sampler=cold", "sampler.steps=10", "n=10"]
    overrides += ["batch_size=4", "grid_size=4", f"paths.output_dir={restored_dir}"]
    overrides += ["features=digits"]
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        npz = generate(compose(config_name="sample", overrides=overrides))
    arrays = np.load(npz)
    assert [arrays[key].shape for key in ("arr_0", "originals", "degraded")] == [(10, 8, 8, 1)] * 3
    assert read_samples(npz).shape == (10, 8, 8, 1)  # what `evaluate samples=` scores
    metrics = json.loads((restored_dir / "restoration.json").read_text())
    assert set(metrics) == {
        "rmse", "ssim", "rmse_degraded", "ssim_degraded", "fid_digits", "fid_digits_degraded"
    }  # fmt: skip
    assert metrics["fid_digits_degraded"] > 0
    assert (restored_dir / "restoration.png").is_file()


def test_a_gaussian_sampler_on_the_cold_process_names_the_ones_that_fit(tmp_path):
    cfg = config(tmp_path, "experiment=digits_cold_blur", "sampler=ddim", "sampler.steps=5")
    with pytest.raises(ConfigError, match="cold, cold_naive"):
        train(cfg)
