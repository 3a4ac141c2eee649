"""Precision/recall by Kynkäänniemi et al.'s protocol: random subsets of the asked sizes, never a
prefix in dataset order, from a reference cache that is extended rather than truncated."""

import numpy as np
import pytest
import torch
from torch.utils.data import TensorDataset

import diffusion_lab.metrics.prc as prc_module
from diffusion_lab.errors import ConfigError
from diffusion_lab.metrics import (
    FeatureExtractor,
    Features,
    PRCSettings,
    ReferenceStats,
    compute_metrics,
    random_subset,
    reference_stats,
    subset_precision_recall,
)


class Identity(FeatureExtractor):
    """A stand-in feature network: an "image" [N, D, 1, 1] is its own feature vector. Counts the
    images it sees."""

    name = "identity"

    def __init__(self, num_features: int):
        super().__init__()
        self.num_features = num_features
        self.images_seen = 0

    def forward(self, images):
        self.images_seen += len(images)
        x = images.flatten(1).float()
        return Features(features=x, logits=x[:, :1])


def as_images(features: torch.Tensor) -> TensorDataset:
    return TensorDataset(features[:, :, None, None])


def class_sorted_blobs(per_class: int, classes: int = 4, seed: int = 0) -> torch.Tensor:
    """2-d features [classes * per_class, 2], class after class: Gaussian blobs 10 apart."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(classes, 2, generator=g) * 10
    return torch.cat([c + torch.randn(per_class, 2, generator=g) for c in centres])


def test_balanced_reference_images_score_perfect_against_a_class_sorted_set(tmp_path):
    real = class_sorted_blobs(500)  # 2,000 features, sorted by class
    reference = reference_stats("blobs", as_images(real), Identity(2), tmp_path)
    balanced = torch.cat([real[c * 500 : c * 500 + 100] for c in range(4)])  # 100 per class
    settings = PRCSettings(num_reference=1000, num_generated=400)
    scores = compute_metrics(
        Features(balanced, balanced[:, :1]), reference, ["precision", "recall"], settings
    )
    # The samples are reference images: each lies in its own k-NN ball when the random half of
    # the split holds it, else close to a neighbour's; the half holds every class, so each blob
    # is covered (about 0.98 each). The first 1,000 in dataset order hold classes 0 and 1 only:
    # precision 0.5.
    assert scores["precision_identity"] >= 0.95 and scores["recall_identity"] >= 0.95


def test_asked_sizes_are_the_sizes_compared(tmp_path, monkeypatch):
    g = torch.Generator().manual_seed(1)
    real, generated = torch.randn(25_000, 4, generator=g), torch.randn(30_000, 4, generator=g)
    reference = reference_stats(
        "gauss", as_images(real), Identity(4), tmp_path, num_pr_features=20_000, pr_seed=7
    )
    compared = []

    def spy(generated, real, k):  # the k-NN part is torch-fidelity's, tested elsewhere
        compared.append((generated, real, k))
        return 0.25, 0.75

    monkeypatch.setattr(prc_module, "precision_recall", spy)
    settings = PRCSettings(num_reference=20_000, num_generated=20_000, k=5, seed=7)
    result = subset_precision_recall(generated, reference, settings)
    assert result.compared == settings
    assert (result.precision, result.recall) == (0.25, 0.75)
    [(gen, ref, k)] = compared
    assert k == 5
    torch.testing.assert_close(ref, real[random_subset(25_000, 20_000, 7)], rtol=0, atol=0)
    torch.testing.assert_close(gen, generated[random_subset(30_000, 20_000, 7)], rtol=0, atol=0)
    assert not torch.equal(gen, generated[:20_000])  # a random subset, not the first rows

    settings = PRCSettings(num_reference=20_000, num_generated=50_000, seed=7)
    assert subset_precision_recall(generated, reference, settings).compared.num_generated == 30_000
    with pytest.raises(ValueError, match="needs 25000 reference features"):  # not truncated
        subset_precision_recall(generated, reference, PRCSettings(seed=7))


def test_a_cache_with_fewer_reference_features_is_extended_not_truncated(tmp_path):
    real = torch.randn(3000, 4, generator=torch.Generator().manual_seed(2))
    extractor = Identity(4)
    small = reference_stats("x", as_images(real), extractor, tmp_path, num_pr_features=500)
    assert extractor.images_seen == 3000 and len(small.features) == 500

    large = reference_stats("x", as_images(real), extractor, tmp_path, num_pr_features=2000)
    assert extractor.images_seen == 3000 + 1500  # only the images the cache lacks are read
    expected = real[random_subset(3000, 2000, 0)].numpy()
    np.testing.assert_array_equal(large.features, expected)  # in subset order
    np.testing.assert_array_equal(large.sigma, small.sigma)
    assert len(ReferenceStats.load(tmp_path / "x.npz").features) == 2000  # and saved

    reseeded = reference_stats("x", as_images(real), extractor, tmp_path, pr_seed=1)
    assert extractor.images_seen == 4500 + 3000  # another seed's subset: all of it read again
    np.testing.assert_array_equal(reseeded.features, real[random_subset(3000, 3000, 1)].numpy())


def test_a_smaller_subset_of_a_seed_is_the_start_of_a_larger_one():
    assert torch.equal(random_subset(1000, 300, 3), random_subset(1000, 600, 3)[:300])
    assert sorted(random_subset(50, 50, 3).tolist()) == list(range(50))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"k": 0}, "metrics.prc.k=0 must be an integer >= 1"),
        ({"num_reference": 2.5}, "metrics.prc.num_reference=2.5 must be an integer >= 1"),
        ({"seed": -1}, "metrics.prc.seed=-1 must be an integer >= 0"),
        ({"neighbours": 3}, "metrics.prc.neighbours is not an option; allowed: num_reference"),
    ],
)
def test_bad_settings_name_the_key(options, message):
    with pytest.raises(ConfigError, match=message):
        PRCSettings.from_config(options, "metrics.prc")


def test_k_needs_more_features_on_each_side(tmp_path):
    reference = reference_stats("few", as_images(torch.randn(3, 2)), Identity(2), tmp_path)
    with pytest.raises(ConfigError, match="k=3 needs more than 3 features on each side"):
        subset_precision_recall(torch.randn(10, 2), reference, PRCSettings())


@pytest.mark.parametrize(("generated", "warned"), [(10, True), (40, False)])
def test_fid_on_fewer_samples_than_dimensions_warns_with_the_numbers(
    tmp_path, caplog, generated, warned
):
    reference = reference_stats("d16", as_images(torch.randn(50, 16)), Identity(16), tmp_path)
    features = torch.randn(generated, 16)
    compute_metrics(Features(features, features[:, :1]), reference, ["fid"])
    found = "10 generated and 50 reference features of 16 dimensions" in caplog.text
    assert found == warned and ("fewer samples than dimensions" in caplog.text) == warned
