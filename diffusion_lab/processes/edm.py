"""EDM (Karras et al. 2022): the preconditioned denoiser D(x; σ) = c_skip·x + c_out·F(c_in·x,
c_noise), trained at log-normal σ with the weight λ(σ) (Table 1's "EDM" column; NVlabs/edm
`training/networks.py` EDMPrecond and `training/loss.py` EDMLoss). x = x_0 + σ·ε (VE)."""

import math

import torch

from diffusion_lab.diffusion.losses import mean_flat
from diffusion_lab.errors import ConfigError

QUANTILE_EPS = 1e-6  # u is kept in [ε, 1 − ε]: σ within P_mean ± 4.75·P_std


class ContinuousTimesteps:
    """Training "timesteps" t = u·T for the module's uniforms u [n]: real numbers in [0, T),
    weights 1; EDM reads t/T as the quantile of its log-normal σ."""

    def __init__(self, num_timesteps: int):
        self.num_timesteps = num_timesteps

    def from_uniform(self, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return u.double() * self.num_timesteps, torch.ones(len(u), device=u.device)

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        """No state."""


class EDMProcess:
    """Trains F of D(x; σ) = c_skip(σ)·x + c_out(σ)·F(c_in(σ)·x, c_noise(σ)).

    Args:
        sigma_data: σ_data, the data's standard deviation (0.5 for images in [−1, 1]).
        P_mean, P_std: ln σ ~ N(P_mean, P_std²) in training (Table 1: −1.2, 1.2).
        sigma_min, sigma_max: the samplers' range of σ (Table 1: 0.002, 80).
        num_timesteps: quantile resolution of validation's integer t (σ at quantile t/T).

    `model(x, c_noise, **model_kwargs)` takes c_noise = ln(σ)/4 [N] (float) as its timestep.
    """

    kind = "edm"
    learns_sigma = False

    def __init__(
        self,
        sigma_data: float = 0.5,
        P_mean: float = -1.2,
        P_std: float = 1.2,
        sigma_min: float = 0.002,
        sigma_max: float = 80.0,
        num_timesteps: int = 1000,
    ):
        for key, value in (("sigma_data", sigma_data), ("P_std", P_std), ("sigma_min", sigma_min)):
            if not value > 0:
                raise ConfigError(f"process.{key}={value!r} must be > 0")
        if not sigma_max > sigma_min:
            raise ConfigError(f"process.sigma_max={sigma_max!r} must exceed sigma_min={sigma_min}")
        self.sigma_data, self.P_mean, self.P_std = sigma_data, P_mean, P_std
        self.sigma_min, self.sigma_max = sigma_min, sigma_max
        self.num_timesteps = num_timesteps

    @property
    def diffusion(self) -> "EDMProcess":
        """What the samplers take: the process itself (through `sigma_denoiser`)."""
        return self

    def schedule_sampler(self, name: str) -> ContinuousTimesteps:
        if name != "uniform":
            raise ConfigError(
                f"loss.timestep_sampler={name!r}: EDM draws σ from its log-normal; use uniform"
            )
        return ContinuousTimesteps(self.num_timesteps)

    def prepare(self, batches) -> None:
        """Nothing to fit before training."""

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Nothing to restore."""

    def preconditioning(self, sigma: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """(c_skip, c_out, c_in, c_noise) at σ (Table 1, EDM)."""
        sd2, s2 = self.sigma_data**2, sigma**2
        c_skip = sd2 / (s2 + sd2)
        c_out = sigma * self.sigma_data / (s2 + sd2).sqrt()
        c_in = 1 / (s2 + sd2).sqrt()
        return c_skip, c_out, c_in, sigma.log() / 4

    def loss_weight(self, sigma: torch.Tensor) -> torch.Tensor:
        """λ(σ) = (σ² + σ_data²)/(σ·σ_data)² (Table 1), which makes λ·c_out² = 1."""
        return (sigma**2 + self.sigma_data**2) / (sigma * self.sigma_data) ** 2

    def sigma_at(self, t: torch.Tensor) -> torch.Tensor:
        """σ = exp(P_mean + P_std·Φ⁻¹(t/T)) [N], float64: the log-normal's t/T quantile."""
        u = (t.double() / self.num_timesteps).clamp(QUANTILE_EPS, 1 - QUANTILE_EPS)
        return torch.exp(self.P_mean + self.P_std * math.sqrt(2) * torch.erfinv(2 * u - 1))

    def denoise(self, model, x, sigma, model_kwargs=None) -> torch.Tensor:
        """D(x; σ) [N, C, H, W] for σ [N] (eq. 7), in x's compute dtype (float32 at least)."""
        dtype = torch.promote_types(x.dtype, torch.float32)
        c_skip, c_out, c_in, c_noise = (
            c.to(x.device, dtype).view(-1, *([1] * (x.ndim - 1)))
            for c in self.preconditioning(sigma.double())
        )
        output = model(c_in * x, c_noise.flatten(), **(model_kwargs or {}))
        if output.shape != x.shape:
            raise ValueError(
                f"model output has shape {tuple(output.shape)}, expected {tuple(x.shape)}"
            )
        return c_skip * x + c_out * output.to(dtype)

    def training_losses(self, model, x_start, t, model_kwargs=None, noise=None):
        """Per-example `loss` [N] = mean over pixels of λ(σ)·(D(x_0 + σ·ε; σ) − x_0)² at σ of
        the quantiles t/T (eq. 8 with Table 1's p_train and λ; EDMLoss)."""
        if noise is None:
            noise = torch.randn_like(x_start)
        sigma = self.sigma_at(t)
        rows = sigma.to(x_start.device, torch.promote_types(x_start.dtype, torch.float32))
        rows = rows.view(-1, *([1] * (x_start.ndim - 1)))
        denoised = self.denoise(model, x_start + rows * noise, sigma, model_kwargs)
        weight = self.loss_weight(sigma).to(rows.dtype).to(x_start.device)
        loss = weight * mean_flat((denoised - x_start) ** 2)
        return {"loss": loss}

    def sigma_denoiser(self, model, model_kwargs=None, clip_denoised=True, cond_fn=None):
        """The samplers' view: `denoise(x, sigma) -> x̂_0` at a scalar σ."""
        if cond_fn is not None:
            raise ConfigError("guidance=classifier is not available for process=edm")
        return EDMSigmaDenoiser(self, model, model_kwargs, clip_denoised)


class EDMSigmaDenoiser:
    """D(x; σ) of a trained EDM network for the σ-solvers (`sampling.registry`)."""

    kind = "edm"

    def __init__(self, process: EDMProcess, model, model_kwargs=None, clip_denoised=True):
        self.process, self.model = process, model
        self.model_kwargs = model_kwargs or {}
        self.clip_denoised = clip_denoised
        self.sigma_min, self.sigma_max = process.sigma_min, process.sigma_max

    def __call__(self, x: torch.Tensor, sigma: float) -> torch.Tensor:
        sigmas = torch.full((x.shape[0],), float(sigma), dtype=torch.float64)
        denoised = self.process.denoise(self.model, x, sigmas, self.model_kwargs)
        return denoised.clamp(-1, 1) if self.clip_denoised else denoised

    def prior(self, noise: torch.Tensor, sigma: float) -> torch.Tensor:
        """x at σ_max: σ·ε (the data's share is negligible there)."""
        return noise * float(sigma)

    def state(self, x: torch.Tensor, sigma: float) -> tuple[float, torch.Tensor]:
        """(σ, x): EDM's time is σ itself."""
        return float(sigma), x
