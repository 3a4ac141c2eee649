"""Config helpers for the evaluation tests."""

from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from diffusion_lab import CONFIG_DIR

TINY_TRAINING = [
    "experiment=quickstart",
    "debug=fast",
    "model.model_channels=32",
    "schedule.num_timesteps=100",  # the NLL evaluates every one of the T steps
]


def compose_config(name: str, root: Path, *overrides: str) -> DictConfig:
    """`name`.yaml composed with run dir `root/run` (the compose API has no Hydra run dir)."""
    fixed = [f"paths.root_dir={root}", f"paths.output_dir={root / 'run'}"]
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose(config_name=name, overrides=fixed + list(overrides))
