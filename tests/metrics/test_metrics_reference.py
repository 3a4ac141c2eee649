"""Reference statistics: computed once, cached under a name and checked by key; metric names."""

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

from diffusion_lab.metrics import (
    Features,
    ReferenceStats,
    build_feature_extractor,
    compute_metrics,
    extract_features,
    reference_stats,
)


class CountingDataset(TensorDataset):
    """(image, label) pairs that count how often they are read."""

    reads = 0

    def __getitem__(self, i):
        self.reads += 1
        return super().__getitem__(i)


def digits_like(n: int, seed: int) -> CountingDataset:
    g = torch.Generator().manual_seed(seed)
    images = torch.rand(n, 1, 8, 8, generator=g) * 2 - 1
    return CountingDataset(images, torch.zeros(n, dtype=torch.long))


def test_reference_stats_are_cached_and_reused(tmp_path):
    extractor = build_feature_extractor("digits")
    data = digits_like(300, seed=0)
    first = reference_stats(
        "noise-train-8-digits", data, extractor, tmp_path, batch_size=64, num_pr_features=100
    )
    assert data.reads == 300
    assert (tmp_path / "noise-train-8-digits.npz").is_file()
    assert first.num_samples == 300 and first.features.shape == (100, 128)
    assert first.mu.dtype == np.float64 and first.sigma.shape == (128, 128)
    assert first.key == {"features": "digits", "weights_sha256": extractor.weights_sha256()}

    def build():
        raise AssertionError("a cache hit builds no dataset")

    second = reference_stats(
        "noise-train-8-digits", build, extractor, tmp_path, num_pr_features=100
    )
    assert data.reads == 300  # nor reads an image
    np.testing.assert_array_equal(second.sigma, first.sigma)
    np.testing.assert_array_equal(second.features, first.features)
    assert (second.name, second.extractor) == ("noise-train-8-digits", "digits")

    reference_stats("noise-test-8-digits", data, extractor, tmp_path)  # another name: computed
    assert data.reads == 600


def test_reference_stats_equal_stats_of_all_features(tmp_path):
    extractor = build_feature_extractor("digits")
    data = digits_like(120, seed=1)
    reference = reference_stats("x", data, extractor, tmp_path, batch_size=32)
    with torch.no_grad():  # batched as reference_stats does: other batch sizes may round apart
        batches = data.tensors[0].split(32)
        features = torch.cat([extractor(b).features for b in batches]).double().numpy()
    # streamed float64 sums against NumPy's: rounding ~1e-16 relative to E[f²] ≤ 16² (which
    # also bounds near-zero covariances); missing a batch or dividing by n, not n − 1, is off
    # by ≥ 1/120 relative
    np.testing.assert_allclose(reference.mu, features.mean(0), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(
        reference.sigma, np.cov(features, rowvar=False), rtol=1e-9, atol=1e-10
    )
    assert ReferenceStats.load(tmp_path / "x.npz").num_samples == 120


def test_digits_score_better_than_noise_under_the_digits_net(tmp_path):
    script_digits = pytest.importorskip("sklearn.datasets").load_digits()
    images = torch.from_numpy(script_digits.images).float()[:, None] / 8 - 1
    real, held_out = images[:1000], images[1000:1500]
    extractor = build_feature_extractor("digits")
    reference = reference_stats("digits-train-8", TensorDataset(real), extractor, tmp_path)
    noise = torch.rand(500, 1, 8, 8, generator=torch.Generator().manual_seed(0)) * 2 - 1

    def score(x):
        return compute_metrics(
            Features.cat(list(extract_features(extractor, x.split(250)))), reference
        )

    good, bad = score(held_out), score(noise)
    assert set(good) == {
        "fid_digits",
        "kid_digits",
        "kid_std_digits",
        "is_digits",
        "is_std_digits",
        "precision_digits",
        "recall_digits",
    }
    assert good["fid_digits"] < bad["fid_digits"] / 5
    assert good["kid_digits"] < bad["kid_digits"] / 5
    assert good["is_digits"] > 3 * bad["is_digits"]  # about 9 vs 2.4
    assert good["precision_digits"] > 0.6 and good["recall_digits"] > 0.6  # about 0.75 each
    assert bad["precision_digits"] < 0.3 and bad["recall_digits"] < 0.1
    assert set(compute_metrics(Features.cat([extractor(held_out)]), reference, ["fid"])) == {
        "fid_digits"
    }
