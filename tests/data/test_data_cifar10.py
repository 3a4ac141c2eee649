"""CIFAR10DataModule on a fake cifar-10-batches-py: range, flips for training only, missing data."""

import time

import fakedata
import pytest
import torch
from torchvision.datasets import CIFAR10

from diffusion_lab.data import CIFAR10DataModule
from diffusion_lab.errors import ConfigError, DataNotFoundError


@pytest.fixture
def cifar(tmp_path, monkeypatch) -> CIFAR10DataModule:
    fakedata.bypass_integrity_checks(monkeypatch)
    fakedata.make_fake_cifar10(tmp_path, n_train=20, n_test=10)
    dm = CIFAR10DataModule(root=tmp_path, batch_size=8)
    dm.prepare_data()
    dm.setup("fit")
    return dm


def as_signed(pixels) -> torch.Tensor:
    """HWC uint8 -> CHW float in [-1, 1], computed independently of the datamodule."""
    return torch.from_numpy(pixels).permute(2, 0, 1).float().div(255) * 2 - 1


def test_batches_have_the_documented_shape_range_and_dtypes(cifar):
    x, y = next(iter(cifar.train_dataloader()))
    assert x.shape == (8, 3, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.int64
    images = torch.stack([cifar.val_set[i][0] for i in range(len(cifar.val_set))])
    assert images.min() == -1 and images.max() == 1
    assert (len(cifar.train_set), len(cifar.val_set)) == (20, 10)
    assert (cifar.image_size, cifar.channels, cifar.num_classes) == (32, 3, 10)


def test_only_training_images_are_flipped(cifar):
    torch.manual_seed(0)
    image = as_signed(cifar.train_set.data[3])
    draws = [cifar.train_set[3][0] for _ in range(30)]
    assert all(torch.equal(d, image) or torch.equal(d, image.flip(-1)) for d in draws)
    assert any(torch.equal(d, image) for d in draws)
    assert any(torch.equal(d, image.flip(-1)) for d in draws)
    test_image = as_signed(cifar.val_set.data[3])
    assert all(torch.equal(cifar.val_set[3][0], test_image) for _ in range(10))
    reference = cifar.reference_dataset("train")
    assert all(torch.equal(reference[3][0], image) for _ in range(10))
    assert len(cifar.reference_dataset("test")) == 10


def test_missing_data_names_the_folder_fast_and_downloads_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(CIFAR10, "download", lambda self: pytest.fail("download called"))
    dm = CIFAR10DataModule(root=tmp_path / "nowhere")
    start = time.perf_counter()
    dm.prepare_data()
    with pytest.raises(DataNotFoundError) as info:
        dm.setup("fit")
    assert time.perf_counter() - start < 1
    message = str(info.value)
    assert str(tmp_path / "nowhere" / "cifar-10-batches-py") in message
    assert "data.download=true" in message and "\n" not in message


def test_download_true_fetches_missing_data(tmp_path, monkeypatch):
    fakedata.bypass_integrity_checks(monkeypatch)
    monkeypatch.setattr(CIFAR10, "download", lambda self: fakedata.make_fake_cifar10(self.root))
    dm = CIFAR10DataModule(root=tmp_path, download=True)
    dm.prepare_data()
    dm.setup("fit")
    assert len(dm.train_set) == 20


def test_failed_download_is_one_line_naming_the_folder(tmp_path, monkeypatch):
    def offline(self):
        raise RuntimeError("Error downloading\nTried mirror, got: no network")

    monkeypatch.setattr(CIFAR10, "download", offline)
    with pytest.raises(DataNotFoundError, match="could not download") as info:
        CIFAR10DataModule(root=tmp_path, download=True).prepare_data()
    assert str(tmp_path) in str(info.value) and "\n" not in str(info.value)


def test_checksum_failure_is_a_data_error(tmp_path):
    fakedata.make_fake_cifar10(tmp_path)  # fake files: torchvision's MD5 check fails
    with pytest.raises(DataNotFoundError, match="checksum"):
        CIFAR10DataModule(root=tmp_path).setup("fit")


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [({"channels": 1}, "data.channels"), ({"image_size": 64}, "data.image_size")],
)
def test_bad_values_name_their_key(tmp_path, kwargs, key):
    with pytest.raises(ConfigError, match=key):
        CIFAR10DataModule(root=tmp_path, **kwargs)
