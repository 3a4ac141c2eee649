"""Respacing (Improved DDPM §4): which steps are kept, and that ᾱ and the network's t survive."""

import pytest
import torch

from diffusion_lab.diffusion import (
    GaussianDiffusion,
    SpacedDiffusion,
    create_diffusion,
    get_named_beta_schedule,
    space_timesteps,
)
from diffusion_lab.errors import ConfigError
from diffusion_lab.sampling.timesteps import respace


def test_space_timesteps_forms():
    assert space_timesteps(1000, "ddim50") == set(range(0, 1000, 20))
    assert space_timesteps(1000, "1000") == set(range(1000))
    assert space_timesteps(100, "10") == {0, 11, 22, 33, 44, 55, 66, 77, 88, 99}
    assert space_timesteps(100, [10]) == space_timesteps(100, (10,)) == space_timesteps(100, "10")
    # 300 steps in three sections of 100: 10, 15 and 20 steps, each from its first to its last
    kept = space_timesteps(300, "10,15,20")
    assert len(kept) == 45 and min(kept) == 0 and max(kept) == 299
    assert {0, 99, 100, 199, 200, 299} <= kept
    assert len({t for t in kept if 100 <= t < 200}) == 15
    assert space_timesteps(10, "ddim1") == {0}


@pytest.mark.parametrize("counts", ["11", "4,7", "0", "ddim7", "ten", "", "5,,5", [3, -1]])
def test_bad_section_counts_raise_config_error(counts):
    with pytest.raises(ConfigError, match="timestep_respacing"):
        space_timesteps(10, counts)


def kwargs(var_type="fixed_small", mean_type="epsilon", loss_type="vlb"):
    return {
        "betas": get_named_beta_schedule("cosine", 100),
        "model_mean_type": mean_type,
        "model_var_type": var_type,
        "loss_type": loss_type,
    }


def test_respacing_keeps_alphas_cumprod_at_kept_steps():
    base = GaussianDiffusion(**kwargs())
    kept = sorted(space_timesteps(100, "7,3"))
    spaced = SpacedDiffusion(kept, **kwargs())
    assert spaced.num_timesteps == 10 and spaced.original_num_steps == 100
    assert spaced.timestep_map.tolist() == kept and spaced.timestep_map.dtype == torch.long
    torch.testing.assert_close(spaced.alphas_cumprod, base.alphas_cumprod[kept], rtol=1e-10, atol=0)
    assert spaced.betas.dtype == torch.float64


@pytest.mark.parametrize("var_type", ["fixed_small", "fixed_large", "learned_range"])
def test_keeping_every_step_changes_nothing(var_type):
    base = GaussianDiffusion(**kwargs(var_type))
    spaced = SpacedDiffusion(range(100), **kwargs(var_type))
    for name in GaussianDiffusion._TABLES:
        torch.testing.assert_close(
            getattr(spaced, name), getattr(base, name), rtol=1e-11, atol=1e-15
        )
    generator = torch.Generator().manual_seed(0)
    x = torch.randn((5, 2, 3, 3), generator=generator, dtype=torch.float64)
    output = torch.randn(
        (5, 4 if base.learns_sigma else 2, 3, 3), generator=generator, dtype=torch.float64
    )
    t = torch.tensor([0, 1, 50, 98, 99])
    expected = base.p_mean_variance(lambda x, t: output, x, t)
    actual = spaced.p_mean_variance(lambda x, t: output, x, t)
    for key in expected:
        torch.testing.assert_close(actual[key], expected[key], rtol=1e-10, atol=1e-12)


def test_model_and_cond_fn_receive_original_timesteps():
    spaced = create_diffusion(
        "linear", 1000, "epsilon", "learned_range", "hybrid", timestep_respacing="ddim10"
    )
    assert isinstance(spaced, SpacedDiffusion) and spaced.num_timesteps == 10
    seen = []

    def model(x, t, y=None):
        seen.append(t.clone())
        return torch.zeros(x.shape[0], 2 * x.shape[1], *x.shape[2:])

    x = torch.zeros(3, 1, 2, 2)
    t = torch.tensor([0, 4, 9])
    out = spaced.p_mean_variance(model, x, t, model_kwargs={"y": None})
    spaced.training_losses(model, x, t)
    spaced.condition_mean(lambda x, t: seen.append(t) or torch.zeros_like(x), out, x, t)
    spaced.condition_score(lambda x, t: seen.append(t) or torch.zeros_like(x), out, x, t)
    spaced.calc_bpd_loop(model, x)
    assert [s.tolist() for s in seen[:4]] == [[0, 400, 900]] * 4
    assert sorted({int(s[0]) for s in seen[4:]}) == list(range(0, 1000, 100))
    assert t.tolist() == [0, 4, 9]  # the caller's tensor is untouched


def test_plain_factory_call_is_not_respaced():
    diffusion = create_diffusion("cosine", 50)
    assert type(diffusion) is GaussianDiffusion and diffusion.num_timesteps == 50
    with pytest.raises(ConfigError, match="timestep_respacing='60'"):
        create_diffusion("cosine", 50, timestep_respacing="60")
    with pytest.raises(ConfigError, match="use_timesteps"):
        SpacedDiffusion([0, 100], **kwargs())


def test_rescaled_timesteps_reach_the_network_as_t_times_1000_over_t():
    """improved-diffusion's rescale_timesteps: the network sees t·1000/T for the base process
    and, respaced, for the base timestep each kept index stands for."""
    seen = []

    def network(x, t, **kwargs):
        seen.append(t)
        return torch.zeros_like(x)

    x, t = torch.zeros(3, 1, 2, 2), torch.tensor([0, 1, 3999])
    base = create_diffusion(num_timesteps=4000, rescale_timesteps=True)
    base.p_mean_variance(network, x, t)
    assert torch.equal(seen[-1], torch.tensor([0.0, 0.25, 999.75]))
    spaced = respace(base, [0, 2000, 3999])  # indices 0, 1, 2 stand for 0, 2000, 3999
    spaced.p_mean_variance(network, x, torch.tensor([0, 1, 2]))
    assert torch.equal(seen[-1], torch.tensor([0.0, 500.0, 999.75]))
    create_diffusion(num_timesteps=4000).p_mean_variance(network, x, t)
    assert torch.equal(seen[-1], t)  # off: the integer timesteps themselves
