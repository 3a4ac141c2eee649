"""Conditional restoration with a cold model: degrade images to level T, run a cold sampler
back to level 0, and score the restorations against the originals (RMSE, SSIM)."""

from dataclasses import dataclass

import torch
from torchmetrics.functional.image import structural_similarity_index_measure

from diffusion_lab.processes.cold.samplers import cold_sample


def rmse(images: torch.Tensor, references: torch.Tensor) -> torch.Tensor:
    """Root-mean-square error [N] of images [N, C, H, W] in [−1, 1], on the [0, 1] scale."""
    error = (images.double() - references.double()) / 2
    return error.pow(2).flatten(1).mean(dim=1).sqrt()


def ssim(images: torch.Tensor, references: torch.Tensor) -> torch.Tensor:
    """SSIM [N] (Wang et al. 2004) on the [0, 1] scale: an 11-pixel Gaussian window, σ = 1.5,
    narrowed to the largest odd size that fits smaller images."""
    side = min(images.shape[-2:])
    window = min(11, side if side % 2 else side - 1)
    return structural_similarity_index_measure(
        ((images.double() + 1) / 2).clamp(0, 1),
        ((references.double() + 1) / 2).clamp(0, 1),
        data_range=1.0,
        kernel_size=window,
        reduction="none",
    )


@dataclass
class Restoration:
    """originals, degraded (D(x_0, T)) and restored images [N, C, H, W] in [−1, 1]; nfe:
    network evaluations per batch."""

    originals: torch.Tensor
    degraded: torch.Tensor
    restored: torch.Tensor
    nfe: int

    def metrics(self) -> dict[str, float]:
        """Mean RMSE and SSIM over the images of the restorations and, as the baseline, of
        the degraded inputs."""
        return {
            "rmse": float(rmse(self.restored, self.originals).mean()),
            "ssim": float(ssim(self.restored, self.originals).mean()),
            "rmse_degraded": float(rmse(self.degraded, self.originals).mean()),
            "ssim_degraded": float(ssim(self.degraded, self.originals).mean()),
        }


@torch.no_grad()
def restore(
    model,
    process,
    x_start: torch.Tensor,
    sampler: str = "cold",
    steps: int | None = None,
    noise: torch.Tensor | None = None,
    model_kwargs: dict | None = None,
    clip_denoised: bool = True,
) -> Restoration:
    """Degrades x_start [N, C, H, W] to level T with `noise` (the degradation's randomness,
    default a standard normal draw) and restores it with the named cold sampler."""
    noise = torch.randn_like(x_start) if noise is None else noise
    level = torch.full((x_start.shape[0],), process.num_timesteps, device=x_start.device)
    degraded = process.degrade(x_start, level, noise)
    restored, nfe = cold_sample(
        model, process, degraded, sampler, steps, noise, model_kwargs, clip_denoised
    )
    return Restoration(x_start, degraded, restored, nfe)
