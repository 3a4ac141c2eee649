"""Captioned datasets: batches of (images, labels, captions), captions that name what the
transform did, fixed per (seed, index); image folders with metadata.jsonl or .txt captions."""

import itertools
import json

import numpy as np
import pytest
import torch
from fakedata import make_fake_fashion_mnist
from PIL import Image

from diffusion_lab.data import (
    CaptionedImageFolderDataModule,
    DigitsCaptionsDataModule,
    FashionMNISTCaptionsDataModule,
)
from diffusion_lab.data.attributes import VALUES, Attributes, Layout
from diffusion_lab.data.captions import DIGIT_NOUNS, FASHION_NOUNS, TEMPLATES, CaptionSpec
from diffusion_lab.errors import ConfigError, DataNotFoundError, LabError


def test_digits_batches_carry_captions():
    dm = DigitsCaptionsDataModule(batch_size=8)
    dm.setup()
    images, labels, captions = next(iter(dm.train_dataloader()))
    assert images.shape == (8, 3, 16, 16) and images.min() >= -1 and images.max() <= 1
    assert labels.dtype == torch.long and len(captions) == 8
    assert all(isinstance(c, str) and c for c in captions)
    for label, caption in zip(labels.tolist(), captions, strict=True):
        assert dm.spec.parse(caption)[0] == label


def test_captions_are_fixed_by_seed_and_index():
    first = DigitsCaptionsDataModule(seed=0).dataset("test", augment=False)
    again = DigitsCaptionsDataModule(seed=0).dataset("test", augment=False)
    other = DigitsCaptionsDataModule(seed=1).dataset("test", augment=False)
    assert [first.describe(i) for i in range(20)] == [again.describe(i) for i in range(20)]
    assert torch.equal(first[5][0], again[5][0])
    assert [first.describe(i)[1] for i in range(20)] != [other.describe(i)[1] for i in range(20)]


def test_every_template_and_synonym_parses_back():
    """Exhaustively: each class name, attribute value and template reads back as written."""
    for nouns in (DIGIT_NOUNS, FASHION_NOUNS):
        spec = CaptionSpec(nouns, ("colour", "position", "size"), Layout(32, 10, 16))
        for label, values in itertools.product(range(10), itertools.product(*VALUES.values())):
            attributes = Attributes(*values)
            for seed in range(12):  # enough draws to reach every template and most synonyms
                caption = spec.describe(label, attributes, np.random.default_rng(seed))
                assert spec.parse(caption) == (label, attributes), caption
    assert len(TEMPLATES) == 4


def test_attributes_can_be_left_out():
    dm = DigitsCaptionsDataModule(channels=1, attributes=["position"])
    image, label, caption = dm.dataset("train", augment=False)[0]
    assert image.shape == (1, 16, 16)
    assert dm.spec.parse(caption)[1].colour is None and dm.spec.parse(caption)[1].position
    with pytest.raises(ConfigError, match="data.channels=3"):
        DigitsCaptionsDataModule(channels=3, attributes=["size"])
    with pytest.raises(ConfigError, match="data.attributes"):
        DigitsCaptionsDataModule(attributes=["shape"])
    with pytest.raises(ConfigError, match="data.large_size=12"):
        DigitsCaptionsDataModule(large_size=12)


def test_fashion_mnist_captions_from_its_files(tmp_path):
    root = make_fake_fashion_mnist(tmp_path)
    dm = FashionMNISTCaptionsDataModule(root=root, batch_size=4)
    dm.prepare_data()
    dm.setup()
    images, labels, captions = next(iter(dm.val_dataloader()))
    assert images.shape == (4, 3, 32, 32) and len(captions) == 4
    assert [dm.spec.parse(c)[0] for c in captions] == labels.tolist()
    assert len(dm.captions()) == len(dm.dataset("train", augment=False))


def write_images(folder, names):
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        Image.fromarray(np.full((12, 12, 3), 20 * i, dtype=np.uint8)).save(folder / name)


def test_folder_captions_from_metadata_jsonl_and_txt(tmp_path):
    root = tmp_path / "images"
    write_images(root, ["a.png", "b.png", "c.png", "d.png"])
    write_images(root / "more", ["e.png"])
    (root / "metadata.jsonl").write_text(
        json.dumps({"file_name": "a.png", "text": "a black square"})
        + "\n"
        + json.dumps({"file_name": "b.png", "text": "a dark square"})
        + "\n\n"
    )
    (root / "more" / "metadata.jsonl").write_text(
        json.dumps({"file_name": "e.png", "text": "in a sub-folder"}) + "\n"
    )
    (root / "c.txt").write_text("from a sidecar\n")
    (root / "d.txt").write_text("another sidecar")
    (root / "b.txt").write_text("the metadata wins")
    dm = CaptionedImageFolderDataModule(root=root, image_size=8, val_fraction=0.2, seed=0)
    train, test = dm.dataset("train", augment=True), dm.dataset("test", augment=False)
    found = {
        path.name: caption
        for ds in (train, test)
        for path, caption in zip(ds.files, ds.captions, strict=True)
    }
    assert found == {
        "a.png": "a black square",
        "b.png": "a dark square",
        "c.png": "from a sidecar",
        "d.png": "another sidecar",
        "e.png": "in a sub-folder",
    }
    image, label, caption = train[0]
    assert image.shape == (3, 8, 8) and label == 0 and caption == train.captions[0]
    assert sorted(dm.captions()) == sorted(train.captions)


def test_folder_image_without_caption_is_named(tmp_path):
    write_images(tmp_path, ["a.png", "b.png"])
    (tmp_path / "a.txt").write_text("only a")
    dm = CaptionedImageFolderDataModule(root=tmp_path, image_size=8, val_fraction=0.5)
    with pytest.raises(DataNotFoundError, match="1 image.*b.png.*b.txt"):
        dm.dataset("train", augment=False) and dm.dataset("test", augment=False)


def test_folder_metadata_with_another_key(tmp_path):
    write_images(tmp_path, ["a.png", "b.png"])
    lines = [{"file_name": n, "caption": f"image {n}"} for n in ("a.png", "b.png")]
    (tmp_path / "metadata.jsonl").write_text("\n".join(json.dumps(x) for x in lines))
    with pytest.raises(LabError, match="metadata.jsonl:1.*data.caption_column"):
        CaptionedImageFolderDataModule(root=tmp_path, image_size=8).dataset("train", False)
    dm = CaptionedImageFolderDataModule(root=tmp_path, image_size=8, caption_column="caption")
    assert dm.dataset("test", augment=False).captions[0].startswith("image ")
