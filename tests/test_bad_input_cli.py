"""Bad input stops every command with one `error:` line naming the key or file, exit status 1 and
no traceback: a table over all commands, and bad configuration values caught before any data
is read."""

import json
import subprocess
import sys

import pytest
import torch
from clitools import command_env
from test_train_cli import run_train

from diffusion_lab.export import export_ema
from diffusion_lab.lightning import DiffusionModule
from diffusion_lab.models.presets import preset_config

TINY_CLASSIFIER = ["data=digits", "classifier.attention_resolutions=[]"]
# CIFAR-10 (the default data) is missing there: an error about a value proves no data was read
BEFORE_DATA = ["model=tiny", "debug=fast", "paths.data_dir={root}/no-data"]
ADAM = {"_target_": "torch.optim.Adam", "_partial_": True, "lr": 1e-3}


def files(root) -> dict[str, str]:
    """The table's inputs: a tiny untrained model's checkpoint and export, random bytes named
    .ckpt, a text file, an empty dir and paths that do not exist."""
    module = DiffusionModule(
        preset_config("tiny", image_size=8, channels=1), {"num_timesteps": 50}, ADAM
    )
    model = root / "model.ckpt"
    torch.save({"hyper_parameters": dict(module.hparams), "state_dict": module.state_dict()}, model)
    export_ema(model, root / "model.safetensors")
    (root / "random.ckpt").write_bytes(torch.randint(0, 256, (3000,), dtype=torch.uint8).numpy())
    (root / "notes.txt").write_text("not a checkpoint\n")
    (root / "empty").mkdir()
    names = ["model.ckpt", "model.safetensors", "random.ckpt", "notes.txt", "empty", "nope.ckpt"]
    return {name: str(root / name) for name in names} | {"root": str(root)}


# (command, arguments with {file} placeholders, what the error line must name)
TABLE = [
    ("train", ["ckpt_path={random.ckpt}"], "random.ckpt"),
    ("train", ["ckpt_path={model.safetensors}"], "ckpt_path="),
    ("train", ["ckpt_path={nope.ckpt}"], "nope.ckpt"),
    ("train", ["resume={empty}"], "resume="),
    ("train", ["model=nosuch"], "model/nosuch"),
    ("train", ["trainer.max_steps=[1"], "trainer.max_steps=[1"),
    ("sample", [], "ckpt"),
    ("sample", ["ckpt={nope.ckpt}"], "nope.ckpt"),
    ("sample", ["ckpt={random.ckpt}"], "random.ckpt"),
    ("sample", ["ckpt={notes.txt}"], "notes.txt"),
    ("sample", ["ckpt={empty}"], "empty"),
    ("sample", ["ckpt={model.ckpt}", "guidance=classifier"], "guidance.classifier"),
    ("sample", ["ckpt={model.ckpt}", "guidance=cfg"], "guidance=cfg"),
    ("sample", ["ckpt={model.ckpt}", "sampler=nosuch"], "sampler/nosuch"),
    ("evaluate", [], "ckpt="),
    ("evaluate", ["ckpt={random.ckpt}", "features=digits"], "random.ckpt"),
    ("evaluate", ["samples={notes.txt}", "data=digits", "features=digits"], "notes.txt"),
    ("evaluate", ["samples={nope.ckpt}", "metrics=[is]", "features=digits"], "nope.ckpt"),
    ("evaluate", ["metrics=[nll]", "samples={notes.txt}"], "ckpt="),
    ("evaluate", ["ckpt={model.ckpt}", "metrics=[nosuch]"], "metrics/nosuch"),
    ("export", ["{nope.ckpt}"], "nope.ckpt"),
    ("export", ["{random.ckpt}", "{root}/out.safetensors"], "random.ckpt"),
    ("export", ["{notes.txt}", "{root}/out.safetensors"], "notes.txt"),
    ("figures.__main__", ["{empty}", "--kind", "nfe", "--out", "{root}/f.png"], "empty"),
    ("figures.__main__", ["{notes.txt}", "--kind", "nfe", "--out", "{root}/f.png"], "notes.txt"),
    ("convert", ["openai", "{nope.ckpt}", "--flags", "--image_size 8"], "nope.ckpt"),
    ("convert", ["openai", "{random.ckpt}", "--flags", "--image_size 8"], "random.ckpt"),
    ("convert", ["diffusers", "{empty}"], "empty"),
    ("convert", ["to-diffusers", "{random.ckpt}", "--out", "{root}/d"], "random.ckpt"),
    ("train_classifier", ["ckpt_path={random.ckpt}", *TINY_CLASSIFIER], "random.ckpt"),
    ("train_classifier", ["ckpt_path={model.safetensors}", *TINY_CLASSIFIER], "ckpt_path="),
    ("train_classifier", ["data=nosuch"], "data/nosuch"),
    *(
        ("train", [*BEFORE_DATA, override], key)
        for override, key in [
            ("sampler.steps=0", "sampler.steps"),
            ("sampler.steps=5000", "sampler.steps"),
            ("schedule.name=quadratic", "schedule"),
            ("data.image_size=10", "image_size"),
            ("model.attention_resolutions=[3]", "attention_resolutions"),
        ]
    ),
]


def fill(arg: str, paths: dict[str, str]) -> str:
    for name, path in paths.items():
        arg = arg.replace(f"{{{name}}}", path)
    return arg


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory) -> list[dict]:
    """Every row of TABLE run in one process (tests/bad_input_runner.py): exit status, stderr."""
    root = tmp_path_factory.mktemp("bad-input")
    paths = files(root)
    lines = []
    for number, (command, args, _) in enumerate(TABLE):
        run_dir = (
            [f"hydra.run.dir={root}/runs/{number}"] if "=" in "".join(args) or not args else []
        )
        filled = [fill(arg, paths) for arg in args]
        lines.append(json.dumps([f"diffusion_lab.{command}", *filled, *run_dir]))
    result = subprocess.run(
        [sys.executable, "-m", "bad_input_runner"],
        input="\n".join(lines) + "\n",
        cwd=root,
        env=command_env(threads=1),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return [json.loads(line) for line in result.stdout.splitlines()]


@pytest.mark.parametrize("row", range(len(TABLE)), ids=[f"{c} {' '.join(a)}" for c, a, _ in TABLE])
def test_every_bad_input_gives_one_error_line(outcomes, row):
    named = TABLE[row][2]
    outcome = outcomes[row]
    stderr = outcome["stderr"]
    assert outcome["code"] == 1, stderr[-3000:]
    assert "Traceback" not in stderr, stderr[-3000:]
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and named in errors[0], stderr[-3000:]


def test_invalid_values_are_named_before_data_is_read(outcomes):
    rows = [
        row for row, (_, args, _) in enumerate(TABLE) if args[: len(BEFORE_DATA)] == BEFORE_DATA
    ]
    assert len(rows) == 5
    for row in rows:
        errors = [
            line for line in outcomes[row]["stderr"].splitlines() if line.startswith("error:")
        ]
        assert errors and "no-data" not in errors[0], outcomes[row]["stderr"][-2000:]


def test_resume_without_checkpoint_fails_loudly(tmp_path):
    (tmp_path / "config.yaml").write_text("seed: 0\n")
    result = run_train(f"resume={tmp_path}", f"hydra.run.dir={tmp_path / 'new'}")
    assert result.returncode == 1
    assert "no checkpoint" in result.stderr and "Traceback" not in result.stderr
