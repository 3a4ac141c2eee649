"""The sampler table: what `sample` and the config validation read from it."""

import pytest
import torch

from diffusion_lab.diffusion import GaussianDiffusion, get_named_beta_schedule
from diffusion_lab.errors import ConfigError
from diffusion_lab.sampling import sample, validate_sampler, validate_sampler_config
from diffusion_lab.sampling.registry import SAMPLERS, Sampler, process_kind


def base():
    return GaussianDiffusion(betas=get_named_beta_schedule("linear", 100))


class ColdProcess:
    """A process of another kind with no continuous view."""

    kind = "cold"
    num_timesteps = 100


def test_a_plain_gaussian_diffusion_is_of_kind_gaussian():
    assert process_kind(base()) == "gaussian" and process_kind(ColdProcess()) == "cold"


def test_an_unsupported_process_names_the_samplers_that_fit(monkeypatch):
    monkeypatch.setitem(
        SAMPLERS, "restore", Sampler(lambda call, steps: call.noise, {}, ("cold",), lambda s, _: s)
    )
    with pytest.raises(ConfigError, match=r"sampler\.name='heun'.*'cold'.*: restore$"):
        validate_sampler("heun", 10, 100, kind="cold")
    with pytest.raises(ConfigError, match=r"'gaussian'.*ddpm, ddim, dpm_solver, heun, unipc$"):
        validate_sampler("restore", 10, 100)
    x = sample(lambda x, t: x, ColdProcess(), (2, 1, 2, 2), "restore", 3)
    assert x.images.shape == (2, 1, 2, 2)


def test_a_continuous_process_has_no_step_bound():
    assert validate_sampler("heun", 5000, None)["skip"] == "karras"
    with pytest.raises(ConfigError, match=r"sampler\.steps=0 must be an integer from 1$"):
        validate_sampler("heun", 0, None)


@pytest.mark.parametrize(
    ("options", "key"),
    [
        ({"name": "dpm_solver", "order": 4}, "sampler.order=4 must be 2 or 3"),
        ({"name": "dpm_solver", "order": 3, "sde": True}, "sampler.sde=true"),
        ({"name": "dpm_solver", "sde": "yes"}, "sampler.sde='yes' must be true or false"),
        ({"name": "unipc", "skip": "quadratic"}, "logSNR, time_uniform, karras"),
        ({"name": "heun", "skip": "linear"}, "sampler.skip='linear'"),
        ({"name": "unipc", "eta": 0.5}, "0 <= eta <= 1 for ddim"),
    ],
)
def test_bad_options_name_the_key_and_the_choices(options, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        validate_sampler_config({"steps": 10, **options}, 100)


@pytest.mark.parametrize("name", list(SAMPLERS))
def test_each_row_counts_its_nfe(name):
    calls = []

    def model(x, t):
        calls.append(t)
        return torch.zeros_like(x)

    out = sample(model, base(), (2, 1, 2, 2), name, 6)
    assert out.nfe == len(calls) == SAMPLERS[name].nfe(6, SAMPLERS[name].options)
