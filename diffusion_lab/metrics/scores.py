"""FID, KID, Inception Score and improved precision/recall on extracted features.

The scores themselves are torch-fidelity's functions, so numbers match what papers report with it;
this module adds streaming float64 statistics and a plain-argument face.
"""

import numpy as np
import torch
from torch_fidelity.metric_fid import fid_statistics_to_metric
from torch_fidelity.metric_isc import isc_features_to_metric
from torch_fidelity.metric_kid import kid_features_to_metric
from torch_fidelity.metric_prc import calculate_precision_recall_part


class FeatureStats:
    """Running mean and covariance of features [N, D], summed in float64 (so batches can stream).

    `sigma` is the unbiased covariance, as np.cov(features, rowvar=False) gives.
    """

    def __init__(self, num_features: int):
        self.count = 0
        self.sum = torch.zeros(num_features, dtype=torch.float64)
        self.sum_outer = torch.zeros(num_features, num_features, dtype=torch.float64)

    def update(self, features: torch.Tensor) -> None:
        x = features.detach().to("cpu", torch.float64)
        self.count += len(x)
        self.sum += x.sum(0)
        self.sum_outer += x.T @ x

    @property
    def mu(self) -> np.ndarray:
        return (self.sum / self.count).numpy()

    @property
    def sigma(self) -> np.ndarray:
        mu = self.sum / self.count
        sigma = (self.sum_outer - self.count * torch.outer(mu, mu)) / (self.count - 1)
        return sigma.numpy()


def frechet_distance(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray
) -> float:
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2))  (Heusel et al. 2017, eq. 6)."""
    stats = [
        {"mu": np.asarray(m, np.float64), "sigma": np.asarray(s, np.float64)}
        for m, s in ((mu1, sigma1), (mu2, sigma2))
    ]
    return fid_statistics_to_metric(*stats, verbose=False)["frechet_inception_distance"]


def kernel_inception_distance(
    generated: torch.Tensor, real: torch.Tensor, subsets: int = 100, subset_size: int = 1000
) -> tuple[float, float]:
    """Squared MMD with the cubic polynomial kernel (x·y/d + 1)³, unbiased, averaged over
    `subsets` random subsets of `subset_size` (fewer when a side has fewer) per side (Bińkowski et
    al. 2018, eq. 3; torch-fidelity's): mean and std. Unbiased, so near 0 for equal
    distributions even at small sample counts, unlike FID."""
    size = min(subset_size, len(generated), len(real))
    out = kid_features_to_metric(
        generated.detach().float().cpu(),
        real.detach().float().cpu(),
        kid_subsets=subsets,
        kid_subset_size=size,
        kid_degree=3,
        kid_gamma=None,
        kid_coef0=1,
        rng_seed=2020,
        verbose=False,
    )
    return out["kernel_inception_distance_mean"], out["kernel_inception_distance_std"]


def inception_score(logits: torch.Tensor, splits: int = 10) -> tuple[float, float]:
    """exp(E_x KL(p(y|x) || p(y))): mean, std over `splits` shuffled parts (Salimans 2016)."""
    out = isc_features_to_metric(logits.detach().cpu(), splits=splits, shuffle=True, rng_seed=2020)
    return out["inception_score_mean"], out["inception_score_std"]


def precision_recall(
    generated: torch.Tensor, real: torch.Tensor, k: int = 3, batch_size: int = 10_000
) -> tuple[float, float]:
    """Improved precision and recall with k-NN manifolds (Kynkäänniemi et al. 2019, k = 3).

    Precision: share of generated samples inside some real sample's k-NN ball; recall: the converse.
    generated [N, D], real [M, D]; distances are computed in blocks of `batch_size` rows.
    """
    return calculate_precision_recall_part(generated.float(), real.float(), k, batch_size)
