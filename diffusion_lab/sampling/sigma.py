"""The continuous view of the discrete Gaussian process: `denoise(x, sigma) -> x̂_0` at any σ.

k-diffusion's convention (Karras et al. 2022, §2): x = x_0 + σ·ε (variance exploding), which is
the VP x_t scaled, x = x_t·√(1+σ²), with σ_t = √((1−ᾱ_t)/ᾱ_t). Between trained steps the
timestep is interpolated linearly in log σ (k-diffusion's `DiscreteSchedule.sigma_to_t` with
quantize=False), so the network sees a real t; at a trained σ it sees that integer t exactly.
"""

from collections.abc import Callable
from typing import Any

import torch

from diffusion_lab.diffusion.gaussian_diffusion import ModelMeanType


class DiscreteSchedule:
    """σ ↔ t for a discrete VP schedule (ᾱ_t, t = 0..T−1), continuous in t and in log σ."""

    def __init__(self, alphas_cumprod):
        alphas_cumprod = torch.as_tensor(alphas_cumprod, dtype=torch.float64).cpu()
        self.sigmas = ((1 - alphas_cumprod) / alphas_cumprod).sqrt()
        self.log_sigmas = self.sigmas.log()
        self.sigma_min = float(self.sigmas[0])
        self.sigma_max = float(self.sigmas[-1])

    def sigma_to_t(self, sigma: torch.Tensor) -> torch.Tensor:
        """Real t [N] for σ [N] (float64), clamped to [0, T−1]; a trained σ gives its t exactly."""
        sigma = torch.as_tensor(sigma, dtype=torch.float64).cpu()
        log_sigma = sigma.log().clamp(self.log_sigmas[0], self.log_sigmas[-1])
        high = torch.searchsorted(self.log_sigmas, log_sigma).clamp(1, len(self.sigmas) - 1)
        low = high - 1
        w = (log_sigma - self.log_sigmas[low]) / (self.log_sigmas[high] - self.log_sigmas[low])
        t = low + w.clamp(0, 1)
        # a trained level by value (log's last bit may differ between vector and scalar calls)
        nearest = t.round().long()
        return torch.where(self.sigmas[nearest] == sigma, nearest.double(), t)

    def t_to_sigma(self, t: torch.Tensor) -> torch.Tensor:
        """σ at real t [N] (float64): log σ interpolated linearly between trained steps."""
        t = torch.as_tensor(t, dtype=torch.float64).cpu().clamp(0, len(self.sigmas) - 1)
        low = t.floor().long().clamp(max=len(self.sigmas) - 2) if len(self.sigmas) > 1 else t.long()
        if len(self.sigmas) == 1:
            return self.sigmas[low]
        w = t - low
        return (self.log_sigmas[low] * (1 - w) + self.log_sigmas[low + 1] * w).exp()


class DiscreteSigmaDenoiser:
    """D(x; σ) = x̂_0 of a network trained on a discrete `GaussianDiffusion`, at any σ.

    The network gets x_t = x/√(1+σ²) at t = sigma_to_t(σ) (rescaled like the diffusion's own
    calls when rescale_timesteps); its ε, x_0 or v output (learned-variance channels split off)
    becomes x̂_0 with ᾱ = 1/(1+σ²) of the exact σ: ε gives x − σ·ε̂, v gives
    (x_t − σ·v̂)/√(1+σ²). `cond_fn(x_t, t, **model_kwargs)` = s·∇log p(y|x_t) enters in score
    form (Dhariwal & Nichol 2021, Algorithm 2): x̂_0 += (1−ᾱ)/√ᾱ·∇. Integer t reach the
    network as long, fractional ones as float64.
    """

    kind = "gaussian"

    def __init__(
        self,
        model: Callable[..., torch.Tensor],
        diffusion: Any,
        model_kwargs: dict | None = None,
        clip_denoised: bool = True,
        cond_fn: Callable[..., torch.Tensor] | None = None,
    ):
        self.model = model
        self.diffusion = diffusion
        self.model_kwargs = model_kwargs or {}
        self.clip_denoised = clip_denoised
        self.cond_fn = cond_fn
        self.alphas_cumprod = diffusion.alphas_cumprod
        self.schedule = DiscreteSchedule(diffusion.alphas_cumprod)
        self.sigma_min = self.schedule.sigma_min
        self.sigma_max = self.schedule.sigma_max

    def model_timesteps(self, sigma: float) -> torch.Tensor:
        """The network's timestep [1] for σ: long where σ is a trained level, else float64."""
        t = self.schedule.sigma_to_t(torch.tensor([float(sigma)], dtype=torch.float64))
        integral = bool((t == t.round()).all())
        if integral:  # a trained level: the call the discrete process makes
            t = t.long()
        if self.diffusion.rescale_timesteps:
            return (t.float() if integral else t) * (1000.0 / self.diffusion.num_timesteps)
        return t

    def __call__(self, x: torch.Tensor, sigma: float) -> torch.Tensor:
        """x̂_0 [N, C, H, W] at VE x [N, C, H, W] and the scalar noise level σ > 0."""
        sigma = float(sigma)
        scale = (1 + sigma**2) ** 0.5
        x_t = x / scale
        t = self.model_timesteps(sigma).to(x.device).expand(x.shape[0])
        output = self.model(x_t, t, **self.model_kwargs)
        output = output.to(torch.promote_types(x.dtype, torch.float32))
        channels = x.shape[1]
        if self.diffusion.learns_sigma:
            output = output[:, :channels]
        elif output.shape[1] != channels:
            raise ValueError(f"model output has {output.shape[1]} channels, expected {channels}")
        mean_type = self.diffusion.model_mean_type
        if mean_type == ModelMeanType.EPSILON:
            pred_xstart = x - sigma * output
        elif mean_type == ModelMeanType.V:
            pred_xstart = (x_t - sigma * output) / scale
        else:
            pred_xstart = output
        if self.clip_denoised:
            pred_xstart = pred_xstart.clamp(-1, 1)
        if self.cond_fn is not None:
            gradient = self.cond_fn(x_t, t, **self.model_kwargs)
            pred_xstart = pred_xstart + sigma**2 / scale * gradient.to(pred_xstart.dtype)
        return pred_xstart

    def prior(self, noise: torch.Tensor, sigma: float) -> torch.Tensor:
        """VE x at σ for the VP x_t = noise (the process's x_T ~ N(0, I))."""
        return noise * (1 + float(sigma) ** 2) ** 0.5

    def state(self, x: torch.Tensor, sigma: float) -> tuple[float, torch.Tensor]:
        """(t, x_t): the real timestep and VP state of VE x at σ, for trajectories."""
        t = float(self.schedule.sigma_to_t(torch.tensor([float(sigma)], dtype=torch.float64))[0])
        return (round(t) if t == round(t) else t), x / (1 + float(sigma) ** 2) ** 0.5
