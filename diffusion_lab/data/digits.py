"""scikit-learn's 8x8 handwritten digits: the offline default, nothing to download."""

from importlib import resources
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch.utils.data import Dataset, TensorDataset

from diffusion_lab.data.base import (
    ImageDataModule,
    check_choice,
    check_fraction,
    check_int,
    seeded_split,
)

DIGITS_FILE = "digits.csv.gz"  # what load_digits reads, inside scikit-learn's package


class DigitsDataModule(ImageDataModule):
    """1,797 grey 8x8 digits (values 0-16) in 10 classes, held in memory as one tensor.

    Pixels are scaled by v / 8 - 1, so 0 -> -1 and 16 -> 1. An `image_size` above 8 upsamples
    bilinearly (align_corners=False, no antialiasing); bilinear weights are convex, so the result
    stays within [-1, 1]. No augmentation. Validation is a seeded `val_fraction` held out; the
    `"test"` reference split is that held-out part.
    """

    def __init__(
        self,
        *,
        image_size: int = 8,
        channels: int = 1,
        num_classes: int | None = 10,
        val_fraction: float = 0.1,
        seed: int = 0,
        **loader: Any,
    ):
        check_int("image_size", image_size, 8)
        check_choice("channels", channels, (1,), "digits")
        check_choice("num_classes", num_classes, (10,), "digits")
        check_fraction("val_fraction", val_fraction)
        super().__init__(
            image_size=image_size, channels=channels, num_classes=num_classes, **loader
        )
        self.val_fraction, self.seed = val_fraction, seed
        self._splits: dict[str, Dataset] = {}

    def _load(self) -> dict[str, Dataset]:
        if not self._splits:
            digits = load_digits()
            images = torch.from_numpy(digits.images).float().unsqueeze(1) / 8 - 1
            if self.image_size != 8:
                # weights sum to 1 only up to rounding: clamp so the range stays exact
                images = F.interpolate(images, size=self.image_size, mode="bilinear").clamp(-1, 1)
            labels = torch.from_numpy(digits.target).long()
            train, val = seeded_split(len(labels), self.val_fraction, self.seed)
            self._splits["train"] = TensorDataset(images[train], labels[train])
            self._splits["test"] = TensorDataset(images[val], labels[val])
        return self._splits

    def reference_settings(self) -> dict[str, Any]:
        resize = "bilinear, align_corners=False, clamped"
        return super().reference_settings() | {
            "val_fraction": self.val_fraction,
            "seed": self.seed,
            "resize": resize if self.image_size != 8 else None,
        }

    def reference_files(self, split: str) -> list[Path]:
        return [Path(str(resources.files("sklearn.datasets.data") / DIGITS_FILE))]

    def dataset(self, split: str, augment: bool) -> Dataset:
        return self._load()[split]  # no augmentation
