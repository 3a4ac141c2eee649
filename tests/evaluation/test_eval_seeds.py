"""seeds=[...]: one sample set per seed, each scored, with the min, mean and std across seeds."""

import math

import numpy as np
import pytest
from evaluation.evaltools import compose_config

from diffusion_lab.errors import ConfigError
from diffusion_lab.evaluate import evaluate, report
from diffusion_lab.evaluation import across_seeds

TINY = [
    "features=digits",
    "metrics=[fid,prc]",
    "num_samples=12",
    "batch_size=12",
    "sampler.steps=2",
    "grid_size=0",
    "reference.split=test",
    "metrics.prc.num_reference=12",
]
SCORES = ("fid_digits", "precision_digits", "recall_digits")


def test_two_seeds_give_two_scored_sets_and_their_spread(trained_run, tmp_path):
    cfg = compose_config("evaluate", tmp_path / "both", f"ckpt={trained_run}", "seeds=[0,1]", *TINY)
    results = evaluate(cfg)
    seeds = results["seeds"]
    assert seeds["seeds"] == [0, 1] and [run["seed"] for run in seeds["per_seed"]] == [0, 1]
    for name in SCORES:
        first, second = (run["metrics"][name] for run in seeds["per_seed"])
        assert seeds["min"][name] == min(first, second)
        # float64 rounding of a few operations: ~1e-16 relative (an n, not n - 1, std is 29 % off)
        assert seeds["mean"][name] == pytest.approx((first + second) / 2, rel=1e-12)
        # two values: the n - 1 standard deviation is |a - b| / sqrt(2)
        assert seeds["std"][name] == pytest.approx(abs(first - second) / math.sqrt(2), rel=1e-12)
        assert results["metrics"][name] == seeds["mean"][name]

    run_dir = tmp_path / "both" / "run"
    zero, one = (np.load(run_dir / f"seed_{s}" / "samples.npz")["arr_0"] for s in (0, 1))
    assert zero.shape == one.shape == (12, 8, 8, 1) and (zero != one).any()
    fids = [run["metrics"]["fid_digits"] for run in seeds["per_seed"]]
    assert fids[0] != fids[1]

    alone = evaluate(
        compose_config("evaluate", tmp_path / "one", f"ckpt={trained_run}", "seed=1", *TINY)
    )
    assert alone["seeds"] is None and alone["metrics"] == seeds["per_seed"][1]["metrics"]
    np.testing.assert_array_equal(np.load(tmp_path / "one" / "run" / "samples.npz")["arr_0"], one)

    lines = report(results)
    assert lines[2].startswith("seed 0: {") and lines[3].startswith("seed 1: {")
    assert [line.split(" over seeds")[0] for line in lines[4:]] == ["min", "mean", "std"]


def test_spread_across_seeds_is_min_mean_and_sample_std():
    spread = across_seeds([{"fid": 1.0}, {"fid": 2.0}, {"fid": 4.0}])
    # mean 7/3; squared deviations 16/9 + 1/9 + 25/9 = 42/9, over n - 1 = 2: 7/3. A few float64
    # operations round at ~1e-16 relative; dividing by n instead gives sqrt(14/9), 18 % off.
    assert spread["min"] == {"fid": 1.0}
    assert spread["mean"]["fid"] == pytest.approx(7 / 3, rel=1e-12)
    assert spread["std"]["fid"] == pytest.approx(math.sqrt(7 / 3), rel=1e-12)
    with pytest.raises(ValueError, match="at least 2"):
        across_seeds([{"fid": 1.0}])


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["seeds=[0]"], "at least two distinct integers"),
        (["seeds=[3,3]"], "at least two distinct integers"),
        (["seeds=[0,-1]"], "at least two distinct integers"),
        (["seeds=[0,1]", "samples=x.npz"], "samples= gives one set"),
    ],
)
def test_unusable_seeds_name_the_key(tmp_path, overrides, message):
    cfg = compose_config("evaluate", tmp_path, "ckpt=unused", *overrides)
    with pytest.raises(ConfigError, match=message):
        evaluate(cfg)
