"""PNG grids of samples, scaled up by whole pixels so that small images stay readable."""

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torchvision.utils import save_image

MIN_WIDTH = 512  # pixels: a grid of 8x8 digits is scaled to at least this wide
PADDING = 1  # pixels between images, before scaling


def grid_scale(nrow: int, image_width: int, scale: int | None = None) -> int:
    """`scale`, or the smallest whole factor that makes a grid of `nrow` images at least
    `MIN_WIDTH` pixels wide (1 when it already is)."""
    if scale is not None:
        if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
            raise ValueError(f"grid scale must be an integer >= 1 or null, got {scale!r}")
        return scale
    return max(1, math.ceil(MIN_WIDTH / (nrow * (image_width + PADDING) + PADDING)))


def save_grid(images: torch.Tensor, path: str | Path, nrow: int, scale: int | None = None) -> Path:
    """Writes images [N, C, H, W] in [0, 1] as a grid of `nrow` per row, each image scaled by
    nearest neighbour (`grid_scale`), so every sample pixel is a sharp block."""
    factor = grid_scale(nrow, images.shape[-1], scale)
    if factor > 1:
        images = F.interpolate(images.float(), scale_factor=factor, mode="nearest")
    save_image(images, path, nrow=nrow, padding=PADDING * factor, pad_value=1.0)
    return Path(path)


def class_rows(images: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Images [N, C, H, W] in [0, 1] laid out one row per class 0..K-1 with K columns (fewer
    when no class has K samples), white where a class has fewer; and the row length."""
    num_classes = int(labels.max()) + 1
    per_row = min(num_classes, int(torch.bincount(labels).max()))
    rows = []
    for label in range(num_classes):
        row = images[labels == label][:per_row]
        blank = torch.ones((per_row - len(row), *images.shape[1:]), dtype=images.dtype)
        rows.append(torch.cat([row, blank]))
    return torch.cat(rows), per_row
