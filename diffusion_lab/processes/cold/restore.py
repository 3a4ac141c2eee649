"""Conditional restoration with a cold model: degrade images to level T, run a cold sampler
back to level 0, and score the restorations against the originals (RMSE, SSIM, and FID on a
feature network, as Bansal et al. 2022's Table 1 does)."""

from dataclasses import dataclass

import torch
from torchmetrics.functional.image import structural_similarity_index_measure

from diffusion_lab.metrics import FeatureStats, frechet_distance
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
    def fids(self, extractor, batch_size: int = 250) -> dict[str, float]:
        """FID of the restorations and of the degraded inputs against the originals, on
        `extractor`'s features (`fid_<name>`, `fid_<name>_degraded`)."""

        def stats(images: torch.Tensor) -> FeatureStats:
            running = FeatureStats(extractor.num_features)
            for batch in images.split(batch_size):
                running.update(extractor(batch.to(extractor.device)).features)
            return running

        reference = stats(self.originals)
        scores = {}
        for suffix, images in (("", self.restored), ("_degraded", self.degraded)):
            other = stats(images)
            fid = frechet_distance(other.mu, other.sigma, reference.mu, reference.sigma)
            scores[f"fid_{extractor.name}{suffix}"] = fid
        return scores


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
