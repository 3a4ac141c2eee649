"""Each bad input stops the run with one `error:` line naming it and exit status 1; nothing
already written is lost."""

import pickle
import re
from pathlib import Path

import fakedata
import pytest
import torch
from PIL import Image
from reliability.reltools import checkpoint, config, error_lines, run_command

from diffusion_lab.cli import user_errors
from diffusion_lab.diffusion import GaussianDiffusion
from diffusion_lab.train import train

MISSING_DATA = ["data=cifar10", "model=tiny"]  # CIFAR-10 is absent: an error about it = data read


def fails(capsys, tmp_path: Path, *overrides: str) -> str:
    """The one error line of a run that must exit with status 1, as the command does."""
    cfg = config(tmp_path, *overrides)
    with pytest.raises(SystemExit) as exit_, user_errors():
        train(cfg)
    assert exit_.value.code == 1
    lines = error_lines(capsys.readouterr().err)
    assert len(lines) == 1, lines
    return lines[0]


@pytest.mark.parametrize(
    ("override", "expected"),
    [
        ("schedule.name=quadratic", "schedule='quadratic'.*allowed.*cosine"),
        ("schedule.num_timesteps=0", "num_timesteps=0"),
        ("trainer.max_steps=0", "trainer.max_steps=0 must be an integer >= 1"),
        ("trainer.max_steps=-1", "trainer.max_steps=-1"),
        ("callbacks.last_checkpoint.every_n_train_steps=0", "every_n_train_steps=0"),
        ("sampler.steps=0", "sampler.steps"),
        ("sampler.steps=1001", "sampler.steps"),  # more sampling steps than T = 1000
        ("data.image_size=31", "image_size"),  # the tiny U-Net halves the image once
        ("loss.timestep_sampler=importance", "timestep_sampler='importance'.*uniform"),
    ],
)
def test_invalid_value_is_named_before_data_is_read(capsys, tmp_path, override, expected):
    error = fails(capsys, tmp_path, *MISSING_DATA, override)
    assert re.search(expected, error), error
    assert "cifar" not in error.lower()


class RunsCodeWhenUnpickled:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_checkpoint_with_code_is_refused_before_training(capsys, tmp_path):
    evil, marker = tmp_path / "evil.ckpt", tmp_path / "code-ran"
    torch.save({"state_dict": {}, "payload": RunsCodeWhenUnpickled(marker)}, evil)
    error = fails(capsys, tmp_path, *MISSING_DATA, f"ckpt_path={evil}")
    assert "refusing to load" in error and "evil.ckpt" in error
    assert not marker.exists()
    pickle.loads(pickle.dumps(RunsCodeWhenUnpickled(marker)))  # the payload is real
    assert marker.exists()


def test_truncated_checkpoint_is_named_and_resume_keeps_the_run(tmp_path):
    run_dir = tmp_path / "run"
    train(config(tmp_path))
    last = run_dir / "checkpoints" / "last.ckpt"
    good = last.read_bytes()
    last.write_bytes(good[: len(good) // 2])
    result = run_command(f"resume={run_dir}", f"hydra.run.dir={tmp_path / 'new'}")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    [error] = error_lines(result.stderr)
    assert str(last) in error and "truncated or corrupt" in error
    assert (run_dir / "config.yaml").is_file() and last.stat().st_size == len(good) // 2


def test_repeated_nonfinite_loss_stops_and_keeps_the_last_good_checkpoint(
    capsys, tmp_path, monkeypatch
):
    calls = {"n": 0}
    losses = GaussianDiffusion.training_losses

    def nan_after_two_steps(self, *args, **kwargs):
        terms = losses(self, *args, **kwargs)
        calls["n"] += 1
        if calls["n"] > 2:
            terms["loss"] = terms["loss"] * float("nan")
        return terms

    monkeypatch.setattr(GaussianDiffusion, "training_losses", nan_after_two_steps)
    every_step = ["callbacks.last_checkpoint.every_n_train_steps=1", "max_nonfinite_steps=3"]
    run = [*every_step, "trainer.max_steps=10", "trainer.val_check_interval=100"]
    error = fails(capsys, tmp_path, *run)
    assert "not finite for 3 steps in a row" in error and "max_nonfinite_steps" in error
    # a skipped step counts in global_step but leaves the weights alone
    kept = checkpoint(tmp_path / "run")
    assert kept["global_step"] == 4 and kept["skipped_steps"] == 2
    assert all(torch.isfinite(w).all() for w in kept["state_dict"].values())


def test_a_nonfinite_step_is_skipped_and_counted(tmp_path, monkeypatch):
    calls = {"n": 0}
    losses = GaussianDiffusion.training_losses

    def nan_once(self, *args, **kwargs):
        terms = losses(self, *args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 2:
            terms["loss"] = terms["loss"] * float("inf")
        return terms

    monkeypatch.setattr(GaussianDiffusion, "training_losses", nan_once)
    train(config(tmp_path, "trainer.val_check_interval=100"))
    kept = checkpoint(tmp_path / "run")
    assert kept["global_step"] == 4 and kept["skipped_steps"] == 1


def bad_image_folder(root: Path) -> tuple[list[str], Path]:
    fakedata.make_fake_image_folder(root, n_per_class=8, size=(16, 16))
    bad = root / "cat" / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n not an image")
    return ["data=folder", f"data.root={root}", "data.image_size=16", "data.num_workers=0"], bad


def test_unreadable_image_is_skipped_and_counted(tmp_path, caplog):
    data, bad = bad_image_folder(tmp_path / "images")
    train(config(tmp_path, *data, "trainer.max_steps=2"))
    assert checkpoint(tmp_path / "run")["global_step"] == 2
    assert "skipped 1 unreadable image(s)" in caplog.text and str(bad) in caplog.text


def test_unreadable_image_can_stop_the_run_naming_the_file(capsys, tmp_path):
    data, bad = bad_image_folder(tmp_path / "images")
    error = fails(capsys, tmp_path, *data, "data.on_bad_image=error")
    assert f"unreadable image {bad}" in error


def truncated_jpeg_folder(root: Path) -> Path:
    """A class-less folder of JPEGs, one cut short: PIL's verify() passes it, decoding fails."""
    fakedata.make_fake_image_folder(root, classes=None, n_per_class=8, size=(16, 16))
    for png in root.rglob("*.png"):
        Image.open(png).convert("RGB").save(png.with_suffix(".jpg"), quality=90)
        png.unlink()
    bad = sorted(root.rglob("*.jpg"))[0]
    bad.write_bytes(bad.read_bytes()[: len(bad.read_bytes()) * 9 // 10])  # the scan data cut
    with Image.open(bad) as image:
        image.verify()  # the header looks fine: only decoding the pixels finds the damage
    return bad


@pytest.mark.parametrize("mode", ["skip", "error"])
def test_a_truncated_jpeg_is_skipped_or_stops_the_run_naming_it(tmp_path, mode):
    bad = truncated_jpeg_folder(tmp_path / "images")
    data = ["data=folder", f"data.root={tmp_path / 'images'}", "data.image_size=8"]
    loader = ["data.num_workers=1", "data.persistent_workers=false", "data.val_fraction=0.25"]
    result = run_command(
        *data,
        *loader,
        f"data.on_bad_image={mode}",
        "trainer.max_steps=3",
        f"hydra.run.dir={tmp_path / 'run'}",
        cwd=tmp_path,
    )
    output = result.stdout + result.stderr
    assert str(bad) in output and "Traceback" not in output
    if mode == "skip":
        assert result.returncode == 0 and f"skipped unreadable image {bad}" in output
    else:
        assert result.returncode == 1
        [line] = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert f"unreadable image {bad}" in line and "on_bad_image=skip" in line
