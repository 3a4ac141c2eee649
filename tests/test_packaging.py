"""The package as `pip install .` makes it: the wheel holds every config and weights file, and an
install of it (not editable) trains and samples from a directory outside the checkout."""

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from diffusion_lab import CONFIG_DIR

ROOT = Path(__file__).resolve().parents[1]
TOP_LEVEL_OUTPUTS = {".git", ".venv", ".venv-ci", "build", "logs", "wandb", "cache", "data"}


def skip(folder: str, names: list[str]) -> set[str]:
    """What a copy of the checkout leaves out: virtual envs, run outputs, build leftovers."""
    top = {n for n in names if n in TOP_LEVEL_OUTPUTS} if Path(folder) == ROOT else set()
    return top | {n for n in names if n == "__pycache__" or n.endswith(".egg-info")}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel built from a copy of the checkout (a build writes into its source tree)."""
    root = tmp_path_factory.mktemp("wheel")
    source = root / "source"
    shutil.copytree(ROOT, source, ignore=skip)
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
    done = subprocess.run(
        [*build, "-w", str(root / "dist"), str(source)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    [built] = (root / "dist").glob("diffusion_lab-*.whl")
    return built


def test_the_wheel_holds_every_config_and_weights_file(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    package = CONFIG_DIR.parent
    shipped = [*CONFIG_DIR.rglob("*.yaml"), *(package / "metrics" / "weights").iterdir()]
    missing = [p for p in shipped if str(p.relative_to(package.parent)) not in names]
    assert shipped and not missing
    entry_points = zipfile.ZipFile(wheel).read(
        next(n for n in names if n.endswith("entry_points.txt"))
    )
    for command in ("train", "sample", "evaluate", "export", "figures", "train-classifier"):
        assert f"diffusion-lab-{command} =".encode() in entry_points


def test_an_installed_wheel_trains_and_samples_outside_the_checkout(wheel, tmp_path):
    site, work = tmp_path / "site", tmp_path / "work"
    install = [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site)]
    assert subprocess.run([*install, str(wheel)], capture_output=True).returncode == 0
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site), "WANDB_MODE": "offline", "OMP_NUM_THREADS": "2"}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(args, cwd=work, env=env, capture_output=True, text=True, timeout=300)

    where = run(sys.executable, "-c", "import diffusion_lab; print(diffusion_lab.__file__)")
    assert where.stdout.startswith(str(site))  # the installed copy, not the checkout
    train = run(str(site / "bin" / "diffusion-lab-train"), "experiment=quickstart", "debug=fast")
    assert train.returncode == 0, train.stderr[-3000:]
    [run_dir] = (work / "logs" / "quickstart" / "runs").iterdir()
    sample = run(
        sys.executable, "-m", "diffusion_lab.sample", f"ckpt={run_dir}", "n=4", "sampler.steps=2"
    )
    assert sample.returncode == 0, sample.stderr[-3000:]
    [sample_dir] = (work / "logs" / "sample" / "runs").iterdir()
    assert (sample_dir / "samples.npz").is_file() and (sample_dir / "grid.png").is_file()


@pytest.mark.slow
def test_every_installed_command_starts_outside_the_checkout(wheel, tmp_path):
    site = tmp_path / "site"
    install = [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(site)]
    assert subprocess.run([*install, str(wheel)], capture_output=True).returncode == 0
    env = {**os.environ, "PYTHONPATH": str(site), "OMP_NUM_THREADS": "2"}
    for command in ("evaluate", "export", "figures", "train-classifier", "convert"):
        started = subprocess.run(
            [str(site / "bin" / f"diffusion-lab-{command}"), "--help"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert started.returncode == 0, (command, started.stderr[-2000:])  # finds its configs
