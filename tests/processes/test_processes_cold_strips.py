"""Cold diffusion's strips: a degradation row per process, restoration rows per image."""

import pytest
import torch

from diffusion_lab.figures.strips import degradation_strip, restoration_strip
from diffusion_lab.processes import create_process


def cold(name: str, **options):
    return create_process(
        {"name": "cold", "num_timesteps": 3, "degradation": {"name": name, **options}}, {}
    )


def test_degradation_strip_shows_each_level_of_each_process():
    x0 = torch.linspace(-1, 1, 64).view(1, 8, 8)
    processes = {
        "blur": cold("blur", kernel_size=3, kernel_std=1.0, discrete=True),
        "pix": cold("pixelate"),
    }
    strip = degradation_strip(x0, processes, [0, 3], scale=1, pad=0)
    assert strip.pixels.shape == (16, 16, 3)
    assert strip.row_labels == ["blur", "pix"] and strip.column_labels == ["t=0", "t=3"]
    torch.testing.assert_close(torch.from_numpy(strip.pixels[:8, :8, 0]), (x0[0] + 1) / 2)
    # discrete blur at T: the mean, 0 in [−1, 1], mid-grey 0.5 in the strip (float32 sums)
    assert strip.pixels[:8, 8:, :] == pytest.approx(0.5, abs=1e-6)


def test_restoration_strip_rows_are_originals_degraded_restored():
    images = [torch.full((5, 1, 4, 4), value) for value in (-1.0, 0.0, 1.0)]
    strip = restoration_strip(*images, columns=3, scale=1, pad=0)
    assert strip.pixels.shape == (12, 12, 3)
    assert [strip.pixels[4 * row, 0, 0] for row in range(3)] == [0.0, 0.5, 1.0]
    assert strip.row_labels == ["x_0", "D(x_0, T)", "restored"]
