"""CIFAR-10 (Krizhevsky 2009) through torchvision, as DDPM trains on it (Ho et al. 2020, App. B)."""

from pathlib import Path
from typing import Any

from torch.utils.data import Dataset
from torchvision import transforms
from torchvision.datasets import CIFAR10

from diffusion_lab.data.base import (
    ImageDataModule,
    check_choice,
    first_line,
    signed_tensor,
)
from diffusion_lab.errors import DataNotFoundError

BATCH_FILES = (*(f"data_batch_{i}" for i in range(1, 6)), "test_batch", "batches.meta")


class CIFAR10DataModule(ImageDataModule):
    """50,000 train / 10,000 test RGB 32x32 images in 10 classes, in [-1, 1].

    Training images are flipped left-right with probability 1/2 (DDPM's only augmentation;
    `random_flip=False`: never, as improved-diffusion's loader); validation and reference
    images never are. Validation is the test split. Reads
    `<root>/cifar-10-batches-py/`; torchvision downloads it there only when `download=True`.
    """

    def __init__(
        self,
        *,
        root: str | Path,
        image_size: int = 32,
        channels: int = 3,
        num_classes: int | None = 10,
        download: bool = False,
        random_flip: bool = True,
        **loader: Any,
    ):
        check_choice("image_size", image_size, (32,), "CIFAR-10")
        check_choice("channels", channels, (3,), "CIFAR-10")
        check_choice("num_classes", num_classes, (10,), "CIFAR-10")
        super().__init__(
            image_size=image_size, channels=channels, num_classes=num_classes, **loader
        )
        self.root, self.download, self.random_flip = Path(root), download, random_flip

    @property
    def folder(self) -> Path:
        return self.root / "cifar-10-batches-py"

    def prepare_data(self) -> None:
        if self._files_present() or not self.download:
            return
        try:
            CIFAR10(self.root, download=True)
        except (OSError, RuntimeError) as err:
            raise DataNotFoundError(
                f"could not download CIFAR-10 into {self.folder} ({first_line(err)}); put "
                "cifar-10-batches-py there"
            ) from err

    def _files_present(self) -> bool:
        return all((self.folder / name).is_file() for name in BATCH_FILES)

    def reference_settings(self) -> dict[str, Any]:
        return super().reference_settings() | {"root": str(self.root.resolve())}

    def reference_files(self, split: str) -> list[Path]:
        names = [name for name in BATCH_FILES if name.startswith("data_")]
        return [self.folder / name for name in (names if split == "train" else ["test_batch"])]

    def dataset(self, split: str, augment: bool) -> Dataset:
        if not self._files_present():
            raise DataNotFoundError(
                f"CIFAR-10 not found under {self.folder}; set data.root=<dir containing "
                "cifar-10-batches-py> or data.download=true"
            )
        flip = [transforms.RandomHorizontalFlip()] if augment and self.random_flip else []
        try:
            return CIFAR10(self.root, train=split == "train", transform=signed_tensor(*flip))
        except RuntimeError as err:  # torchvision's MD5 check failed
            raise DataNotFoundError(
                f"CIFAR-10 under {self.folder} fails torchvision's checksum check; delete that "
                "folder and set data.download=true, or copy an intact one there"
            ) from err
