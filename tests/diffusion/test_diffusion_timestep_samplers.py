"""Timestep samplers: unbiased importance weights (Improved DDPM §3.3), DDP, checkpoints."""

import numpy as np
import pytest
import torch
import torch.distributed as dist

from diffusion_lab.diffusion import (
    LossAwareSampler,
    UniformSampler,
    create_diffusion,
    create_named_schedule_sampler,
)
from diffusion_lab.errors import ConfigError

NUM_TIMESTEPS = 50
LOSSES = 0.05 + np.linspace(3.0, 0.0, NUM_TIMESTEPS) ** 2  # a loss that falls with t, like L_t


@pytest.fixture
def diffusion():
    return create_diffusion("cosine", NUM_TIMESTEPS)


def warmed_up(diffusion, losses=LOSSES):
    sampler = create_named_schedule_sampler("loss_aware", diffusion)
    ts = list(range(NUM_TIMESTEPS)) * 10
    sampler.update_with_all_losses(ts, [losses[t] for t in ts])
    return sampler


def test_uniform_sampler(diffusion):
    sampler = create_named_schedule_sampler("uniform", diffusion)
    assert isinstance(sampler, UniformSampler)
    t, weights = sampler.sample(4000, "cpu")
    assert t.dtype == torch.long and weights.dtype == torch.float32
    assert torch.all(weights == 1) and 0 <= t.min() and t.max() < NUM_TIMESTEPS
    assert abs(t.float().mean().item() - (NUM_TIMESTEPS - 1) / 2) < 1.0
    assert sampler.state_dict() == {}


def test_loss_aware_is_uniform_until_every_t_has_ten_losses(diffusion):
    sampler = create_named_schedule_sampler("loss_aware", diffusion)
    ts = list(range(NUM_TIMESTEPS)) * 10
    sampler.update_with_all_losses(ts[:-1], [LOSSES[t] for t in ts[:-1]])
    assert np.all(sampler.weights() == 1)
    _, weights = sampler.sample(64, "cpu")
    assert torch.all(weights == 1)
    sampler.update_with_all_losses(ts[-1:], [LOSSES[ts[-1]]])
    assert not np.all(sampler.weights() == sampler.weights()[0])


def test_probabilities_follow_the_second_moment_with_a_uniform_mix(diffusion):
    sampler = warmed_up(diffusion)
    p = sampler.weights() / sampler.weights().sum()
    expected = 0.999 * LOSSES / LOSSES.sum() + 0.001 / NUM_TIMESTEPS  # √E[L²] = L for constant L
    np.testing.assert_allclose(p, expected, rtol=1e-12)
    # Σ_t p_t·w_t·L_t with w_t = 1/(T·p_t) is exactly the uniform mean
    t, weights = sampler.sample(20000, "cpu")
    np.testing.assert_allclose(weights.numpy(), 1 / (NUM_TIMESTEPS * p[t.numpy()]), rtol=1e-6)
    assert np.sum(p / (NUM_TIMESTEPS * p) * LOSSES) == pytest.approx(LOSSES.mean(), rel=1e-12)


def test_importance_estimate_is_unbiased_and_less_noisy(diffusion):
    torch.manual_seed(0)
    sampler = warmed_up(diffusion)
    t, weights = sampler.sample(20000, "cpu")
    estimates = weights.double().numpy() * LOSSES[t.numpy()]
    uniform = LOSSES[torch.randint(NUM_TIMESTEPS, (20000,)).numpy()]
    standard_error = estimates.std() / np.sqrt(len(estimates))
    assert abs(estimates.mean() - LOSSES.mean()) < 5 * standard_error + 1e-12
    assert estimates.std() < 0.01 * uniform.std()  # p ∝ L is the zero-variance proposal


def test_history_keeps_the_last_ten_losses(diffusion):
    sampler = LossAwareSampler(diffusion)
    sampler.update_with_all_losses([3] * 12, list(range(12)))
    assert sampler.loss_counts[3] == 10
    assert sampler.loss_history[3].tolist() == list(range(2, 12))


def test_state_dict_round_trips(diffusion):
    sampler = warmed_up(diffusion)
    sampler.update_with_all_losses([7], [123.0])
    state = sampler.state_dict()
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    restored = create_named_schedule_sampler("loss_aware", diffusion)
    restored.load_state_dict(state)
    np.testing.assert_array_equal(restored.weights(), sampler.weights())
    np.testing.assert_array_equal(restored.loss_counts, sampler.loss_counts)
    state["loss_history"][0, 0] = -1.0  # the copy is independent of the sampler
    assert sampler.loss_history[0, 0] != -1.0
    other = create_named_schedule_sampler("loss_aware", create_diffusion("cosine", 40))
    with pytest.raises(ConfigError, match="num_timesteps"):
        other.load_state_dict(state)


def test_local_losses_are_gathered_across_processes(diffusion, tmp_path):
    sampler = LossAwareSampler(diffusion)
    dist.init_process_group(
        "gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1
    )
    try:
        sampler.update_with_local_losses(torch.tensor([1, 1, 4]), torch.tensor([0.5, 0.25, 2.0]))
    finally:
        dist.destroy_process_group()
    assert sampler.loss_counts[[1, 4]].tolist() == [2, 1]
    assert sampler.loss_history[1, :2].tolist() == [0.5, 0.25] and sampler.loss_history[4, 0] == 2.0
    sampler.update_with_local_losses(torch.tensor([4]), torch.tensor([1.0], requires_grad=True))
    assert sampler.loss_counts[4] == 2


def test_unknown_sampler_names_the_choices(diffusion):
    with pytest.raises(ConfigError, match="timestep_sampler='importance'.*uniform, loss_aware"):
        create_named_schedule_sampler("importance", diffusion)
