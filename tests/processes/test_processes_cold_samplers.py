"""Cold diffusion's Algorithms 1 and 2: the oracle restores exactly; Algorithm 2 walks a linear
degradation back exactly whatever the network does, Algorithm 1 does not."""

import pytest
import torch

from diffusion_lab.errors import ConfigError
from diffusion_lab.processes import create_process
from diffusion_lab.processes.cold import cold_sample, sample_cold, sample_cold_naive
from diffusion_lab.processes.cold.samplers import levels

SHAPE = (2, 1, 8, 8)
X0 = torch.rand(SHAPE, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 2 - 1
NOISE = torch.randn(SHAPE, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
T = 6


def cold(name: str, **options):
    return create_process(
        {"name": "cold", "num_timesteps": T, "degradation": {"name": name, **options}}, {}
    )


DEGRADATIONS = [
    {"name": "blur", "kernel_size": 3, "kernel_std": 1.0},
    {"name": "blur", "kernel_size": 3, "kernel_std": 1.0, "discrete": True},
    {"name": "inpaint", "kernel_std": 0.7, "centre": "random"},
    {"name": "decolorize"},
]


@pytest.mark.parametrize("sampler", ["cold", "cold_naive"])
@pytest.mark.parametrize("degradation", DEGRADATIONS, ids=lambda o: "-".join(map(str, o.values())))
@pytest.mark.parametrize("steps", [T, 2])
def test_the_oracle_restoration_returns_x0(sampler, degradation, steps):
    process = cold(**degradation)
    x_T = process.degrade(X0, torch.full((2,), T), NOISE)

    def oracle(x, t):
        return X0

    x, nfe = cold_sample(oracle, process, x_T, sampler, steps, noise=NOISE, clip_denoised=False)
    # Algorithm 2 adds and subtracts O(1) float64 images `steps` times: ~1e-15 rounding
    torch.testing.assert_close(x, X0, rtol=0, atol=1e-12)
    assert nfe == steps


def test_algorithm_2_inverts_a_linear_degradation_for_any_restoration():
    direction = torch.randn(SHAPE, generator=torch.Generator().manual_seed(2), dtype=torch.float64)

    def degrade(x, s):
        return x + s * direction

    def restore(x, s):
        return 0.5 * x  # far from x0

    x_T = degrade(X0, T)
    schedule = levels(T, T)
    improved = sample_cold(restore, degrade, x_T, schedule)
    naive = sample_cold_naive(restore, degrade, x_T, schedule)
    # each step removes exactly one `direction`; T float64 subtractions of O(1) values
    torch.testing.assert_close(improved, X0, rtol=0, atol=1e-12)
    assert (naive - X0).abs().max() > 0.1  # Algorithm 1 returns R(x_1) = 0.5·(x0 + e)


def test_levels_run_from_T_to_zero():
    assert levels(6, 6) == [6, 5, 4, 3, 2, 1, 0]
    assert levels(6, 2) == [6, 3, 0]
    assert levels(6, 1) == [6, 0]


def test_clipping_keeps_restorations_in_range():
    process = cold("decolorize")
    x, _ = cold_sample(lambda x, t: 3 * torch.ones_like(x), process, X0, "cold_naive")
    assert x.max() <= 1


@pytest.mark.parametrize(
    "sampler, steps, key",
    [("ddim", T, "sampler.name"), ("cold", 0, "sampler.steps"), ("cold", T + 1, "sampler.steps")],
)
def test_bad_sampler_settings_name_the_key(sampler, steps, key):
    with pytest.raises(ConfigError, match=key):
        cold_sample(lambda x, t: x, cold("decolorize"), X0, sampler, steps)


@pytest.mark.parametrize(
    "options, key",
    [({"num_timesteps": 0}, "process.num_timesteps"), ({"loss": "huber"}, "process.loss")],
)
def test_bad_process_options_name_the_key(options, key):
    config = {"name": "cold", "degradation": {"name": "decolorize"}, **options}
    with pytest.raises(ConfigError, match=key):
        create_process(config, {})
