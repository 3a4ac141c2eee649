"""A tiny trained run (digits, T = 100) shared by the evaluation tests."""

from pathlib import Path

import pytest
from evaluation.evaltools import TINY_TRAINING, compose_config

from diffusion_lab.train import train


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory) -> Path:
    """The run dir of 4 training steps on digits: config.yaml and checkpoints/last.ckpt."""
    root = tmp_path_factory.mktemp("train")
    train(compose_config("train", root, *TINY_TRAINING))
    return root / "run"
