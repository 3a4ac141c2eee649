"""FashionMNISTDataModule: raw or Debian-gzipped idx files, padding to 32 with -1, missing data."""

import time
from pathlib import Path

import fakedata
import pytest
import torch
from torchvision.datasets import FashionMNIST

from diffusion_lab.data import FashionMNISTDataModule
from diffusion_lab.errors import ConfigError, DataNotFoundError

DEBIAN = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture(autouse=True)
def no_debian_copy(tmp_path, monkeypatch):
    """Tests see no Debian package unless they ask; and nothing downloads."""
    monkeypatch.setattr(FashionMNISTDataModule, "debian_dir", tmp_path / "no-debian")
    monkeypatch.setattr(FashionMNIST, "download", lambda self: pytest.fail("download called"))


def setup_fashion(root: Path) -> FashionMNISTDataModule:
    dm = FashionMNISTDataModule(root=root, batch_size=4)
    dm.prepare_data()
    dm.setup("fit")
    return dm


def test_images_are_padded_to_32_with_background(tmp_path):
    dm = setup_fashion(fakedata.make_fake_fashion_mnist(tmp_path, n_train=20, n_test=10))
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (4, 1, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.int64
    images = torch.stack([dm.val_set[i][0] for i in range(len(dm.val_set))])
    border = torch.ones(32, 32, dtype=torch.bool)
    border[2:30, 2:30] = False
    assert (images[:, :, border] == -1).all()
    assert images.min() == -1 and images.max() == 1
    assert (len(dm.train_set), len(dm.val_set)) == (20, 10)
    assert len(dm.reference_dataset("test")) == 10
    assert (dm.image_size, dm.channels, dm.num_classes) == (32, 1, 10)


def test_gzipped_files_in_the_debian_folder_are_unpacked_into_root(tmp_path, monkeypatch):
    debian = fakedata.make_fake_fashion_mnist(tmp_path / "debian", n_train=20, gzipped=True)
    monkeypatch.setattr(FashionMNISTDataModule, "debian_dir", debian)
    dm = setup_fashion(tmp_path / "root")
    assert (tmp_path / "root" / "FashionMNIST" / "raw" / "train-images-idx3-ubyte").is_file()
    assert len(dm.train_set) == 20 and dm.train_set[0][0].shape == (1, 32, 32)


def test_missing_data_names_the_folders_fast_and_downloads_nothing(tmp_path):
    dm = FashionMNISTDataModule(root=tmp_path / "nowhere")
    start = time.perf_counter()
    with pytest.raises(DataNotFoundError) as info:
        dm.prepare_data()
    assert time.perf_counter() - start < 1
    message = str(info.value)
    assert str(tmp_path / "nowhere" / "FashionMNIST" / "raw") in message
    assert "dataset-fashion-mnist" in message and "\n" not in message


def test_image_size_other_than_32_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="data.image_size"):
        FashionMNISTDataModule(root=tmp_path, image_size=28)


@pytest.mark.skipif(not DEBIAN.is_dir(), reason="Debian's dataset-fashion-mnist is not installed")
def test_debian_package_gives_the_real_dataset(tmp_path, monkeypatch):
    monkeypatch.setattr(FashionMNISTDataModule, "debian_dir", DEBIAN)
    dm = setup_fashion(tmp_path)
    assert (len(dm.train_set), len(dm.val_set)) == (60000, 10000)
    x, y = next(iter(dm.val_dataloader()))
    assert x.shape == (4, 1, 32, 32) and x.min() == -1 and x.max() <= 1
    assert y.tolist() == [9, 2, 1, 1]  # the first four test labels of Fashion-MNIST
