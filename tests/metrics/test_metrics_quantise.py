"""Quantising [-1, 1] images to the 256 levels that PNGs and ADM's .npz files hold."""

import torch

from diffusion_lab.metrics import to_uint8


def test_levels_round_to_nearest_and_clip():
    images = torch.tensor([-1.5, -1.0, -1 + 0.49 / 127.5, -1 + 0.51 / 127.5, 0.0, 1.0, 2.0])
    assert to_uint8(images).tolist() == [0, 0, 0, 1, 128, 255, 255]


def test_uint8_passes_through():
    pixels = torch.arange(256, dtype=torch.uint8)
    assert torch.equal(to_uint8(pixels), pixels)


def test_bf16_images_quantise_as_their_float32_values():
    # bf16 arithmetic has an 8-bit mantissa: (x + 1) * 127.5 computed in it lands on wrong levels
    images = (torch.rand(10_000, generator=torch.Generator().manual_seed(0)) * 2 - 1).bfloat16()
    assert torch.equal(to_uint8(images), to_uint8(images.float()))
