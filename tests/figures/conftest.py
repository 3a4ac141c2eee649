"""results.json fixtures written by hand in evaluate's schema."""

import json

import pytest


def _result_json(
    sampler="ddim", steps=10, nfe=None, metrics=None, scale=None, features="digits", step=4000
):
    """A results.json body as `python -m diffusion_lab.evaluate` writes it."""
    return {
        "metrics": metrics if metrics is not None else {"fid_digits": 1.0},
        "num_samples": 64,
        "nfe": steps if nfe is None else nfe,
        "sampler": {"name": sampler, "steps": steps, "clip_denoised": True},
        "guidance": {"name": "none" if scale is None else "cfg", "scale": scale},
        "features": features,
        "reference": {"dataset": "digits", "split": "test", "num_images": 180},
        "prc": None,
        "seeds": None,
        "ckpt": "/runs/x/checkpoints/last.ckpt",
        "step": step,
        "version": "0.1.0",
        "seconds_per_image": 0.01,
    }


@pytest.fixture
def result_json():
    """result_json(sampler=, steps=, nfe=, metrics=, scale=, features=) -> a results.json body."""
    return _result_json


@pytest.fixture
def write_result(tmp_path):
    """write_result(job_dir_name, **result_json kwargs or body=dict) -> path of its results.json."""

    def write(job: str, body: dict | None = None, **kwargs):
        path = tmp_path / "multirun" / job / "results.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(body if body is not None else _result_json(**kwargs)))
        return path

    return write
