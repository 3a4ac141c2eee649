"""Every option of every config group, and every experiment, composes and resolves."""

import inspect
from pathlib import Path

import lightning
import pytest
from clitools import run_module
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from diffusion_lab import CONFIG_DIR

GROUPS = ["data", "model", "schedule", "loss", "sampler", "trainer", "logger", "callbacks", "paths"]


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONFIG_DIR / group).glob("*.yaml"))


def compose_train(tmp_path: Path, overrides: list[str]):
    fixed = [f"paths.root_dir={tmp_path}", f"paths.output_dir={tmp_path}/run"]
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose(config_name="train", overrides=fixed + overrides)


@pytest.mark.parametrize("group", GROUPS + ["experiment", "debug"])
def test_group_has_options(group):
    assert options(group), f"conf/{group}/ has no options"


@pytest.mark.parametrize(
    "override", [f"{g}={o}" for g in GROUPS + ["experiment", "debug"] for o in options(g)]
)
def test_option_composes_and_resolves(tmp_path, override):
    cfg = compose_train(tmp_path, [override])
    plain = OmegaConf.to_container(cfg, resolve=True)
    group, option = override.split("=")
    assert plain["data"]["image_size"] > 0
    assert plain["schedule"]["num_timesteps"] > 0
    assert "_target_" in plain["model"] and "_target_" in plain["trainer"]
    if group == "experiment":
        assert plain["task_name"] == option


def test_default_is_the_ddpm_cifar10_recipe(tmp_path):
    cfg = compose_train(tmp_path, [])
    assert cfg.data._target_.endswith("CIFAR10DataModule") and cfg.data.batch_size == 128
    assert (cfg.schedule.name, cfg.schedule.num_timesteps) == ("linear", 1000)
    assert (cfg.loss.loss_type, cfg.loss.model_mean_type) == ("simple", "epsilon")
    assert cfg.model.model_channels == 128 and list(cfg.model.channel_mult) == [1, 2, 2, 2]
    assert cfg.optimizer.lr == 2e-4 and cfg.warmup_steps == 5000
    assert cfg.trainer.gradient_clip_val == 1.0 and cfg.callbacks.ema.decay == 0.9999
    assert cfg.seed == 0


def test_experiment_overrides_groups_and_debug_wins(tmp_path):
    cfg = compose_train(tmp_path, ["experiment=iddpm_cifar10", "debug=fast"])
    assert (cfg.schedule.name, cfg.schedule.num_timesteps) == ("cosine", 4000)
    assert cfg.loss.loss_type == "hybrid" and cfg.loss.model_var_type == "learned_range"
    assert cfg.trainer.max_steps == 4


def test_unknown_option_names_the_choices(tmp_path):
    from hydra.errors import MissingConfigException

    with pytest.raises(MissingConfigException, match="Available options") as info:
        compose_train(tmp_path, ["schedule=quadratic"])
    assert "cosine" in str(info.value) and "linear" in str(info.value)


@pytest.mark.parametrize(
    ("command", "accepted", "foreign"),
    [
        (
            "diffusion_lab.train",
            ["data", "model", "schedule", "experiment"],
            ["guidance", "metrics"],
        ),
        ("diffusion_lab.sample", ["sampler", "guidance", "trainer"], ["model", "schedule", "data"]),
        ("diffusion_lab.evaluate", ["metrics", "sampler", "data"], ["model", "schedule", "loss"]),
        ("diffusion_lab.train_classifier", ["data", "schedule"], ["model", "sampler", "loss"]),
    ],
)
def test_help_lists_only_the_groups_a_command_accepts(command, accepted, foreign):
    result = run_module(command, "--help")
    assert result.returncode == 0, result.stderr[-2000:]
    groups = result.stdout.split("== Config groups")[1].split("== Config (")[0]
    listed = {line.split(":")[0] for line in groups.splitlines() if ":" in line}
    assert set(accepted) <= listed and not set(foreign) & listed
    assert f"python -m {command}" in result.stdout


def test_lightning_is_a_version_whose_private_members_the_ema_callback_uses():
    """EMA builds on Lightning's WeightAveraging and swaps through two of its private members;
    pyproject bounds lightning to the versions that have them."""
    from lightning.pytorch.callbacks import WeightAveraging

    missing = [name for name in ("_swap_models",) if not hasattr(WeightAveraging, name)]
    assert not missing, (
        f"lightning {lightning.__version__} has no WeightAveraging.{missing}: "
        "diffusion_lab.callbacks.EMA needs updating for this Lightning version"
    )
    source = inspect.getsource(WeightAveraging.setup)
    assert "self._average_model =" in source, "WeightAveraging no longer keeps _average_model"


def test_users_add_configs_from_a_folder_of_their_own(tmp_path):
    (tmp_path / "model").mkdir()
    (tmp_path / "experiment").mkdir()
    (tmp_path / "model" / "mine.yaml").write_text(
        "defaults:\n  - tiny\nmodel_channels: 48\n"  # a preset of the package, widened
    )
    (tmp_path / "experiment" / "mine.yaml").write_text(
        "# @package _global_\ndefaults:\n  - quickstart\n  - override /model: mine\n"
        "task_name: mine\n"
    )
    result = run_module(
        "diffusion_lab.train", f"--config-dir={tmp_path}", "experiment=mine", "--cfg", "job"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    job = OmegaConf.create(result.stdout)
    assert job.model.model_channels == 48 and job.task_name == "mine"
    assert job.data._target_.endswith("DigitsDataModule")  # the rest from the package
