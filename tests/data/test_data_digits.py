"""DigitsDataModule: scikit-learn's 8x8 digits in [-1, 1], with a seeded validation split."""

import pytest
import torch
from sklearn.datasets import load_digits

from diffusion_lab.data import DigitsDataModule
from diffusion_lab.errors import ConfigError


def setup_digits(**kwargs) -> DigitsDataModule:
    dm = DigitsDataModule(**kwargs)
    dm.setup("fit")
    return dm


def test_batches_are_scaled_images_with_long_labels():
    dm = setup_digits(batch_size=32)
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (32, 1, 8, 8) and x.dtype == torch.float32
    assert y.shape == (32,) and y.dtype == torch.int64
    images = dm.train_set.tensors[0]
    assert images.min() == -1 and images.max() == 1  # pixel values 0 and 16 both occur
    assert set(dm.train_set.tensors[1].tolist()) == set(range(10))
    assert (dm.image_size, dm.channels, dm.num_classes) == (8, 1, 10)


def test_values_keep_the_seventeen_grey_levels():
    levels = torch.unique(setup_digits().train_set.tensors[0])
    assert torch.equal(levels, torch.arange(17) / 8 - 1)


def test_validation_split_is_ten_percent_and_seeded():
    a, b, other = setup_digits(seed=0), setup_digits(seed=0), setup_digits(seed=1)
    assert (len(a.train_set), len(a.val_set)) == (1617, 180)
    assert torch.equal(a.val_set.tensors[0], b.val_set.tensors[0])
    assert not torch.equal(a.val_set.tensors[0], other.val_set.tensors[0])
    # train and validation partition the 1,797 images: same labels and pixel mass as the whole
    digits = load_digits()
    labels = torch.cat([a.train_set.tensors[1], a.val_set.tensors[1]])
    assert torch.equal(labels.bincount(), torch.from_numpy(digits.target).bincount())
    pixels = torch.cat([a.train_set.tensors[0], a.val_set.tensors[0]])
    assert (pixels + 1).sum().item() * 8 == pytest.approx(digits.images.sum())


def test_reference_splits_are_the_unaugmented_train_and_held_out_sets():
    dm = setup_digits()
    assert dm.reference_dataset("train") is dm.train_set
    assert dm.reference_dataset("test") is dm.val_set
    with pytest.raises(ConfigError, match="valid"):
        dm.reference_dataset("valid")


@pytest.mark.parametrize("size", [16, 22])  # at 22, unclamped bilinear overshoots by 1 ulp
def test_upsampling_stays_in_range(size):
    images = setup_digits(image_size=size).train_set.tensors[0]
    assert images.shape[1:] == (1, size, size)
    assert images.min() == -1 and images.max() == 1


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"channels": 3}, "data.channels"),
        ({"num_classes": None}, "data.num_classes"),
        ({"image_size": 4}, "data.image_size"),
        ({"val_fraction": 1.0}, "data.val_fraction"),
        ({"batch_size": 0}, "data.batch_size"),
    ],
)
def test_bad_values_name_their_key(kwargs, key):
    with pytest.raises(ConfigError, match=key):
        DigitsDataModule(**kwargs)
