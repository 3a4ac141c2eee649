"""ImageFolderDataModule: flat or class folders, resize + centre crop, bad files, seeded split."""

import logging
import pickle
import time

import fakedata
import numpy as np
import pytest
import torch
from PIL import Image

from diffusion_lab.data import ImageFolderDataModule
from diffusion_lab.errors import ConfigError, DataNotFoundError, LabError

CLASSES = ("bird", "cat", "dog")


def setup_folder(root, **kwargs) -> ImageFolderDataModule:
    dm = ImageFolderDataModule(root=root, **{"image_size": 16, "batch_size": 4, **kwargs})
    dm.setup("fit")
    return dm


def test_class_folders_give_labels_found_recursively(tmp_path):
    fakedata.make_fake_image_folder(tmp_path, classes=CLASSES, n_per_class=6)
    dm = setup_folder(tmp_path, num_classes=3, val_fraction=0.2)
    assert (len(dm.train_set), len(dm.val_set)) == (14, 4)  # nested/ images included
    files = dm.train_set.files + dm.val_set.files
    labels = dm.train_set.labels + dm.val_set.labels
    folders = [f.relative_to(tmp_path).parts[0] for f in files]
    assert folders == [CLASSES[y] for y in labels]
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (4, 3, 16, 16) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert (dm.image_size, dm.channels, dm.num_classes) == (16, 3, 3)


def test_flat_folder_gives_zero_labels(tmp_path):
    fakedata.make_fake_image_folder(tmp_path, classes=None, n_per_class=10)
    dm = setup_folder(tmp_path, val_fraction=0.2, channels=1)
    assert (len(dm.train_set), len(dm.val_set)) == (8, 2)
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (4, 1, 16, 16) and (y == 0).all()
    with pytest.raises(ConfigError, match="data.num_classes"):
        setup_folder(tmp_path, num_classes=1)


def test_wrong_num_classes_is_a_config_error(tmp_path):
    fakedata.make_fake_image_folder(tmp_path, classes=CLASSES, n_per_class=2)
    with pytest.raises(ConfigError, match="data.num_classes=3"):
        setup_folder(tmp_path, num_classes=2)


def test_values_reach_both_ends_when_no_resampling_is_needed(tmp_path):
    fakedata.make_fake_image_folder(tmp_path, classes=None, n_per_class=4, size=(16, 16))
    images = [x for x, _ in setup_folder(tmp_path, val_fraction=0.25).reference_dataset("train")]
    assert min(x.min() for x in images) == -1 and max(x.max() for x in images) == 1


def test_shorter_side_is_resized_then_centre_cropped(tmp_path):
    pixels = np.zeros((32, 96, 3), dtype=np.uint8)  # 96 wide, 32 high, white centre 48 wide
    pixels[:, 24:72] = 255
    for name in ("a.png", "b.png"):
        Image.fromarray(pixels).save(tmp_path / name)
    image = setup_folder(tmp_path, val_fraction=0.5).reference_dataset("train")[0][0]
    # 96x32 -> 48x16 -> centre 16x16 = the middle third, all white; squashing would show black
    assert image.shape == (3, 16, 16) and (image == 1).all()


def test_only_training_images_are_flipped(tmp_path):
    fakedata.make_fake_image_folder(tmp_path, classes=None, n_per_class=4, size=(16, 16))
    dm = setup_folder(tmp_path, val_fraction=0.5)
    pixels = np.asarray(Image.open(dm.train_set.files[0]).convert("RGB"))
    image = torch.from_numpy(pixels).permute(2, 0, 1).float().div(255) * 2 - 1
    torch.manual_seed(0)
    draws = [dm.train_set[0][0] for _ in range(20)]
    assert all(torch.equal(d, image) or torch.equal(d, image.flip(-1)) for d in draws)
    assert any(torch.equal(d, image.flip(-1)) for d in draws)
    assert all(torch.equal(dm.reference_dataset("train")[0][0], image) for _ in range(10))
    assert all(torch.equal(x, dm.val_set[0][0]) for x in (dm.val_set[0][0] for _ in range(10)))
    pickle.dumps(dm.train_set)  # loader workers started by spawn need picklable datasets


def test_split_is_seeded(tmp_path):
    fakedata.make_fake_image_folder(tmp_path, classes=CLASSES, n_per_class=6)
    a, b, c = (setup_folder(tmp_path, val_fraction=0.2, seed=s).val_set.files for s in (0, 0, 1))
    assert a == b and a != c


def write_bad_images(root):
    (root / "cat" / "broken.png").write_bytes(b"not an image at all")
    good = (root / "cat" / "img_000.png").read_bytes()
    (root / "dog" / "truncated.png").write_bytes(good[:40])


def test_unreadable_images_are_skipped_and_counted(tmp_path, caplog):
    fakedata.make_fake_image_folder(tmp_path, classes=("cat", "dog"), n_per_class=4)
    write_bad_images(tmp_path)
    with caplog.at_level(logging.WARNING, logger="diffusion_lab.data.folder"):
        dm = setup_folder(tmp_path, val_fraction=0.25)
    assert len(dm.train_set) + len(dm.val_set) == 8
    assert "skipped 2 unreadable image(s)" in caplog.text
    assert str(tmp_path / "cat" / "broken.png") in caplog.text


def test_unreadable_image_is_an_error_naming_the_file_if_asked(tmp_path):
    fakedata.make_fake_image_folder(tmp_path, classes=("cat", "dog"), n_per_class=4)
    write_bad_images(tmp_path)
    with pytest.raises(LabError, match="on_bad_image=skip") as info:
        setup_folder(tmp_path, on_bad_image="error")
    assert str(tmp_path / "cat" / "broken.png") in str(info.value)


def test_missing_or_empty_folder_names_the_path_fast(tmp_path):
    start = time.perf_counter()
    with pytest.raises(DataNotFoundError, match=str(tmp_path / "nowhere")):
        setup_folder(tmp_path / "nowhere")
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "notes.txt").write_text("no images here")
    with pytest.raises(DataNotFoundError, match=str(tmp_path / "empty")):
        setup_folder(tmp_path / "empty")
    assert time.perf_counter() - start < 1


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"channels": 4}, "data.channels"),
        ({"on_bad_image": "ignore"}, "data.on_bad_image"),
        ({"val_fraction": 0}, "data.val_fraction"),
        ({"image_size": 0}, "data.image_size"),
    ],
)
def test_bad_values_name_their_key(tmp_path, kwargs, key):
    with pytest.raises(ConfigError, match=key):
        ImageFolderDataModule(root=tmp_path, **kwargs)


def test_loader_settings_reach_the_dataloader(tmp_path):
    fakedata.make_fake_image_folder(tmp_path, classes=None, n_per_class=8, size=(16, 16))
    dm = setup_folder(tmp_path, num_workers=1, persistent_workers=True, pin_memory=True)
    loader = dm.train_dataloader()
    assert (loader.num_workers, loader.persistent_workers, loader.batch_size) == (1, True, 4)
    assert loader.pin_memory == torch.cuda.is_available()  # pinning needs CUDA
    assert sum(len(y) for _, y in loader) == len(dm.train_set)
    assert not setup_folder(tmp_path, persistent_workers=True).val_dataloader().persistent_workers
