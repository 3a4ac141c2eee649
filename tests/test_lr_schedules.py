"""Learning-rate factors: linear warmup, then constant, linear or cosine decay, closed forms."""

import math

import pytest

from diffusion_lab.errors import ConfigError
from diffusion_lab.lightning.lr_schedules import check_schedule, lr_factor


@pytest.mark.parametrize("schedule", ["constant", "linear", "cosine"])
def test_warmup_rises_linearly_to_one(schedule):
    factors = [lr_factor(step, 10, 1000, schedule) for step in range(10)]
    assert factors == pytest.approx([(step + 1) / 10 for step in range(10)], abs=1e-2)
    assert factors[-1] == pytest.approx(1.0, abs=1e-3)


def test_after_warmup_each_schedule_decays_as_its_formula():
    warmup, total = 100, 1100  # 1000 steps of decay
    for step in (100, 350, 600, 1099, 1500):
        p = min(1.0, (step - warmup) / 1000)
        assert lr_factor(step, warmup, total, "constant") == 1.0
        assert lr_factor(step, warmup, total, "linear") == pytest.approx(1 - p)
        assert lr_factor(step, warmup, total, "cosine") == pytest.approx(
            (1 + math.cos(math.pi * p)) / 2
        )
    assert lr_factor(600, warmup, total, "cosine") == pytest.approx(0.5)  # halfway: half the lr


def test_no_warmup_is_full_rate_from_the_first_step():
    assert lr_factor(0, 0, 300, "constant") == 1.0
    assert lr_factor(0, 0, 300, "linear") == 1.0  # guided-diffusion's anneal: lr·(1 − 0/300)


def test_an_unknown_schedule_names_the_choices():
    with pytest.raises(ConfigError, match="constant, linear, cosine"):
        check_schedule("step")
