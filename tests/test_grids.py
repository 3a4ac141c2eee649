"""Sample grids: whole-pixel nearest-neighbour upscaling to a readable width."""

import numpy as np
import pytest
import torch
from PIL import Image

from diffusion_lab.grids import MIN_WIDTH, grid_scale, save_grid


def test_small_images_are_scaled_up_to_a_readable_grid(tmp_path):
    images = torch.rand(100, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    path = save_grid(images, tmp_path / "grid.png", nrow=10)
    width = Image.open(path).size[0]
    scale = grid_scale(10, 8)
    assert width >= MIN_WIDTH and width == scale * (10 * 9 + 1)  # 10 images + 11 paddings
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
