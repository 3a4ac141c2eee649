"""CelebA (Liu et al. 2015) faces through torchvision, cropped and resized as DDIM does."""

import os
from pathlib import Path
from typing import Any

from PIL import Image
from torch.utils.data import Dataset
from torchvision import transforms
from torchvision.datasets import CelebA
from torchvision.transforms import functional as TF

from diffusion_lab.data.base import (
    ImageDataModule,
    ZeroLabels,
    check_choice,
    check_int,
    first_line,
    signed_tensor,
)
from diffusion_lab.errors import DataNotFoundError

ANNOTATIONS = (
    "list_attr_celeba.txt",
    "identity_CelebA.txt",
    "list_bbox_celeba.txt",
    "list_landmarks_align_celeba.txt",
    "list_eval_partition.txt",
)
# DDIM's crop (Song et al. 2021; ermongroup/ddim datasets/__init__.py, from NCSN): the 128x128
# box with top-left corner (row 57, col 25) of the aligned 178x218 image, centred on the face.
CROP_TOP, CROP_LEFT, CROP_SIZE = 57, 25, 128


def ddim_crop(image: Image.Image) -> Image.Image:
    return TF.crop(image, CROP_TOP, CROP_LEFT, CROP_SIZE, CROP_SIZE)


class CelebADataModule(ImageDataModule):
    """CelebA aligned faces (162,770 train / 19,867 valid / 19,962 test), unlabelled.

    Each 178x218 image is cropped to DDIM's 128x128 face box (`CROP_TOP`, `CROP_LEFT`), then
    resized to `image_size` (64 in DDIM) with antialiased bilinear interpolation. Training images
    are flipped left-right with probability 1/2. Validation is the "valid" split; labels are all
    0 (num_classes is None). Reads `<root>/celeba/`; torchvision downloads it (needs `gdown`)
    only when `download=True`.
    """

    val_split = "valid"

    def __init__(
        self,
        *,
        root: str | Path,
        image_size: int = 64,
        channels: int = 3,
        num_classes: int | None = None,
        download: bool = False,
        **loader: Any,
    ):
        check_int("image_size", image_size, 1)
        check_choice("channels", channels, (3,), "CelebA")
        check_choice("num_classes", num_classes, (None,), "CelebA (unlabelled)")
        super().__init__(
            image_size=image_size, channels=channels, num_classes=num_classes, **loader
        )
        self.root, self.download = Path(root), download

    @property
    def folder(self) -> Path:
        return self.root / "celeba"

    def prepare_data(self) -> None:
        if self._files_present() or not self.download:
            return
        try:
            CelebA(self.root, download=True)
        except (OSError, RuntimeError) as err:
            raise DataNotFoundError(
                f"could not download CelebA into {self.folder} ({first_line(err)}); put "
                "img_align_celeba/ and the five annotation files there"
            ) from err

    def _files_present(self) -> bool:
        return (self.folder / "img_align_celeba").is_dir() and all(
            (self.folder / name).is_file() for name in ANNOTATIONS
        )

    def reference_settings(self) -> dict[str, Any]:
        return super().reference_settings() | {
            "root": str(self.root.resolve()),
            "crop": [CROP_TOP, CROP_LEFT, CROP_SIZE],
            "resize": "bilinear, antialiased",
        }

    def reference_files(self, split: str) -> list[str | Path]:
        """The partition file and every image (the partition file says which a split holds); as
        strings, which are much faster than Paths for 202,599 files."""
        images = self.folder / "img_align_celeba"
        found = sorted(entry.path for entry in os.scandir(images)) if images.is_dir() else []
        return [self.folder / "list_eval_partition.txt", *found]

    def dataset(self, split: str, augment: bool) -> Dataset:
        if not self._files_present():
            raise DataNotFoundError(
                f"CelebA not found under {self.folder} (needs img_align_celeba/ and "
                f"{', '.join(ANNOTATIONS)}); set data.root=<dir containing celeba/> or "
                "data.download=true"
            )
        steps = [ddim_crop, transforms.Resize(self.image_size)]
        if augment:
            steps.append(transforms.RandomHorizontalFlip())
        try:
            transform = signed_tensor(*steps)
            images = CelebA(self.root, split=split, target_type=[], transform=transform)
        except RuntimeError as err:  # torchvision's MD5 check of the annotation files failed
            raise DataNotFoundError(
                f"CelebA annotation files under {self.folder} fail torchvision's checksum check; "
                "replace them with intact copies or set data.download=true"
            ) from err
        return ZeroLabels(images)
