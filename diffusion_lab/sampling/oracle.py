"""An analytic target: a mixture of isotropic Gaussians whose exact denoiser is known.

x_0 ~ Σ_k π_k N(μ_k, s_k² I); at noise level σ (x = x_0 + σ·ε) the marginal is
Σ_k π_k N(μ_k, (s_k² + σ²) I), the posterior over components r_k(x) ∝ π_k N(x; μ_k, (s_k²+σ²)I),
and E[x_0 | x] = Σ_k r_k (μ_k + s_k²/(s_k²+σ²)·(x − μ_k)) (Tweedie: x + σ²∇log p_σ(x)).
Nothing is trained, so a sampler's error against it is the sampler's alone.
"""

import math

import torch

from diffusion_lab.sampling.sigma import DiscreteSchedule


class GaussianMixture:
    """means [K, *shape], stds [K], weights [K] (normalised here); all float64."""

    def __init__(self, means: torch.Tensor, stds: torch.Tensor, weights: torch.Tensor):
        self.means = torch.as_tensor(means, dtype=torch.float64)
        self.stds = torch.as_tensor(stds, dtype=torch.float64)
        weights = torch.as_tensor(weights, dtype=torch.float64)
        self.log_weights = (weights / weights.sum()).log()
        self.shape = tuple(self.means.shape[1:])
        self.dim = self.means[0].numel()

    def _responsibilities(self, x: torch.Tensor, sigma) -> tuple[torch.Tensor, torch.Tensor]:
        """(r [N, K], variances s_k² + σ² [N, K]) at x [N, *shape], σ a float or [N]."""
        sigma = torch.as_tensor(sigma, dtype=torch.float64, device=x.device).reshape(-1, 1)
        variances = self.stds.to(x.device) ** 2 + sigma**2
        flat = x.double().flatten(1)[:, None, :] - self.means.to(x.device).flatten(1)[None]
        log_joint = (
            self.log_weights.to(x.device)
            - 0.5 * (flat**2).sum(-1) / variances
            - 0.5 * self.dim * torch.log(2 * math.pi * variances)
        )
        return log_joint, variances

    def log_prob(self, x: torch.Tensor, sigma=0.0) -> torch.Tensor:
        """log p_σ(x) [N] of the noised marginal (σ = 0: the data density)."""
        log_joint, _ = self._responsibilities(x, sigma)
        return torch.logsumexp(log_joint, dim=1)

    def denoise(self, x: torch.Tensor, sigma) -> torch.Tensor:
        """E[x_0 | x] [N, *shape] at VE x [N, *shape] and σ (a float or [N]), in float64."""
        log_joint, variances = self._responsibilities(x, sigma)
        r = torch.softmax(log_joint, dim=1)
        shrink = self.stds.to(x.device) ** 2 / variances  # s_k²/(s_k²+σ²), [N, K]
        flat = x.double().flatten(1)
        means = self.means.to(x.device).flatten(1)
        per_component = means[None] + shrink[..., None] * (flat[:, None, :] - means[None])
        return (r[..., None] * per_component).sum(1).view(x.shape)

    def sample(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """n exact draws [n, *shape]."""
        k = torch.multinomial(self.log_weights.exp(), n, replacement=True, generator=generator)
        z = torch.randn((n, *self.shape), generator=generator, dtype=torch.float64)
        return self.means[k] + self.stds[k].view(-1, *[1] * len(self.shape)) * z

    def network(self, alphas_cumprod, mean_type: str = "epsilon") -> "MixtureNetwork":
        """The exact `model(x_t, t)` of a discrete VP process with these ᾱ_t."""
        return MixtureNetwork(self, alphas_cumprod, mean_type)


class MixtureNetwork(torch.nn.Module):
    """The Bayes-optimal ε (x_0 or v) network for the mixture under a discrete VP schedule.

    At an integer t, σ_t = √((1−ᾱ_t)/ᾱ_t); at a real t, the σ view's interpolation of log σ, so
    the network is exact wherever a sampler evaluates it. x = x_t·√(1+σ²) is the VE state.
    """

    def __init__(self, mixture: GaussianMixture, alphas_cumprod, mean_type: str = "epsilon"):
        super().__init__()
        self.mixture = mixture
        self.schedule = DiscreteSchedule(alphas_cumprod)
        self.mean_type = mean_type

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, **_) -> torch.Tensor:
        if t.dtype == torch.long:
            sigma = self.schedule.sigmas[t.cpu()]
        else:
            sigma = self.schedule.t_to_sigma(t)
        sigma = sigma.to(x_t.device)
        view = sigma.view(-1, *[1] * (x_t.ndim - 1))
        scale = (1 + view**2).sqrt()  # 1/√ᾱ
        x = x_t.double() * scale
        pred_xstart = self.mixture.denoise(x, sigma)
        eps = (x - pred_xstart) / view
        if self.mean_type == "epsilon":
            out = eps
        elif self.mean_type == "start_x":
            out = pred_xstart
        else:  # v = √ᾱ·ε − √(1−ᾱ)·x_0
            out = (eps - view * pred_xstart) / scale
        return out.to(x_t.dtype)
