"""evaluate on an `.npz` of samples (ADM's format), the reference cache, and config errors."""

import json

import numpy as np
import pytest
from evaluation.evaltools import compose_config

import diffusion_lab.metrics.reference as reference_module
from diffusion_lab.data import DigitsDataModule
from diffusion_lab.errors import ConfigError, DataNotFoundError
from diffusion_lab.evaluate import evaluate, finite_json
from diffusion_lab.metrics import to_uint8

SCORE_NPZ = ["data=digits", "features=digits", "reference.split=test", "metrics=[fid,is,prc]"]


def write_digits_test_split(path) -> int:
    """The digits test split itself as uint8 [N, 8, 8, 1] `arr_0`; returns N."""
    images = DigitsDataModule().reference_dataset("test").tensors[0]
    np.savez(path, to_uint8(images).permute(0, 2, 3, 1).numpy())
    return len(images)


def test_npz_of_the_reference_set_scores_as_the_reference_set(tmp_path):
    count = write_digits_test_split(tmp_path / "real.npz")
    cfg = compose_config("evaluate", tmp_path, f"samples={tmp_path / 'real.npz'}", *SCORE_NPZ)
    results = evaluate(cfg)
    assert results == json.loads((tmp_path / "run" / "results.json").read_text())
    scores = results["metrics"]
    assert set(scores) == {"fid_digits", "is_digits", "precision_digits", "recall_digits"}
    assert abs(scores["fid_digits"]) < 1e-3  # the same images: the same statistics
    assert scores["precision_digits"] == scores["recall_digits"] == 1.0
    assert results["num_samples"] == count
    assert results["ckpt"] is None and results["nfe"] is None and results["sampler"] is None
    assert results["reference"] == {"dataset": "digits", "split": "test", "num_images": count}
    assert results["prc"] == {"num_reference": count, "num_generated": count, "k": 3, "seed": 0}
    assert results["seeds"] is None


def test_reference_statistics_are_computed_once_then_read_from_the_cache(tmp_path, monkeypatch):
    write_digits_test_split(tmp_path / "real.npz")
    extracted = []

    def counting(extractor, batches):
        extracted.append(extractor.name)
        return extract_features(extractor, batches)

    extract_features = reference_module.extract_features
    monkeypatch.setattr(reference_module, "extract_features", counting)
    overrides = [f"samples={tmp_path / 'real.npz'}", *SCORE_NPZ]
    first = evaluate(compose_config("evaluate", tmp_path / "a", *overrides))
    (cached,) = (tmp_path / "a" / "cache" / "metrics").glob("digits-test-8-digits-*.npz")
    assert extracted == ["digits"]
    modified = cached.stat().st_mtime_ns

    cache_dir = f"cache_dir={cached.parent}"
    second = evaluate(compose_config("evaluate", tmp_path / "b", *overrides, cache_dir))
    assert extracted == ["digits"]  # not computed again ...
    assert cached.stat().st_mtime_ns == modified  # ... nor rewritten
    assert second["metrics"] == first["metrics"]

    evaluate(
        compose_config("evaluate", tmp_path / "c", *overrides, cache_dir, "reference.split=train")
    )
    assert extracted == ["digits", "digits"]  # another split is another entry


def test_inception_score_alone_needs_no_dataset(tmp_path):
    write_digits_test_split(tmp_path / "real.npz")
    cfg = compose_config(
        "evaluate", tmp_path, f"samples={tmp_path / 'real.npz'}", "features=digits", "metrics=[is]"
    )
    results = evaluate(cfg)
    assert set(results["metrics"]) == {"is_digits"} and results["reference"] is None


@pytest.mark.parametrize(
    ("overrides", "error", "message"),
    [
        ([], ConfigError, "ckpt=<checkpoint or run dir>"),
        (["samples=x.npz", "metrics=[nll]"], ConfigError, "NLL needs the model"),
        (["samples=x.npz", "features=digits"], ConfigError, "pass data=<name>"),
        (["samples=missing.npz", "features=digits", "metrics=[is]"], DataNotFoundError, "missing"),
        (["samples=x.npz", "reference.split=val"], ConfigError, "allowed: train, test"),
    ],
)
def test_unusable_settings_name_the_key(tmp_path, monkeypatch, overrides, error, message):
    monkeypatch.chdir(tmp_path)
    np.savez(tmp_path / "x.npz", np.zeros((4, 8, 8, 1), np.uint8))
    with pytest.raises(error, match=message):
        evaluate(compose_config("evaluate", tmp_path, *overrides))


def test_results_json_is_strict_json_even_with_infinite_settings():
    settings = {"sampler": {"name": "heun", "s_tmax": float("inf")}, "scores": [float("nan"), 1.5]}
    text = json.dumps(finite_json(settings), allow_nan=False)  # raises on a bare inf or nan
    expected = {"sampler": {"name": "heun", "s_tmax": "inf"}, "scores": ["nan", 1.5]}
    assert json.loads(text) == expected
