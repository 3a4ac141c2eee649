"""`sample`'s contract: seeds, NFE, options, hooks (model_kwargs, cond_fn, trajectory), configs."""

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from diffusion_lab import CONFIG_DIR
from diffusion_lab.diffusion import GaussianDiffusion, get_named_beta_schedule
from diffusion_lab.errors import ConfigError
from diffusion_lab.sampling import SAMPLER_OPTIONS, ddim_reverse, sample, validate_sampler
from diffusion_lab.sampling.timesteps import (
    ddim_timesteps,
    dpm_solver_timesteps,
    karras_timesteps,
    respace,
)

SAMPLERS = list(SAMPLER_OPTIONS)
SHAPE = (4, 1, 4, 4)
CONF = CONFIG_DIR / "sampler"


class ToyNet(torch.nn.Module):
    """A fixed ε-prediction that depends on x, t and (optionally) the label y; logs its calls."""

    def __init__(self, out_channels: int = 1):
        super().__init__()
        self.out_channels = out_channels
        self.timesteps: list[torch.Tensor] = []
        self.labels: list[torch.Tensor | None] = []

    def forward(self, x, t, y=None):
        self.timesteps.append(t.clone())
        self.labels.append(y)
        eps = 0.5 * torch.tanh(x) + t.view(-1, 1, 1, 1) / 2000
        if y is not None:
            eps = eps + 0.01 * y.view(-1, 1, 1, 1)
        return eps.repeat(1, self.out_channels, 1, 1)

    @property
    def calls(self) -> int:
        return len(self.timesteps)


def base(num_timesteps=100, var_type="fixed_large"):
    return GaussianDiffusion(
        betas=get_named_beta_schedule("linear", num_timesteps),
        model_mean_type="epsilon",
        model_var_type=var_type,
        loss_type="simple",
    )


def run(sampler, steps=10, seed=0, model=None, diffusion=None, **kwargs):
    model = ToyNet() if model is None else model
    generator = torch.Generator().manual_seed(seed)
    diffusion = base() if diffusion is None else diffusion
    return sample(model, diffusion, SHAPE, sampler, steps, generator=generator, **kwargs)


STOCHASTIC = {
    "ddpm": {},
    "ddim": {"eta": 0.5},
    "dpm_solver": {"sde": True},
    "heun": {"s_churn": 20.0},
    "unipc": {},
}


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_same_seed_same_samples_other_seed_other_samples(sampler):
    first = run(sampler, **STOCHASTIC[sampler]).images
    assert torch.equal(first, run(sampler, **STOCHASTIC[sampler]).images)
    assert not torch.allclose(first, run(sampler, seed=1, **STOCHASTIC[sampler]).images)


@pytest.mark.parametrize("sampler", ["ddim", "dpm_solver", "heun"])
def test_given_noise_fixes_the_deterministic_samplers(sampler):
    noise = torch.randn(SHAPE, generator=torch.Generator().manual_seed(5))
    first = run(sampler, seed=0, noise=noise).images
    assert torch.equal(first, run(sampler, seed=1, noise=noise).images)


@pytest.mark.parametrize(
    ("sampler", "options", "expected"),
    [
        ("ddpm", {}, lambda steps: steps),
        ("ddim", {}, lambda steps: steps),
        ("ddim", {"spacing": "quadratic"}, lambda steps: steps),
        ("dpm_solver", {}, lambda steps: steps),
        ("dpm_solver", {"skip": "time_uniform"}, lambda steps: steps),
        ("heun", {}, lambda steps: 2 * steps - 1),
        ("heun", {"s_churn": 40.0}, lambda steps: 2 * steps - 1),
    ],
)
@pytest.mark.parametrize("steps", [2, 7, 25, 100])
def test_nfe_is_counted_exactly(sampler, options, expected, steps):
    model = ToyNet()
    out = run(sampler, steps, model=model, **options)
    assert out.nfe == model.calls == expected(steps)
    seen = torch.cat(model.timesteps)
    # heun's exact EDM levels (and churned levels) lie between trained steps: real t there
    assert seen.dtype == (
        torch.float64 if sampler == "heun" and steps + len(options) > 2 else torch.long
    )
    assert 0 <= seen.min() and seen.max() <= 99


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_labels_reach_every_model_call(sampler):
    labels = torch.tensor([0, 3, 7, 9])
    model = ToyNet()
    conditional = run(sampler, model=model, model_kwargs={"y": labels}).images
    assert all(y is labels for y in model.labels)
    assert not torch.allclose(conditional, run(sampler).images)


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_classifier_guidance_pushes_samples_and_sees_original_timesteps(sampler):
    calls = []

    def cond_fn(x, t, y):
        calls.append(t.clone())
        return torch.full_like(x, 2.0) * (y.view(-1, 1, 1, 1) == 1)

    labels = torch.tensor([1, 1, 0, 0])
    model = ToyNet()
    guided = run(sampler, model=model, model_kwargs={"y": labels}, cond_fn=cond_fn).images
    plain = run(sampler, model_kwargs={"y": labels}).images
    shift = (guided - plain).flatten(1).mean(1)
    assert (shift[:2] > 0.05).all() and torch.allclose(shift[2:], torch.zeros(2), atol=1e-6)
    assert torch.equal(torch.cat(calls), torch.cat(model.timesteps))


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_learned_variance_networks_work_with_every_sampler(sampler):
    model = ToyNet(out_channels=2)  # ε and the variance interpolation v in [-1, 1]
    out = run(sampler, model=model, diffusion=base(var_type="learned_range"))
    assert out.images.shape == SHAPE and torch.isfinite(out.images).all()


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_clipping_keeps_images_in_range(sampler):
    model = lambda x, t, **_: torch.full_like(x, -5.0)  # noqa: E731  (x̂_0 far above 1)
    clipped = sample(model, base(), SHAPE, sampler, 5).images
    assert clipped.abs().max() <= 1
    assert sample(model, base(), SHAPE, sampler, 5, clip_denoised=False).images.max() > 1.5


@pytest.mark.parametrize("sampler", SAMPLERS)
def test_trajectory_keeps_every_kth_step(sampler):
    out = run(sampler, 10, return_trajectory=True, trajectory_every=3)
    trajectory = out.trajectory
    assert len(trajectory["t"]) == 4  # steps 0, 3, 6, 9
    assert trajectory["x_t"].shape == trajectory["pred_xstart"].shape == (4, *SHAPE)
    assert (trajectory["t"][1:] < trajectory["t"][:-1]).all()
    every = run(sampler, 10, return_trajectory=True).trajectory
    assert torch.equal(every["x_t"][::3], trajectory["x_t"])
    if sampler != "ddpm":  # the last step lands on the last x̂_0
        torch.testing.assert_close(every["pred_xstart"][-1].clamp(-1, 1), out.images)
    assert run(sampler).trajectory is None


def test_progress_bar_changes_nothing():
    assert torch.equal(run("ddim", progress=True).images, run("ddim").images)


def test_ddim_reverse_returns_latents_and_counts():
    model = ToyNet()
    x_start = torch.rand(SHAPE) * 2 - 1
    out = ddim_reverse(model, base(), x_start, 10, return_trajectory=True)
    assert out.nfe == model.calls == 10
    assert out.images.shape == SHAPE and len(out.trajectory["t"]) == 10


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"sampler": "euler"}, "sampler.name"),
        ({"steps": 0}, "sampler.steps"),
        ({"steps": -3}, "sampler.steps"),
        ({"steps": 101}, "sampler.steps"),
        ({"steps": 2.5}, "sampler.steps"),
        ({"sampler": "ddim", "spacing": "cosine"}, "sampler.spacing"),
        ({"sampler": "dpm_solver", "skip": "logsnr"}, "sampler.skip"),
        ({"sampler": "ddpm", "eta": 0.5}, "sampler.eta"),
        ({"sampler": "ddim", "eta": 1.5}, "sampler.eta"),
        ({"sampler": "ddim", "s_churn": 1.0}, "sampler.s_churn"),
        ({"sampler": "heun", "s_churn": -1.0}, "sampler.s_churn"),
        ({"sampler": "heun", "rho": 0}, "sampler.rho"),
        ({"trajectory_every": 0}, "sampler.trajectory_every"),
    ],
)
def test_bad_configuration_names_the_key(kwargs, key):
    model = ToyNet()
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")) as error:
        sample(model, base(), SHAPE, **{"sampler": "ddim", "steps": 10, **kwargs})
    assert model.calls == 0
    if key == "sampler.name":
        assert all(name in str(error.value) for name in SAMPLERS)
    if key == "sampler.steps":
        assert "100" in str(error.value)


def test_respaced_diffusion_is_refused():
    spaced = respace(base(), range(0, 100, 10))
    with pytest.raises(ValueError, match="base diffusion"):
        sample(ToyNet(), spaced, SHAPE, "ddim", 5)


def test_wrong_noise_shape_is_refused():
    with pytest.raises(ValueError, match="shape"):
        sample(ToyNet(), base(), SHAPE, "ddim", 5, noise=torch.zeros(2, 1, 4, 4))


@pytest.mark.parametrize("name", SAMPLERS)
def test_each_sampler_config_runs_as_the_lead_calls_it(name):
    cfg = OmegaConf.to_container(OmegaConf.load(CONF / f"{name}.yaml"))
    assert cfg["name"] == name and cfg["clip_denoised"] is True
    options = dict(cfg)
    validate_sampler(options.pop("name"), **options, num_timesteps=1000)
    options = dict(cfg, steps=min(cfg["steps"], 5))
    out = sample(ToyNet(), base(1000), SHAPE, sampler=options.pop("name"), **options)
    assert out.images.shape == SHAPE


def test_timestep_grids_are_pinned():
    alphas_cumprod = np.cumprod(1 - get_named_beta_schedule("linear", 1000))
    assert ddim_timesteps(1000, 10) == [900, 800, 700, 600, 500, 400, 300, 200, 100, 0]
    assert ddim_timesteps(1000, 10, "quadratic") == [800, 632, 483, 355, 246, 158, 88, 39, 9, 0]
    assert dpm_solver_timesteps(alphas_cumprod, 10) == [
        999, 898, 785, 653, 492, 302, 138, 52, 17, 4,
    ]  # fmt: skip
    assert dpm_solver_timesteps(alphas_cumprod, 10, "time_uniform") == [
        999, 899, 799, 699, 599, 500, 400, 300, 200, 100,
    ]  # fmt: skip
    assert karras_timesteps(alphas_cumprod, 10) == [999, 937, 864, 775, 663, 511, 301, 102, 18, 0]


@pytest.mark.parametrize(
    "grid",
    [
        lambda ac, n: ddim_timesteps(len(ac), n),
        lambda ac, n: ddim_timesteps(len(ac), n, "quadratic"),
        lambda ac, n: dpm_solver_timesteps(ac, n),
        lambda ac, n: dpm_solver_timesteps(ac, n, "time_uniform"),
        lambda ac, n: karras_timesteps(ac, n),
    ],
)
@pytest.mark.parametrize("steps", [1, 2, 50, 333, 999, 1000])
def test_every_grid_has_the_requested_number_of_distinct_trained_timesteps(grid, steps):
    alphas_cumprod = np.cumprod(1 - get_named_beta_schedule("linear", 1000))
    timesteps = grid(alphas_cumprod, steps)
    assert len(timesteps) == steps
    assert all(a > b for a, b in zip(timesteps, timesteps[1:], strict=False))
    assert 0 <= timesteps[-1] and timesteps[0] <= 999
