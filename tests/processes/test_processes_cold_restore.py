"""Restoration metrics in closed form, and an exact restoration scores perfectly."""

from types import SimpleNamespace

import torch

from diffusion_lab.processes import create_process
from diffusion_lab.processes.cold import Restoration, restore
from diffusion_lab.processes.cold.restore import rmse, ssim

X0 = torch.rand(4, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1


def test_rmse_is_on_the_unit_scale():
    # an offset of 0.2 in [−1, 1] is 0.1 in [0, 1]; float64 arithmetic
    torch.testing.assert_close(rmse(X0 + 0.2, X0), torch.full((4,), 0.1, dtype=torch.float64))


def test_ssim_is_one_for_equal_images_and_less_otherwise():
    torch.testing.assert_close(ssim(X0, X0), torch.ones(4, dtype=torch.float64))
    assert (ssim(0.5 * X0, X0) < 0.99).all()


def test_the_oracle_restores_perfectly_and_the_degraded_inputs_do_not():
    process = create_process(
        {"name": "cold", "num_timesteps": 4, "degradation": {"name": "inpaint", "kernel_std": 1.0}},
        {},
    )
    restoration = restore(lambda x, t: X0, process, X0, "cold_naive")
    metrics = restoration.metrics()
    assert restoration.nfe == 4
    assert metrics["rmse"] == 0 and abs(metrics["ssim"] - 1) < 1e-12
    assert metrics["rmse_degraded"] > 0.05 and metrics["ssim_degraded"] < 0.99


class MeanStd(torch.nn.Module):
    """Features (mean, std) of each image: a shift by c moves the mean by c and leaves the std."""

    name, num_features = "meanstd", 2

    @property
    def device(self):
        return torch.device("cpu")

    def forward(self, images):
        flat = images.double().flatten(1)
        return SimpleNamespace(features=torch.stack([flat.mean(1), flat.std(1)], dim=1))


def test_fids_are_against_the_originals_in_closed_form():
    # equal covariances: FID = |mu1 - mu2|^2 = 0.2^2 for a shift of 0.2 (float64 statistics;
    # the matrix square root of a 2x2 covariance agrees to ~1e-10)
    x0 = torch.rand(200, 1, 8, 8, generator=torch.Generator().manual_seed(1)) * 2 - 1
    fids = Restoration(x0, x0 + 0.2, x0.clone(), nfe=1).fids(MeanStd(), batch_size=64)
    assert fids.keys() == {"fid_meanstd", "fid_meanstd_degraded"}
    assert abs(fids["fid_meanstd"]) < 1e-8
    assert abs(fids["fid_meanstd_degraded"] - 0.04) < 1e-8
