"""Denoising and forward-process strips: pixel layout, which steps they show, and their content."""

import pytest
import torch
from matplotlib import image

from diffusion_lab.diffusion import create_diffusion
from diffusion_lab.figures import denoising_strip, forward_strip


def fake_trajectory(num_steps=10, n=2, c=1, h=8, w=6):
    """t = 900, 800, ..., 0 with x_t and pred_xstart of constant value per step (distinct)."""
    levels = torch.linspace(-1, 1, num_steps)
    shape = (num_steps, n, c, h, w)
    return {
        "t": torch.arange(num_steps - 1, -1, -1) * 100,
        "x_t": levels.view(-1, 1, 1, 1, 1).expand(shape).clone(),
        "pred_xstart": -levels.view(-1, 1, 1, 1, 1).expand(shape).clone(),
    }


@pytest.mark.parametrize(("scale", "pad"), [(1, 0), (4, 0), (3, 2)])
def test_denoising_strip_pixels_are_rows_by_columns_tiles(tmp_path, scale, pad):
    strip = denoising_strip(fake_trajectory(h=8, w=6), columns=5, scale=scale, pad=pad)
    tile_h, tile_w = 8 * scale + pad, 6 * scale + pad
    assert strip.pixels.shape == (2 * tile_h + pad, 5 * tile_w + pad, 3)
    saved = image.imread(strip.save(tmp_path / "strip.png"))
    assert saved.shape[:2] == strip.pixels.shape[:2]


def test_denoising_strip_goes_from_first_to_last_step():
    trajectory = fake_trajectory(num_steps=10)
    strip = denoising_strip(trajectory, columns=4, scale=1, pad=0)
    assert strip.column_labels == ["t=900", "t=600", "t=300", "t=0"]
    assert strip.row_labels == ["x_t", "pred x_0"]
    for column, step in enumerate([0, 3, 6, 9]):  # tile value = the step's level, mapped to [0, 1]
        x_t = (trajectory["x_t"][step, 0, 0, 0, 0] + 1) / 2
        pred = (trajectory["pred_xstart"][step, 0, 0, 0, 0] + 1) / 2
        assert strip.pixels[0, column * 6] == pytest.approx([float(x_t)] * 3, abs=1e-6)
        assert strip.pixels[8, column * 6] == pytest.approx([float(pred)] * 3, abs=1e-6)


def test_denoising_strip_short_trajectory_shows_every_step():
    strip = denoising_strip(fake_trajectory(num_steps=3), columns=6, scale=1, pad=0)
    assert strip.column_labels == ["t=200", "t=100", "t=0"]
    assert strip.pixels.shape == (16, 18, 3)


def test_denoising_strip_picks_sample_and_clips_noise():
    trajectory = fake_trajectory(num_steps=2, n=2)
    trajectory["x_t"][:, 1] = 5.0  # sample 1 far outside [-1, 1]: shown white
    strip = denoising_strip(trajectory, columns=2, sample=1, scale=1, pad=0)
    assert (strip.pixels[:8] == 1.0).all()


def test_forward_strip_rows_are_schedules_and_cells_follow_q_sample(tmp_path):
    diffusions = {
        name: create_diffusion(schedule=name, num_timesteps=100) for name in ("linear", "cosine")
    }
    x_start = torch.rand(1, 4, 4) * 2 - 1
    noise = torch.randn(1, 4, 4, generator=torch.Generator().manual_seed(0))
    strip = forward_strip(x_start, diffusions, [0, 50, 99], noise=noise, scale=1, pad=0)
    assert strip.row_labels == ["linear", "cosine"]
    assert strip.column_labels == ["t=0", "t=50", "t=99"]
    assert strip.pixels.shape == (8, 12, 3)
    for row, diffusion in enumerate(diffusions.values()):
        abar = float(diffusion.alphas_cumprod[50])
        x_t = abar**0.5 * x_start + (1 - abar) ** 0.5 * noise  # Ho et al. 2020, eq. 4
        expected = ((x_t[0] + 1) / 2).clamp(0, 1)
        cell = strip.pixels[row * 4 : row * 4 + 4, 4:8, 0]
        assert torch.from_numpy(cell) == pytest.approx(expected.float(), abs=1e-6)
    fig_path = tmp_path / "labelled.png"
    strip.figure().savefig(fig_path)
    assert fig_path.stat().st_size > 1000


def test_forward_strip_single_rgb_tile_keeps_colours_and_frame():
    diffusion = create_diffusion(schedule="cosine", num_timesteps=100)
    x_start = torch.tensor([1.0, -1.0, 0.0]).view(3, 1, 1).expand(3, 2, 2)
    strip = forward_strip(x_start, {"cosine": diffusion}, [0], torch.zeros(3, 2, 2), 3, 2)
    assert strip.pixels.shape == (2 + 6 + 2, 2 + 6 + 2, 3)
    assert (strip.pixels[:2] == 1).all() and (strip.pixels[:, -2:] == 1).all()
    abar = float(diffusion.alphas_cumprod[0])
    expected = [(abar**0.5 + 1) / 2, (1 - abar**0.5) / 2, 0.5]
    assert strip.pixels[5, 5] == pytest.approx(expected, abs=1e-6)
