"""Text-to-image through the commands, as a user runs them: `train experiment=digits_text` (a few
steps), its checkpoint reloaded with the vocabulary it was trained with, `sample` with prompts."""

import numpy as np
import pytest
import yaml
from clitools import run_module
from PIL import Image

from diffusion_lab.checkpoints import load_checkpoint, load_module

pytestmark = pytest.mark.slow  # two subprocess runs: ~40 s on a busy 2-core machine

PROMPTS = ["a small red digit three on the left", "a large blue digit seven"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("digits_text") / "run"
    result = run_module(
        "diffusion_lab.train",
        "experiment=digits_text",
        "debug=fast",
        f"hydra.run.dir={run_dir}",
        threads=1,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return run_dir


def test_the_run_keeps_the_captions_vocabulary_and_reloads_it(run_dir):
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    vocab = config["text_encoder"]["vocab"]
    assert {"a", "small", "red", "three", "left"} <= set(vocab)
    checkpoint = load_checkpoint(run_dir / "checkpoints" / "last.ckpt")  # weights_only=True
    assert checkpoint["hyper_parameters"]["text_encoder"]["vocab"] == vocab
    assert "text_encoder.token_embedding.weight" in checkpoint["state_dict"]
    module = load_module(run_dir)
    assert module.text_encoder.tokenizer.words[4:] == vocab
    assert (run_dir / "samples" / "final.png").is_file()


def test_sample_draws_a_titled_row_per_prompt(run_dir, tmp_path):
    prompts = tmp_path / "prompts.txt"
    prompts.write_text("\n".join(PROMPTS) + "\n\n")
    out = tmp_path / "sampled"
    common = ["sampler.steps=2", "progress=false", f"ckpt={run_dir}"]
    result = run_module(
        "diffusion_lab.sample",
        *common,
        f"prompts={prompts}",
        "n=4",
        "guidance=cfg",
        "guidance.scale=3",
        f"hydra.run.dir={out}",
        threads=1,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    arrays = np.load(out / "samples.npz")
    assert arrays["prompts"].tolist() == PROMPTS
    assert arrays["prompt_index"].tolist() == [0, 1, 0, 1] and arrays["arr_0"].shape[0] == 4
    assert "arr_1" not in arrays
    grid = np.asarray(Image.open(out / "grid.png").convert("L"))
    rows = grid.shape[0] // 2
    # each row's title: dark text pixels in the left margin of both rows
    assert (grid[:rows, :40] < 128).any() and (grid[rows:, :40] < 128).any()

    missing = run_module("diffusion_lab.sample", *common, f"hydra.run.dir={out}2", threads=1)
    assert missing.returncode != 0
    assert missing.stderr.strip().splitlines()[-1].startswith("error: this model is text-cond")


def test_evaluate_scores_text_alignment(run_dir, tmp_path):
    out = tmp_path / "evaluated"
    result = run_module(
        "diffusion_lab.evaluate",
        f"ckpt={run_dir}",
        "metrics=[text_alignment]",
        "num_samples=6",
        "sampler.steps=2",
        "guidance=cfg",
        "guidance.scale=3",
        f"hydra.run.dir={out}",
        threads=1,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = yaml.safe_load((out / "results.json").read_text())["metrics"]
    names = {"class", "colour", "position", "size", "all"}
    assert set(metrics) == {f"text_alignment_{name}" for name in names}
    assert all(0 <= value <= 1 for value in metrics.values())
