"""Stored configs never run code: a foreign `_target_` anywhere in a checkpoint's hyperparameters,
an exported file's metadata or a run's config.yaml is refused, naming the key, the target and the
file, by every path that loads one, before anything is built."""

import json
from pathlib import Path

import pytest
import torch
from clitools import run_module
from omegaconf import OmegaConf
from reliability.reltools import config
from safetensors.torch import save_file

from diffusion_lab import CONFIG_DIR
from diffusion_lab.checkpoints import load_checkpoint, load_exported, load_module
from diffusion_lab.errors import CheckpointError
from diffusion_lab.evaluate import load_datamodule
from diffusion_lab.lightning.classifier import load_classifier
from diffusion_lab.models.presets import preset_config
from diffusion_lab.runs.resume import resume_config
from diffusion_lab.targets import MODEL_PARTS, RUN_PARTS, TRUSTED_ENV, check_targets, targets
from diffusion_lab.train import train


def payload(marker: Path) -> dict:
    """What `instantiate` would turn into `open(marker, "w")`: the file appearing is the proof."""
    return {"_target_": "builtins.open", "file": str(marker), "mode": "w"}


def hyper_parameters(marker: Path, where: str) -> dict:
    net = preset_config("tiny", 8, 1)
    optimizer = {"_target_": "torch.optim.Adam", "_partial_": True, "lr": 1e-3}
    if where == "net":
        net = payload(marker)
    elif where == "nested":
        net["extra"] = {"layers": [payload(marker)]}
    else:
        optimizer = payload(marker)
    return {"net": net, "diffusion": {"num_timesteps": 10}, "optimizer": optimizer}


KEYS = {
    "net": "hyper_parameters.net._target_",
    "nested": "hyper_parameters.net.extra.layers[0]._target_",
    "optimizer": "hyper_parameters.optimizer._target_",
}


@pytest.mark.parametrize("where", KEYS)
def test_a_checkpoint_naming_a_foreign_target_is_refused_everywhere(tmp_path, where):
    marker, path = tmp_path / "code-ran", tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": hyper_parameters(marker, where)}, path)
    for load in (load_checkpoint, load_module, load_classifier):
        with pytest.raises(CheckpointError) as refused:
            load(path)
        message = str(refused.value)
        assert f"{KEYS[where]}='builtins.open'" in message and str(path) in message
    with pytest.raises(CheckpointError, match="builtins.open"):  # train ckpt_path=, before data
        train(config(tmp_path, f"ckpt_path={path}"))
    assert not marker.exists()


def test_an_exported_file_naming_a_foreign_target_is_refused(tmp_path):
    marker, path = tmp_path / "code-ran", tmp_path / "evil.safetensors"
    metadata = {"hyper_parameters": json.dumps(hyper_parameters(marker, "nested"))}
    save_file({"w": torch.zeros(1)}, str(path), metadata=metadata)
    with pytest.raises(CheckpointError, match=r"hyper_parameters\.net\.extra\.layers\[0\]"):
        load_exported(path)
    assert not marker.exists()


def run_dir_with(tmp_path: Path, key: str, node: dict) -> Path:
    run_dir = tmp_path / "run"
    (run_dir / "checkpoints").mkdir(parents=True)
    torch.save({"state_dict": {}}, run_dir / "checkpoints" / "last.ckpt")
    config = OmegaConf.create({"data": {"_target_": "diffusion_lab.data.DigitsDataModule"}})
    OmegaConf.update(config, key, node, force_add=True)
    OmegaConf.save(config, run_dir / "config.yaml")
    return run_dir


def test_a_run_config_naming_a_foreign_target_is_refused_by_resume_and_evaluate(tmp_path):
    marker = tmp_path / "code-ran"
    run_dir = run_dir_with(tmp_path, "callbacks.evil", payload(marker))
    with pytest.raises(CheckpointError, match="callbacks.evil._target_='builtins.open'"):
        resume_config(run_dir, [])
    evaluate = OmegaConf.create({"data": None, "ckpt": str(run_dir), "samples": None})
    (run_dir / "config.yaml").write_text(f"data: {json.dumps(payload(marker))}\n")
    with pytest.raises(CheckpointError, match=str(run_dir / "config.yaml")):
        load_datamodule(evaluate)
    assert not marker.exists()


def test_trusting_a_target_by_name_lets_it_through(monkeypatch):
    node = {"_target_": "mylab.nets.MyUNet"}
    with pytest.raises(CheckpointError, match=TRUSTED_ENV):
        check_targets(node, MODEL_PARTS, "file.ckpt")
    monkeypatch.setenv(TRUSTED_ENV, "other.Thing, mylab.nets.MyUNet")
    check_targets(node, MODEL_PARTS, "file.ckpt")


def test_every_target_the_packaged_configs_name_is_trusted_in_a_stored_run_config():
    found = {
        target
        for path in CONFIG_DIR.rglob("*.yaml")
        if not path.is_relative_to(CONFIG_DIR / "hydra")
        for key, target in targets(OmegaConf.to_container(OmegaConf.load(path)))
        if not key.startswith("hydra.")  # Hydra's own (the sweeper's sampler): never stored
    }
    assert "diffusion_lab.models.UNetModel" in found and "torch.optim.Adam" in found
    check_targets({"all": [{"_target_": target} for target in sorted(found)]}, RUN_PARTS, "all")


def test_sample_refuses_such_a_checkpoint_in_one_line(tmp_path):
    marker, path = tmp_path / "code-ran", tmp_path / "evil.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": hyper_parameters(marker, "nested")}, path)
    result = run_module("diffusion_lab.sample", f"ckpt={path}", cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    [error] = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert str(path) in error and "builtins.open" in error
    assert not marker.exists()
