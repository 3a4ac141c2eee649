"""Each metric draws only what it needs: the NLL alone draws no samples."""

import json
import logging

from evaluation.evaltools import compose_config

import diffusion_lab.lightning.generation as generation
from diffusion_lab.evaluate import evaluate


def count_sampler_calls(monkeypatch) -> list[int]:
    """The batch sizes of every `sample` call made to draw images."""
    calls, sample = [], generation.sample

    def counted(net, diffusion, shape, *args, **kwargs):
        calls.append(shape[0])
        return sample(net, diffusion, shape, *args, **kwargs)

    monkeypatch.setattr(generation, "sample", counted)
    return calls


def test_nll_alone_draws_no_samples_and_says_so(trained_run, tmp_path, monkeypatch, caplog):
    calls = count_sampler_calls(monkeypatch)
    cfg = compose_config(
        "evaluate",
        tmp_path,
        f"ckpt={trained_run}",
        "metrics=[nll]",
        "metrics.nll.num_images=4",
        "num_samples=3",  # would be drawn (and counted) if the NLL drew samples
        "sampler.steps=2",
    )
    with caplog.at_level(logging.INFO):
        results = evaluate(cfg)
    assert calls == []
    assert "only the NLL was asked for" in caplog.text and "drawing no samples" in caplog.text
    assert set(results["metrics"]) == {"nll_bpd", "nll_bpd_stderr"}
    assert results["num_samples"] is None and results["nfe"] is None
    assert not (tmp_path / "run" / "samples.npz").exists()
    assert json.loads((tmp_path / "run" / "results.json").read_text())["num_samples"] is None


def test_sample_metrics_draw_num_samples(trained_run, tmp_path, monkeypatch, caplog):
    calls = count_sampler_calls(monkeypatch)
    cfg = compose_config(
        "evaluate",
        tmp_path,
        f"ckpt={trained_run}",
        "metrics=[is]",
        "features=digits",
        "num_samples=6",
        "batch_size=4",
        "sampler.steps=2",
    )
    with caplog.at_level(logging.INFO):
        results = evaluate(cfg)
    assert calls == [4, 2] and results["num_samples"] == 6
    assert "drawing no samples" not in caplog.text
