"""The prior of unconditional cold sampling: a Gaussian mixture over channel means."""

import torch

from diffusion_lab.processes.cold.prior import BROKEN_SYMMETRY_STD, ChannelMeanPrior


def two_cluster_images(n: int = 400) -> torch.Tensor:
    """Images [n, 2, 4, 4] whose channel means are (−0.5, 0.2) for 3/4 of them, (0.5, −0.2)
    for the rest, each with spread 0.01, around which pixels vary by ±0.3."""
    generator = torch.Generator().manual_seed(0)
    first = torch.rand(n, generator=generator) < 0.75
    centre = torch.where(first[:, None], torch.tensor([-0.5, 0.2]), torch.tensor([0.5, -0.2]))
    means = centre + 0.01 * torch.randn(n, 2, generator=generator)
    pattern = 0.3 * torch.tensor([1.0, -1.0]).repeat(8).view(1, 1, 4, 4)
    return means[:, :, None, None] + pattern


def test_draws_are_constant_images_at_the_clusters_plus_small_noise():
    prior = ChannelMeanPrior.fit(two_cluster_images(), n_components=2)
    noise = torch.randn(2000, 2, 4, 4, generator=torch.Generator().manual_seed(1))
    x_T = prior.x_T(noise)
    constant = x_T - BROKEN_SYMMETRY_STD * noise
    assert (constant.amax(dim=(2, 3)) - constant.amin(dim=(2, 3))).max() < 1e-6  # float32
    means = constant[:, :, 0, 0]
    near_first = (means - torch.tensor([-0.5, 0.2])).norm(dim=1) < 0.05
    near_second = (means - torch.tensor([0.5, -0.2])).norm(dim=1) < 0.05
    assert (near_first | near_second).float().mean() > 0.99
    # 2000 draws of a 3/4 share: standard error 0.01
    assert abs(near_first.float().mean() - 0.75) < 0.04


def test_draws_are_a_function_of_the_noise_and_survive_the_state_dict():
    prior = ChannelMeanPrior.fit(two_cluster_images(), n_components=2)
    noise = torch.randn(8, 2, 4, 4, generator=torch.Generator().manual_seed(2))
    again = ChannelMeanPrior(**prior.state_dict())
    assert torch.equal(prior.x_T(noise), again.x_T(noise))
