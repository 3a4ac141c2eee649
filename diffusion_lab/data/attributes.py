"""Attributes that a transform really applies to a grey object image, so that a caption can name
them and a measure can read them back from the pixels: colour tint, position, size.

The object (grey, [0, 1], background 0) is resized to the side its size names, placed at the
centre of the canvas half its position names (the centre of the canvas without a position), and
tinted: RGB = intensity × colour. Every colour has a largest component of 1, so the largest
channel of a tinted pixel is its grey intensity.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from diffusion_lab.errors import ConfigError

COLOURS = {
    "red": (1.0, 0.0, 0.0),
    "green": (0.0, 1.0, 0.0),
    "blue": (0.0, 0.0, 1.0),
    "yellow": (1.0, 1.0, 0.0),
    "purple": (1.0, 0.0, 1.0),
    "cyan": (0.0, 1.0, 1.0),
}
POSITIONS = ("left", "right", "top", "bottom")
SIZES = ("small", "large")
VALUES = {"colour": tuple(COLOURS), "position": POSITIONS, "size": SIZES}
ATTRIBUTES = tuple(VALUES)


@dataclass(frozen=True)
class Attributes:
    """One image's attribute values; None where the dataset does not vary that attribute."""

    colour: str | None = None
    position: str | None = None
    size: str | None = None


def check_attributes(attributes: Sequence[str]) -> tuple[str, ...]:
    unknown = [a for a in attributes if a not in ATTRIBUTES]
    if unknown or len(set(attributes)) != len(attributes):
        raise ConfigError(
            f"data.attributes={list(attributes)} must be distinct names among {list(ATTRIBUTES)}"
        )
    return tuple(a for a in ATTRIBUTES if a in attributes)


def draw_attributes(rng: np.random.Generator, attributes: Sequence[str]) -> Attributes:
    """Uniform values of the named attributes (the others None), from `rng`."""
    return Attributes(**{a: VALUES[a][rng.integers(len(VALUES[a]))] for a in attributes})


@dataclass(frozen=True)
class Layout:
    """The canvas (`canvas`² pixels) and the object's side for each size (large without one)."""

    canvas: int
    small: int
    large: int

    def __post_init__(self):
        if not 0 < self.small < self.large <= self.canvas // 2:
            raise ConfigError(
                f"data.small_size={self.small}, data.large_size={self.large}: need 0 < small_size "
                f"< large_size <= data.image_size / 2 = {self.canvas // 2} (an object fits its "
                "half of the canvas)"
            )

    def side(self, size: str | None) -> int:
        return self.small if size == "small" else self.large

    def box(self, attributes: Attributes) -> tuple[int, int, int]:
        """(top, left, side) of the object's square on the canvas."""
        side, half = self.side(attributes.size), self.canvas // 2
        middle = (self.canvas - side) // 2
        near, far = (half - side) // 2, half + (half - side) // 2
        top, left = {
            "left": (middle, near),
            "right": (middle, far),
            "top": (near, middle),
            "bottom": (far, middle),
            None: (middle, middle),
        }[attributes.position]
        return top, left, side


def render(grey: torch.Tensor, attributes: Attributes, layout: Layout) -> torch.Tensor:
    """A grey object [1, h, w] in [0, 1] (background 0) -> the canvas [C, S, S] in [-1, 1]:
    C = 3 when tinted, else 1. Resizing is bilinear with antialiasing, clamped to [0, 1]."""
    top, left, side = layout.box(attributes)
    if grey.shape[-1] != side or grey.shape[-2] != side:
        grey = F.interpolate(
            grey[None], size=(side, side), mode="bilinear", antialias=True, align_corners=False
        )[0].clamp(0, 1)
    canvas = grey.new_zeros(1, layout.canvas, layout.canvas)
    canvas[:, top : top + side, left : left + side] = grey
    if attributes.colour is not None:
        colour = torch.tensor(COLOURS[attributes.colour], dtype=grey.dtype)
        canvas = canvas * colour[:, None, None]
    return canvas * 2 - 1
