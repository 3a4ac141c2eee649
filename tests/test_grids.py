"""Sample grids: whole-pixel nearest-neighbour upscaling to a readable width."""

import numpy as np
import pytest
import torch
from PIL import Image

from diffusion_lab.grids import MIN_SIDE, grid_scale, save_grid
from diffusion_lab.sample import write_grid


def test_small_images_are_scaled_up_to_a_readable_grid(tmp_path):
    images = torch.rand(100, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    path = save_grid(images, tmp_path / "grid.png", nrow=10)
    width = Image.open(path).size[0]
    scale = grid_scale(10, 8)
    assert width >= MIN_SIDE and width == scale * (10 * 9 + 1)  # 10 images + 11 paddings
    pixels = np.asarray(Image.open(path).convert("L"), dtype=np.int64)
    first = pixels[scale : scale + 8 * scale, scale : scale + 8 * scale]  # inside the padding
    block = first[:scale, :scale]
    assert (block == block[0, 0]).all()  # one sample pixel: a uniform scale x scale block
    expected = round(float(images[0, 0, 0, 0]) * 255)
    assert abs(int(block[0, 0]) - expected) <= 1  # the sample's value, up to 8-bit rounding


def test_large_grids_keep_their_size_and_a_given_scale_wins():
    assert grid_scale(8, 64) == 1  # 8 images of 64 px are 521 px already
    assert grid_scale(8, 64, scale=3) == 3
    with pytest.raises(ValueError, match="scale"):
        grid_scale(8, 8, scale=0)


def test_a_tall_grid_is_scaled_by_its_longer_side():
    # 1 column of 64 rows of 16 px: 64 * 17 + 1 = 1089 px tall already, so no upscaling
    assert grid_scale(1, 16, rows=64) == 1
    assert grid_scale(1, 16) == 29  # one image alone: 18 px, 29 * 18 >= 512 > 28 * 18


def test_more_prompts_than_the_grid_shows_one_sample_each_of_the_first(tmp_path):
    # 500 samples of 500 prompts in a grid of 64: 64 titled rows of one 16 px image, unscaled
    np.savez(
        tmp_path / "samples.npz",
        np.zeros((500, 16, 16, 3), np.uint8),
        prompts=np.array([f"prompt {i}" for i in range(500)]),
        prompt_index=np.arange(500),
    )
    write_grid(tmp_path / "samples.npz", tmp_path / "grid.png", 64)
    width, height = Image.open(tmp_path / "grid.png").size
    assert height == 64 * 17 + 1 and width < 200
