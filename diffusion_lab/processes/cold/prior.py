"""Where unconditional cold sampling starts: a Gaussian mixture over the training images'
per-channel means, whose draws, as constant images plus a little noise that breaks their
symmetry, stand in for the fully blurred x_T (Bansal et al. 2022, §5.1)."""

import torch
from sklearn.mixture import GaussianMixture

BROKEN_SYMMETRY_STD = 0.002  # the paper's σ of the noise added to the constant x_T


class ChannelMeanPrior:
    """A K-component Gaussian mixture over channel means (C-dimensional), float64.

    weights [K], means [K, C], scale_tril [K, C, C] (each covariance's Cholesky factor).
    """

    def __init__(self, weights, means, scale_tril):
        self.weights = torch.as_tensor(weights, dtype=torch.float64)
        self.means = torch.as_tensor(means, dtype=torch.float64)
        self.scale_tril = torch.as_tensor(scale_tril, dtype=torch.float64)

    @classmethod
    def fit(cls, images: torch.Tensor, n_components: int = 10, seed: int = 0):
        """The mixture fitted by EM to images [N, C, H, W]' channel means."""
        means = images.double().mean(dim=(2, 3)).cpu().numpy()
        n_components = min(n_components, len(means))
        mixture = GaussianMixture(n_components, covariance_type="full", random_state=seed)
        mixture.fit(means)
        scale_tril = torch.linalg.cholesky(torch.as_tensor(mixture.covariances_))
        return cls(mixture.weights_, mixture.means_, scale_tril)

    def x_T(self, noise: torch.Tensor, noise_std: float = BROKEN_SYMMETRY_STD) -> torch.Tensor:
        """x_T [N, C, H, W] from standard Gaussian noise [N, C, H, W] (a pure function of it):
        the component k from Φ(noise[:, 0, 0, 0]), the channel means μ_k + L_k·z with z the
        pixel (0, 1) of each channel, plus noise_std·noise. Needs H·W >= 2."""
        flat = noise.double().flatten(2)
        uniform = torch.special.ndtr(flat[:, 0, 0]).cpu()
        k = torch.searchsorted(self.weights.cumsum(0) / self.weights.sum(), uniform)
        k = k.clamp(max=len(self.weights) - 1)
        z = flat[:, :, 1].cpu()
        channel_means = self.means[k] + (self.scale_tril[k] @ z.unsqueeze(-1)).squeeze(-1)
        constant = channel_means.to(noise.device, noise.dtype)[:, :, None, None]
        return constant + noise_std * noise

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"weights": self.weights, "means": self.means, "scale_tril": self.scale_tril}
