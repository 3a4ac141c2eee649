"""Any folder of images (LSUN, FFHQ, your own), flat or in class sub-folders, at one square size."""

import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import torch
from PIL import Image
from torch.utils.data import Dataset
from torchvision import transforms
from torchvision.datasets.folder import IMG_EXTENSIONS

from diffusion_lab.data.base import (
    ImageDataModule,
    check_choice,
    check_fraction,
    check_int,
    seeded_split,
    signed_tensor,
)
from diffusion_lab.errors import ConfigError, DataNotFoundError, LabError

log = logging.getLogger(__name__)


def image_paths(folder: Path) -> Iterator[str]:
    """Image files below `folder`, recursively, unsorted; hidden files and folders are left out."""
    for parent, dirs, files in os.walk(folder, followlinks=True):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            if not name.startswith(".") and name.lower().endswith(IMG_EXTENSIONS):
                yield os.path.join(parent, name)


def list_images(folder: Path) -> list[Path]:
    """`image_paths` as sorted Paths (the order the seeded split is drawn in)."""
    return sorted(Path(path) for path in image_paths(folder))


def unreadable(path: Path) -> str | None:
    """Why PIL cannot read `path`'s header and structure, or None if it can (pixels not decoded)."""
    try:
        with Image.open(path) as image:
            image.verify()
    except Exception as err:  # PIL raises many types for corrupt files
        return f"{type(err).__name__}: {err}"
    return None


class ImageFiles(Dataset):
    """(image, label) pairs read from a list of files, converted to `mode` ("RGB" or "L").

    A file that fails only when its pixels are decoded (a truncated JPEG passes `verify()`) is
    skipped with a warning naming it — the next file is read instead — or, with
    `on_bad_image="error"`, stops the run naming it.
    """

    def __init__(
        self, files: list[Path], labels: list[int], mode: str, transform, on_bad_image="skip"
    ):
        self.files, self.labels, self.mode, self.transform = files, labels, mode, transform
        self.on_bad_image = on_bad_image

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        if not -len(self.files) <= index < len(self.files):
            raise IndexError(index)  # ends iteration over the dataset
        for offset in range(len(self.files)):
            path = self.files[(index + offset) % len(self.files)]
            try:
                with Image.open(path) as image:
                    pixels = image.convert(self.mode)
            except (OSError, SyntaxError, ValueError) as err:  # PIL's decoding errors
                if self.on_bad_image == "error":
                    raise LabError(
                        f"unreadable image {path} ({type(err).__name__}: {err}); remove it or "
                        "set data.on_bad_image=skip"
                    ) from None
                log.warning("skipped unreadable image %s (%s: %s)", path, type(err).__name__, err)
                continue
            return self.transform(pixels), self.labels[(index + offset) % len(self.files)]
        raise DataNotFoundError(f"no image of the {len(self.files)} in this split can be read")


class ImageFolderDataModule(ImageDataModule):
    """Images resized (shorter side, bicubic, antialiased) and centre-cropped to `image_size`.

    `root` is either a flat folder (any image directly inside it: all images below it, recursively,
    labelled 0) or a folder of class sub-folders (label = index of the sorted sub-folder name;
    images found recursively in each). `num_classes: null` trains unconditionally whatever the
    layout; an integer must equal the number of class sub-folders. Every file is checked with
    PIL's `verify()` once at setup; unreadable ones are skipped with a warning naming the count
    and the first file (`on_bad_image="skip"`), or stop setup naming the file ("error").
    Validation is a seeded `val_fraction` held out; the "test" reference split is that part.
    """

    def __init__(
        self,
        *,
        root: str | Path,
        image_size: int = 64,
        channels: int = 3,
        num_classes: int | None = None,
        batch_size: int = 64,
        val_fraction: float = 0.05,
        seed: int = 0,
        random_flip: bool = True,
        on_bad_image: Literal["skip", "error"] = "skip",
        **loader: Any,
    ):
        check_int("image_size", image_size, 1)
        check_choice("channels", channels, (1, 3), "an image folder")
        check_choice("on_bad_image", on_bad_image, ("skip", "error"), "an image folder")
        check_fraction("val_fraction", val_fraction)
        if num_classes is not None:
            check_int("num_classes", num_classes, 1)
        super().__init__(
            image_size=image_size,
            channels=channels,
            num_classes=num_classes,
            batch_size=batch_size,
            **loader,
        )
        self.root, self.val_fraction, self.seed = Path(root), val_fraction, seed
        self.random_flip, self.on_bad_image = random_flip, on_bad_image
        self._scanned: tuple[list[Path], list[int]] | None = None

    def _scan(self) -> tuple[list[Path], list[int]]:
        """All readable image files and their labels, sorted by path (so the split is stable)."""
        if self._scanned is not None:
            return self._scanned
        if not self.root.is_dir():
            raise DataNotFoundError(
                f"image folder {self.root} does not exist; set data.root=<folder of images or of "
                "class sub-folders>"
            )
        entries = sorted(p for p in self.root.iterdir() if not p.name.startswith("."))
        if any(p.is_file() and p.name.lower().endswith(IMG_EXTENSIONS) for p in entries):
            groups, num_classes = [list_images(self.root)], 0
        else:
            groups = [g for g in (list_images(p) for p in entries if p.is_dir()) if g]
            num_classes = len(groups)
        if self.num_classes is not None and self.num_classes != num_classes:
            fix = f"{num_classes} or null" if num_classes else "null (a flat folder has no labels)"
            raise ConfigError(
                f"data.num_classes={self.num_classes} but {self.root} has {num_classes} class "
                f"sub-folder(s) with images; set data.num_classes={fix}"
            )
        files, labels = [], []
        for label, group in enumerate(groups):
            files += group
            labels += [label] * len(group)
        files, labels = self._drop_unreadable(files, labels)
        if not files:
            raise DataNotFoundError(
                f"no readable images ({', '.join(IMG_EXTENSIONS)}) under {self.root}; set "
                "data.root=<folder of images or of class sub-folders>"
            )
        self._scanned = files, labels
        return self._scanned

    def _drop_unreadable(self, files: list[Path], labels: list[int]):
        kept_files, kept_labels, bad = [], [], []
        for path, label in zip(files, labels, strict=True):
            reason = unreadable(path)
            if reason is None:
                kept_files.append(path)
                kept_labels.append(label)
                continue
            if self.on_bad_image == "error":
                raise LabError(
                    f"unreadable image {path} ({reason}); remove it or set data.on_bad_image=skip"
                )
            bad.append((path, reason))
        if bad:
            log.warning(
                "skipped %d unreadable image(s) under %s; the first: %s (%s)",
                len(bad),
                self.root,
                *bad[0],
            )
        return kept_files, kept_labels

    def reference_settings(self) -> dict[str, Any]:
        return super().reference_settings() | {
            "root": str(self.root.resolve()),
            "val_fraction": self.val_fraction,
            "seed": self.seed,
            "resize": "shorter side, bicubic, antialiased",
            "crop": "centre",
        }

    def reference_files(self, split: str) -> list[str]:
        """Every image below `root` (both splits depend on all of them), found without reading;
        as strings, which are much faster than Paths for 200,000 files."""
        return sorted(image_paths(self.root)) if self.root.is_dir() else []

    def dataset(self, split: str, augment: bool) -> Dataset:
        files, labels = self._scan()
        indices = seeded_split(len(files), self.val_fraction, self.seed)[split == "test"]
        steps = [
            transforms.Resize(self.image_size, transforms.InterpolationMode.BICUBIC),
            transforms.CenterCrop(self.image_size),
        ]
        if augment and self.random_flip:
            steps.append(transforms.RandomHorizontalFlip())
        return ImageFiles(
            [files[i] for i in indices],
            [labels[i] for i in indices],
            mode="RGB" if self.channels == 3 else "L",
            transform=signed_tensor(*steps),
            on_bad_image=self.on_bad_image,
        )
