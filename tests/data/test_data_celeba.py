"""CelebADataModule on a fake celeba/: DDIM's crop box, resize to 64, flips, zero labels."""

import pickle
import time

import fakedata
import pytest
import torch
from torchvision.datasets import CelebA

from diffusion_lab.data import CelebADataModule
from diffusion_lab.errors import ConfigError, DataNotFoundError


@pytest.fixture
def celeba(tmp_path, monkeypatch) -> CelebADataModule:
    fakedata.bypass_integrity_checks(monkeypatch)
    fakedata.make_fake_celeba(tmp_path, n=12)
    dm = CelebADataModule(root=tmp_path, batch_size=4)
    dm.prepare_data()
    dm.setup("fit")
    return dm


def looks_unflipped(image: torch.Tensor) -> bool:
    """The fake face box is white on its left half, black on its right (grey all around it)."""
    return bool((image[:, :, :28] > 0.8).all() and (image[:, :, 36:] < -0.8).all())


def test_batches_are_64px_faces_with_zero_labels(celeba):
    x, y = next(iter(celeba.train_dataloader()))
    assert x.shape == (4, 3, 64, 64) and x.dtype == torch.float32
    assert y.dtype == torch.int64 and (y == 0).all()
    assert x.min() >= -1 and x.max() <= 1
    assert (celeba.image_size, celeba.channels, celeba.num_classes) == (64, 3, None)
    # the partition file's splits: 8 train, 2 valid (validation), 2 test (reference "test")
    assert (len(celeba.train_set), len(celeba.val_set)) == (8, 2)
    assert len(celeba.reference_dataset("test")) == 2


def test_crop_is_ddims_face_box(celeba):
    # a centre crop of 140 or 128, or no crop at all, would bring the grey surround into view
    image = celeba.reference_dataset("train")[0][0]
    assert looks_unflipped(image)
    assert image.min() == -1 and image.max() == 1


def test_only_training_images_are_flipped(celeba):
    torch.manual_seed(0)
    draws = [celeba.train_set[0][0] for _ in range(20)]
    unflipped = [looks_unflipped(d) for d in draws]
    assert any(unflipped) and not all(unflipped)
    assert all(looks_unflipped(d.flip(-1)) for d, u in zip(draws, unflipped, strict=True) if not u)
    assert all(looks_unflipped(celeba.val_set[0][0]) for _ in range(10))
    assert all(looks_unflipped(celeba.reference_dataset("train")[0][0]) for _ in range(10))


def test_image_size_sets_the_resize(tmp_path, monkeypatch):
    fakedata.bypass_integrity_checks(monkeypatch)
    fakedata.make_fake_celeba(tmp_path, n=6)
    dm = CelebADataModule(root=tmp_path, image_size=16)
    dm.setup("fit")
    assert dm.train_set[0][0].shape == (3, 16, 16)
    pickle.dumps(dm.train_set)  # loader workers started by spawn need picklable datasets


def test_missing_data_names_the_folder_fast_and_downloads_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(CelebA, "download", lambda self: pytest.fail("download called"))
    dm = CelebADataModule(root=tmp_path)
    start = time.perf_counter()
    dm.prepare_data()
    with pytest.raises(DataNotFoundError) as info:
        dm.setup("fit")
    assert time.perf_counter() - start < 1
    assert str(tmp_path / "celeba") in str(info.value) and "\n" not in str(info.value)


def test_failed_download_is_one_line(tmp_path, monkeypatch):
    def offline(self):
        raise RuntimeError("gdown missing\nsecond line")

    monkeypatch.setattr(CelebA, "download", offline)
    with pytest.raises(DataNotFoundError, match="could not download CelebA") as info:
        CelebADataModule(root=tmp_path, download=True).prepare_data()
    assert "\n" not in str(info.value)


def test_checksum_failure_is_a_data_error(tmp_path):
    fakedata.make_fake_celeba(tmp_path, n=6)  # fake annotation files fail torchvision's MD5 check
    with pytest.raises(DataNotFoundError, match="checksum"):
        CelebADataModule(root=tmp_path).setup("fit")


def test_labels_are_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="data.num_classes"):
        CelebADataModule(root=tmp_path, num_classes=40)
