"""PNG grids of samples, scaled up by whole pixels so that small images stay readable."""

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw, ImageFont
from torchvision.transforms.functional import to_pil_image
from torchvision.utils import make_grid, save_image

MIN_SIDE = 512  # pixels: a grid of 8x8 digits is scaled until its longer side is at least this
PADDING = 1  # pixels between images, before scaling
TITLE_GAP = 4  # pixels either side of a row's title


def grid_scale(nrow: int, image_width: int, scale: int | None = None, rows: int = 1) -> int:
    """`scale`, or the smallest whole factor that makes the longer side of a grid of `nrow`
    columns and `rows` rows of square images at least `MIN_SIDE` pixels (1 when it already is)."""
    if scale is not None:
        if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
            raise ValueError(f"grid scale must be an integer >= 1 or null, got {scale!r}")
        return scale
    side = max(nrow, rows) * (image_width + PADDING) + PADDING
    return max(1, math.ceil(MIN_SIDE / side))


def save_grid(images: torch.Tensor, path: str | Path, nrow: int, scale: int | None = None) -> Path:
    """Writes images [N, C, H, W] in [0, 1] as a grid of `nrow` per row, each image scaled by
    nearest neighbour (`grid_scale`), so every sample pixel is a sharp block."""
    factor = grid_scale(nrow, images.shape[-1], scale, rows=math.ceil(len(images) / nrow))
    if factor > 1:
        images = F.interpolate(images.float(), scale_factor=factor, mode="nearest")
    save_image(images, path, nrow=nrow, padding=PADDING * factor, pad_value=1.0)
    return Path(path)


def class_rows(
    images: torch.Tensor, labels: torch.Tensor, per_row: int | None = None
) -> tuple[torch.Tensor, int]:
    """Images [N, C, H, W] in [0, 1] laid out one row per class 0..K-1 with `per_row` columns
    (default K; fewer when no class has that many samples), white where a class has fewer; and
    the row length."""
    num_classes = int(labels.max()) + 1
    per_row = min(per_row or num_classes, int(torch.bincount(labels).max()))
    rows = []
    for label in range(num_classes):
        row = images[labels == label][:per_row]
        blank = torch.ones((per_row - len(row), *images.shape[1:]), dtype=images.dtype)
        rows.append(torch.cat([row, blank]))
    return torch.cat(rows), per_row


def save_titled_grid(
    images: torch.Tensor, titles: list[str], path: str | Path, nrow: int, scale: int | None = None
) -> Path:
    """`save_grid`'s grid with row r titled `titles[r]` in a white margin on its left."""
    factor = grid_scale(nrow, images.shape[-1], scale, rows=len(titles))
    if factor > 1:
        images = F.interpolate(images.float(), scale_factor=factor, mode="nearest")
    grid = make_grid(images, nrow=nrow, padding=PADDING * factor, pad_value=1.0)
    picture = to_pil_image(grid.clamp(0, 1)).convert("RGB")
    font = ImageFont.load_default()
    margin = max(int(font.getlength(title)) for title in titles) + 2 * TITLE_GAP
    titled = Image.new("RGB", (margin + picture.width, picture.height), "white")
    titled.paste(picture, (margin, 0))
    draw = ImageDraw.Draw(titled)
    row_height = images.shape[-2] + PADDING * factor
    for row, title in enumerate(titles):
        _, top, _, bottom = draw.textbbox((0, 0), title, font=font)
        y = row * row_height + (row_height - (bottom - top)) // 2 - top
        draw.text((TITLE_GAP, y), title, fill="black", font=font)
    titled.save(path)
    return Path(path)
