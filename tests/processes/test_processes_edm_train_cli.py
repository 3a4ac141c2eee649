"""loss=edm (which selects process=edm) through the training command: a few steps train and the
grid comes from heun."""

import torch
from hydra import compose, initialize_config_dir

from diffusion_lab import CONFIG_DIR
from diffusion_lab.checkpoints import load_module
from diffusion_lab.processes.edm import EDMProcess
from diffusion_lab.train import train


def test_edm_trains_a_few_steps_and_samples_with_heun(tmp_path):
    overrides = [f"paths.root_dir={tmp_path}", f"paths.output_dir={tmp_path / 'run'}"]
    overrides += ["experiment=quickstart", "loss=edm", "sampler=heun", "debug=fast"]
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(config_name="train", overrides=overrides)
    assert cfg.process.name == "edm"
    train(cfg)
    run_dir = tmp_path / "run"
    assert (run_dir / "samples" / "final.png").is_file()
    checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=True)
    assert checkpoint["hyper_parameters"]["process"]["P_mean"] == -1.2
    assert isinstance(load_module(run_dir).process, EDMProcess)


def test_fashion_mnist_edm_composes(tmp_path):
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(config_name="train", overrides=["experiment=fashion_mnist_edm"])
    assert cfg.process.name == "edm" and cfg.sampler.name == "heun"


def test_process_edm_alone_composes_too():
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose(config_name="train", overrides=["experiment=quickstart", "process=edm"])
    assert cfg.process.name == "edm" and cfg.loss.loss_type == "simple"
