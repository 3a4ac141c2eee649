"""The reference-statistics cache key: whatever decides the features is in it, so the cache never
answers for other data, other preprocessing or another feature network; unchanged data hits it."""

import builtins
import logging
import os

import fakedata
import numpy as np
import pytest
import torch
from PIL import Image

import diffusion_lab.evaluation.reference as reference_module
import diffusion_lab.metrics.small_nets as small_nets
from diffusion_lab.data import (
    CelebADataModule,
    CIFAR10DataModule,
    DigitsDataModule,
    FashionMNISTDataModule,
    ImageFolderDataModule,
)
from diffusion_lab.evaluation import cache_name, reference_for, reference_key
from diffusion_lab.metrics import FeatureExtractor, Features, build_feature_extractor, to_uint8


class PixelStats(FeatureExtractor):
    """A stand-in feature network for any channel count: each image's pixel mean, std, min and
    max (0..255). Counts its calls."""

    name = "pixelstats"
    num_features = 4

    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, images):
        self.calls += 1
        x = to_uint8(images).flatten(1).float()
        features = torch.stack([x.mean(1), x.std(1), x.amin(1), x.amax(1)], 1)
        return Features(features=features, logits=features)


def make_folder(root, n_per_class=6):
    return fakedata.make_fake_image_folder(root, classes=("a", "b"), n_per_class=n_per_class)


def folder(root, **kwargs) -> ImageFolderDataModule:
    return ImageFolderDataModule(root=root, image_size=8, val_fraction=0.25, **kwargs)


def test_an_unchanged_dataset_hits_the_cache_without_reading_an_image(tmp_path, monkeypatch):
    root, extractor = make_folder(tmp_path / "images"), PixelStats()
    first = reference_for(folder(root), "train", extractor, tmp_path / "cache")
    calls = extractor.calls
    assert calls > 0 and first.num_samples == 9
    [path] = (tmp_path / "cache").iterdir()
    assert path.name == f"{cache_name(folder(root), 'train', 'pixelstats')}.npz"
    assert path.name.startswith("imagefolder-train-8-pixelstats-")

    def no_reading(*args, **kwargs):
        raise AssertionError("the cache key is computed from file stats, without reading")

    with monkeypatch.context() as patched:
        patched.setattr(builtins, "open", no_reading)
        patched.setattr(Image, "open", no_reading)
        key = reference_key(folder(root), "train")
    assert (
        key | {"features": "pixelstats", "weights_sha256": extractor.weights_sha256()} == first.key
    )
    monkeypatch.setattr(Image, "open", no_reading)  # a hit opens no image, not even to verify it
    again = reference_for(folder(root), "train", extractor, tmp_path / "cache")
    assert extractor.calls == calls
    np.testing.assert_array_equal(again.sigma, first.sigma)
    assert again.key == first.key


def test_other_channels_are_another_cache_entry_with_other_statistics(tmp_path):
    root, extractor = make_folder(tmp_path / "images"), PixelStats()
    rgb = reference_for(folder(root), "train", extractor, tmp_path / "cache")
    calls = extractor.calls
    grey = reference_for(folder(root, channels=1), "train", extractor, tmp_path / "cache")
    assert extractor.calls > calls
    assert grey.key["channels"] == 1 and rgb.key["channels"] == 3
    assert grey.name != rgb.name and len(list((tmp_path / "cache").iterdir())) == 2
    assert not np.allclose(grey.mu, rgb.mu)  # grey pixels spread less than RGB ones


def test_an_added_image_makes_the_cache_stale_in_one_log_line(tmp_path, caplog):
    root, extractor = make_folder(tmp_path / "images"), PixelStats()
    before = reference_for(folder(root), "train", extractor, tmp_path / "cache")
    Image.fromarray(np.full((30, 40, 3), 7, np.uint8)).save(root / "a" / "added.png")
    with caplog.at_level(logging.WARNING):
        after = reference_for(folder(root), "train", extractor, tmp_path / "cache")
    [line] = [r.getMessage() for r in caplog.records if "stale" in r.getMessage()]
    assert "files_sha256, num_files changed" in line and "recomputing" in line
    assert after.name == before.name  # the same entry, rewritten
    assert (before.key["num_files"], after.key["num_files"]) == (12, 13)
    assert (before.num_samples, after.num_samples) == (9, 10)


def test_a_replaced_image_gives_a_new_key_and_new_statistics(tmp_path):
    root, extractor = make_folder(tmp_path / "images"), PixelStats()
    before = reference_for(folder(root), "train", extractor, tmp_path / "cache")
    calls = extractor.calls
    image = folder(root).reference_dataset("train").files[0]
    modified = image.stat().st_mtime_ns
    Image.fromarray(np.full((30, 40, 3), 7, np.uint8)).save(image)
    # as a copy made a second later would be: file systems may keep timestamps coarser than
    # this test is fast
    os.utime(image, ns=(modified + 10**9, modified + 10**9))
    after = reference_for(folder(root), "train", extractor, tmp_path / "cache")
    assert extractor.calls > calls
    assert after.key["files_sha256"] != before.key["files_sha256"]
    assert after.num_samples == before.num_samples
    assert not np.allclose(after.mu, before.mu)


def test_other_feature_weights_give_a_new_key_and_new_statistics(tmp_path, monkeypatch):
    root = make_folder(tmp_path / "images")
    data = folder(root, channels=1)  # the digits net reads 1x8x8 images
    shipped = build_feature_extractor("digits")
    before = reference_for(data, "train", shipped, tmp_path / "cache")

    state = torch.load(small_nets.WEIGHTS_DIR / "digits.pt", weights_only=True)
    state["hidden.bias"] = state["hidden.bias"] + 1.0
    (tmp_path / "weights").mkdir()
    torch.save(state, tmp_path / "weights" / "digits.pt")
    monkeypatch.setattr(small_nets, "WEIGHTS_DIR", tmp_path / "weights")
    retrained = build_feature_extractor("digits")
    after = reference_for(data, "train", retrained, tmp_path / "cache")
    assert after.key["weights_sha256"] != before.key["weights_sha256"]
    assert after.name == before.name and not np.allclose(after.mu, before.mu)


@pytest.mark.parametrize(
    ("make", "datamodule", "touched"),
    [
        (fakedata.make_fake_cifar10, CIFAR10DataModule, "cifar-10-batches-py/test_batch"),
        (
            fakedata.make_fake_fashion_mnist,
            FashionMNISTDataModule,
            "FashionMNIST/raw/t10k-images-idx3-ubyte",
        ),
        (fakedata.make_fake_celeba, CelebADataModule, "celeba/img_align_celeba/000012.jpg"),
    ],
)
def test_a_touched_file_of_a_fixed_dataset_changes_its_key(tmp_path, make, datamodule, touched):
    root = make(tmp_path)
    before = reference_key(datamodule(root=root), "test")
    stamp = (tmp_path / touched).stat().st_mtime_ns + 10**9
    os.utime(tmp_path / touched, ns=(stamp, stamp))
    after = reference_key(datamodule(root=root), "test")
    assert after["files_sha256"] != before["files_sha256"]
    assert after["root"] == str(tmp_path.resolve())


def test_the_digits_key_stats_the_file_inside_scikit_learn():
    key = reference_key(DigitsDataModule(), "test")
    [path] = DigitsDataModule().reference_files("test")
    assert path.is_file() and path.name == "digits.csv.gz" and key["num_files"] == 1
    assert reference_key(DigitsDataModule(seed=1), "test")["seed"] == 1


def test_a_cache_file_of_another_layout_is_recomputed(tmp_path, caplog):
    root, extractor = make_folder(tmp_path / "images"), PixelStats()
    path = tmp_path / "cache" / f"{cache_name(folder(root), 'train', 'pixelstats')}.npz"
    path.parent.mkdir()
    # what the lab wrote before keys were stored: statistics of other data, unchecked
    np.savez(path, dataset_key="x", extractor="pixelstats", num_samples=38, mu=np.zeros(4),
             sigma=np.eye(4), features=np.zeros((38, 4), np.float32))  # fmt: skip
    with caplog.at_level(logging.WARNING):
        reference = reference_for(folder(root), "train", extractor, tmp_path / "cache")
    assert reference.num_samples == 9 and extractor.calls > 0
    assert any("written by another version" in r.getMessage() for r in caplog.records)


def test_a_new_preprocessing_version_is_another_cache_entry(tmp_path, monkeypatch):
    data = folder(make_folder(tmp_path / "images"))
    before = cache_name(data, "train", "pixelstats")
    monkeypatch.setattr(reference_module, "PREPROCESSING_VERSION", 2)
    assert cache_name(data, "train", "pixelstats") != before
    assert reference_key(data, "train")["preprocessing"] == 2
