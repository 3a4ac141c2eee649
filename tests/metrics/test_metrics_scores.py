"""FID, Inception Score, precision/recall: closed forms, invariants, torch-fidelity's numbers."""

import numpy as np
import pytest
import torch
import torch_fidelity
from torch.utils.data import Dataset
from torch_fidelity.feature_extractor_base import FeatureExtractorBase
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY, register_feature_extractor

from diffusion_lab.metrics import (
    FeatureExtractor,
    Features,
    FeatureStats,
    compute_metrics,
    extract_features,
    frechet_distance,
    inception_score,
    kernel_inception_distance,
    precision_recall,
    reference_stats,
)


def test_streaming_stats_equal_numpy_mean_and_cov():
    x = (
        torch.randn(1000, 6, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 3
        + 5
    )
    stats = FeatureStats(6)
    for batch in x.split(77):
        stats.update(batch.float())
    assert stats.count == 1000
    np.testing.assert_allclose(stats.mu, x.float().double().mean(0).numpy(), rtol=1e-12)
    np.testing.assert_allclose(
        stats.sigma, np.cov(x.float().double().numpy(), rowvar=False), rtol=1e-9
    )


def test_fid_of_a_set_against_itself_is_zero():
    x = torch.randn(500, 16, generator=torch.Generator().manual_seed(1))
    stats = FeatureStats(16)
    stats.update(x)
    assert abs(frechet_distance(stats.mu, stats.sigma, stats.mu, stats.sigma)) < 1e-6


def test_fid_matches_closed_form_for_non_commuting_2d_gaussians():
    # For 2x2 A with positive eigenvalues, Tr(A^(1/2)) = sqrt(Tr A + 2 sqrt(det A)).
    mu1, mu2 = np.array([0.0, 1.0]), np.array([2.0, -1.0])
    s1 = np.array([[2.0, 0.8], [0.8, 1.0]])
    s2 = np.array([[1.0, -0.3], [-0.3, 0.5]])
    product = s1 @ s2
    tr_sqrt = np.sqrt(np.trace(product) + 2 * np.sqrt(np.linalg.det(product)))
    expected = np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * tr_sqrt
    assert frechet_distance(mu1, s1, mu2, s2) == pytest.approx(expected, rel=1e-10)
    assert expected == pytest.approx(
        8.0 + 3.0 + 1.5 - 2 * tr_sqrt
    )  # pins the test's own arithmetic


def test_fid_of_samples_converges_to_closed_form_of_their_gaussians():
    # Diagonal covariances commute: FID = |mu1 - mu2|^2 + sum (sqrt(s1) - sqrt(s2))^2.
    g = torch.Generator().manual_seed(2)
    mu1, mu2 = torch.tensor([0.0, 1.0, 2.0]), torch.tensor([1.0, 1.0, 0.0])
    var1, var2 = torch.tensor([1.0, 4.0, 0.25]), torch.tensor([1.0, 1.0, 1.0])
    expected = ((mu1 - mu2) ** 2).sum() + ((var1.sqrt() - var2.sqrt()) ** 2).sum()
    stats1, stats2 = FeatureStats(3), FeatureStats(3)
    for _ in range(20):
        stats1.update(mu1 + var1.sqrt() * torch.randn(10_000, 3, generator=g))
        stats2.update(mu2 + var2.sqrt() * torch.randn(10_000, 3, generator=g))
    fid = frechet_distance(stats1.mu, stats1.sigma, stats2.mu, stats2.sigma)
    assert fid == pytest.approx(expected.item(), abs=0.03)  # expected = 6.25


class RandomImages(Dataset):
    """uint8 RGB 4x4 images with values in [low, high); what torch-fidelity reads as an input."""

    def __init__(self, n: int, low: int, high: int, seed: int):
        g = torch.Generator().manual_seed(seed)
        self.images = torch.randint(low, high, (n, 3, 4, 4), generator=g, dtype=torch.uint8)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.images[i]


def flatten_features(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    features = x.flatten(1).float() / 255
    return features, features[:, :10] * 8


class FidelityFlatten(FeatureExtractorBase):
    def __init__(self, name, features_list, **kwargs):
        super().__init__(name, features_list)

    def forward(self, x):
        out = dict(zip(("feat", "logits"), flatten_features(x), strict=True))
        return tuple(out[name] for name in self.features_list)

    @staticmethod
    def get_provided_features_list():
        return "feat", "logits"

    @staticmethod
    def get_default_feature_layer_for_metric(metric):
        return {"fid": "feat", "kid": "feat", "prc": "feat", "isc": "logits"}[metric]

    @staticmethod
    def can_be_compiled():
        return False

    @staticmethod
    def get_dummy_input_for_compile():
        return None


class OurFlatten(FeatureExtractor):
    name = "flatten"
    num_features = 48

    def forward(self, images):
        return Features(*flatten_features(images))


def test_fid_is_pr_equal_torch_fidelity_on_the_same_features(tmp_path):
    if "test-flatten" not in FEATURE_EXTRACTORS_REGISTRY:
        register_feature_extractor("test-flatten", FidelityFlatten)
    generated, real = RandomImages(200, 0, 200, seed=0), RandomImages(200, 40, 256, seed=1)
    theirs = torch_fidelity.calculate_metrics(
        input1=generated,
        input2=real,
        feature_extractor="test-flatten",
        fid=True,
        isc=True,
        prc=True,
        cuda=False,
        cache=False,
        save_cpu_ram=True,
        verbose=False,
    )
    extractor = OurFlatten()
    reference = reference_stats("random-train-4", real, extractor, tmp_path, batch_size=64)
    ours = compute_metrics(
        Features.cat(list(extract_features(extractor, [generated.images]))), reference
    )
    assert theirs["frechet_inception_distance"] > 1.0  # the two sets really differ
    assert ours["fid_flatten"] == pytest.approx(theirs["frechet_inception_distance"], abs=1e-3)
    assert ours["is_flatten"] == pytest.approx(theirs["inception_score_mean"], rel=1e-9)
    assert ours["is_std_flatten"] == pytest.approx(theirs["inception_score_std"], rel=1e-6)
    assert ours["precision_flatten"] == pytest.approx(theirs["precision"])
    assert ours["recall_flatten"] == pytest.approx(theirs["recall"])


def test_inception_score_of_confident_uniform_classes_is_the_class_count():
    # Each sample sure of one class, classes used equally: IS = exp(log K) = K (one split: the
    # ten shuffled splits of 50 use the classes unequally, so score less).
    logits = torch.eye(10).repeat(50, 1) * 100
    mean, std = inception_score(logits, splits=1)
    assert mean == pytest.approx(10.0, rel=1e-6) and std == 0.0
    assert 8.0 < inception_score(logits)[0] < 10.0
    mean, _ = inception_score(torch.zeros(500, 10))  # no confidence at all: IS = 1
    assert mean == pytest.approx(1.0)


def test_precision_recall_identical_sets_are_one_and_disjoint_sets_are_zero():
    x = torch.randn(300, 8, generator=torch.Generator().manual_seed(3))
    assert precision_recall(x, x.clone()) == (1.0, 1.0)
    assert precision_recall(x, x + 100.0) == (0.0, 0.0)


def test_precision_recall_see_mode_dropping():
    # Generated samples cover only half of the real data: precision high, recall about half.
    g = torch.Generator().manual_seed(4)
    real = torch.cat([torch.randn(300, 2, generator=g) - 10, torch.randn(300, 2, generator=g) + 10])
    generated = torch.randn(600, 2, generator=g) + 10
    precision, recall = precision_recall(generated, real)
    assert precision > 0.9
    assert 0.4 < recall < 0.6


def test_kid_is_near_zero_for_one_distribution_and_far_from_it_for_a_shifted_one():
    """KID is unbiased: two samples of N(0, I) give ~0 at any sample count (measured 0.004 at
    500 per side; the estimator's spread at that size is of that order), a mean shift of 0.5 in
    16 dimensions ~1.0. FID, biased, is clearly positive for the same two samples."""
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(500, 16, generator=g), torch.randn(500, 16, generator=g)
    shifted = torch.randn(500, 16, generator=g) + 0.5
    same, _ = kernel_inception_distance(x, y)
    far, _ = kernel_inception_distance(x, shifted)
    assert abs(same) < 0.02 and far > 0.5
    stats = [FeatureStats(16) for _ in range(2)]
    stats[0].update(x)
    stats[1].update(y)
    assert frechet_distance(stats[0].mu, stats[0].sigma, stats[1].mu, stats[1].sigma) > 0.3


def test_kid_subsets_shrink_to_the_smaller_side_and_report_a_spread():
    g = torch.Generator().manual_seed(1)
    mean, std = kernel_inception_distance(
        torch.randn(80, 8, generator=g), torch.randn(300, 8, generator=g)
    )
    assert abs(mean) < 0.1 and std > 0  # subsets of 80 from 300: they differ
