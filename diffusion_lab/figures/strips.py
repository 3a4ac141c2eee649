"""Image strips: a sampler's denoising trajectory (x_t and the predicted x_0 from T down to 0, as
in DDPM's Fig. 6), the forward process at several t (Improved DDPM's Fig. 3), and cold
diffusion's degradations and restorations (Bansal et al. 2022, Figs. 1-2)."""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib import image
from matplotlib.figure import Figure
from torch.nn import functional as F

from diffusion_lab.diffusion import GaussianDiffusion


@dataclass
class Strip:
    """A grid of tiles: `pixels` [H, W, 3] in [0, 1], a label per column and per row.

    Each tile is an image enlarged `scale` times, with `pad` white pixels between and around tiles.
    """

    pixels: np.ndarray
    column_labels: list[str]
    row_labels: list[str]

    def save(self, path: str | Path) -> Path:
        """Writes the pixels as a PNG, one image pixel per PNG pixel (no axes, no labels)."""
        image.imsave(path, self.pixels)
        return Path(path)

    def figure(self) -> Figure:
        """The strip with its column and row labels, for notebooks and papers."""
        height, width = self.pixels.shape[:2]
        fig = Figure(figsize=(1 + width / 60, 0.4 + height / 60), layout="constrained")
        ax = fig.subplots()
        ax.imshow(self.pixels, interpolation="nearest")
        ax.set_xticks((np.arange(len(self.column_labels)) + 0.5) * width / len(self.column_labels))
        ax.set_xticklabels(self.column_labels)
        ax.set_yticks((np.arange(len(self.row_labels)) + 0.5) * height / len(self.row_labels))
        ax.set_yticklabels(self.row_labels)
        ax.tick_params(length=0)
        for spine in ax.spines.values():
            spine.set_visible(False)
        return fig


def tile(rows: torch.Tensor, scale: int = 4, pad: int = 1) -> np.ndarray:
    """Images [R, K, C, H, W] in [−1, 1] (clipped) -> pixels [R·(sH+pad)+pad, K·(sW+pad)+pad, 3]."""
    num_rows, num_columns, channels, height, width = rows.shape
    images = ((rows.float() + 1) / 2).clamp(0, 1)
    if channels == 1:
        images = images.expand(-1, -1, 3, -1, -1)
    images = images.repeat_interleave(scale, dim=-2).repeat_interleave(scale, dim=-1)
    images = F.pad(images, (pad, 0, pad, 0), value=1.0)  # a white gap above and left of each tile
    grid = images.permute(0, 3, 1, 4, 2).reshape(
        num_rows * (scale * height + pad), num_columns * (scale * width + pad), 3
    )
    return F.pad(grid, (0, 0, 0, pad, 0, pad), value=1.0).numpy()  # and below/right of the last


def denoising_strip(
    trajectory: Mapping[str, torch.Tensor],
    columns: int = 6,
    sample: int = 0,
    scale: int = 4,
    pad: int = 1,
) -> Strip:
    """Rows x_t and predicted x_0 of one sample at `columns` steps evenly spread from T to 0.

    `trajectory` is `sample(..., return_trajectory=True).trajectory`: "t" [K], "x_t" and
    "pred_xstart" [K, N, C, H, W]. Columns are its first and last steps and evenly spaced ones
    between (fewer when K < columns), labelled by their timestep t.
    """
    num_steps = len(trajectory["t"])
    picked = np.unique(np.linspace(0, num_steps - 1, min(columns, num_steps)).round().astype(int))
    rows = torch.stack([trajectory[key][picked, sample] for key in ("x_t", "pred_xstart")])
    return Strip(
        pixels=tile(rows, scale, pad),
        column_labels=[f"t={int(trajectory['t'][i])}" for i in picked],
        row_labels=["x_t", "pred x_0"],
    )


def forward_strip(
    x_start: torch.Tensor,
    diffusions: Mapping[str, GaussianDiffusion],
    timesteps: Sequence[int],
    noise: torch.Tensor | None = None,
    scale: int = 4,
    pad: int = 1,
) -> Strip:
    """One image [C, H, W] drawn from q(x_t | x_0) at each of `timesteps`, a row per schedule.

    `diffusions` maps a row label to a GaussianDiffusion; every cell uses the same `noise`
    [C, H, W] (default: one standard normal draw), so rows differ only by their schedule.
    """
    noise = torch.randn_like(x_start) if noise is None else noise
    t = torch.as_tensor(list(timesteps), dtype=torch.long)
    batch, eps = x_start.expand(len(t), *x_start.shape), noise.expand(len(t), *noise.shape)
    rows = torch.stack([d.q_sample(batch, t, noise=eps) for d in diffusions.values()])
    return Strip(
        pixels=tile(rows, scale, pad),
        column_labels=[f"t={int(step)}" for step in t],
        row_labels=list(diffusions),
    )


def degradation_strip(
    x_start: torch.Tensor,
    processes: Mapping[str, Any],
    levels: Sequence[int],
    noise: torch.Tensor | None = None,
    scale: int = 4,
    pad: int = 1,
) -> Strip:
    """One image [C, H, W] degraded to each of `levels`, a row per cold process (x_0 → x_T,
    Bansal et al. 2022, Fig. 1). `processes` maps a row label to a process with
    `degrade(x_0, t, noise)`; every cell uses the same `noise` [C, H, W] (default one draw)."""
    noise = torch.randn_like(x_start) if noise is None else noise
    t = torch.as_tensor(list(levels), dtype=torch.long)
    batch, eps = x_start.expand(len(t), *x_start.shape), noise.expand(len(t), *noise.shape)
    rows = torch.stack([p.degrade(batch, t, eps) for p in processes.values()])
    return Strip(
        pixels=tile(rows, scale, pad),
        column_labels=[f"t={int(level)}" for level in t],
        row_labels=list(processes),
    )


def restoration_strip(
    originals: torch.Tensor,
    degraded: torch.Tensor,
    restored: torch.Tensor,
    columns: int = 8,
    scale: int = 4,
    pad: int = 1,
) -> Strip:
    """Rows x_0, its degradation D(x_0, T) and the restoration, for the first `columns` images
    [N, C, H, W] (`processes.cold.Restoration`'s fields)."""
    rows = torch.stack([images[:columns].cpu() for images in (originals, degraded, restored)])
    return Strip(
        pixels=tile(rows, scale, pad),
        column_labels=[str(i) for i in range(rows.shape[1])],
        row_labels=["x_0", "D(x_0, T)", "restored"],
    )
