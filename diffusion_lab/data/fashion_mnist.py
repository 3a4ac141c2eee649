"""Fashion-MNIST (Xiao et al. 2017) via torchvision: local copy, Debian package or download."""

import gzip
import os
import shutil
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset
from torchvision import transforms
from torchvision.datasets import FashionMNIST

from diffusion_lab.data.base import (
    ImageDataModule,
    check_choice,
    first_line,
    signed_tensor,
)
from diffusion_lab.errors import DataNotFoundError

RAW_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def gunzip(source: Path, target: Path) -> None:
    """Un-gzips `source` to `target` via a temporary name, so no reader sees half a file."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.part")
    with gzip.open(source, "rb") as src, open(partial, "wb") as dst:
        shutil.copyfileobj(src, dst)
    os.replace(partial, target)


class FashionMNISTDataModule(ImageDataModule):
    """60,000 train / 10,000 test grey 28x28 images in 10 classes, padded to 32x32.

    The raw idx files are looked for, in order: un-gzipped in `<root>/FashionMNIST/raw/`; gzipped
    there or in `debian_dir` (the `dataset-fashion-mnist` package), then un-gzipped into the raw
    folder; downloaded by torchvision when `download=True`. Images are scaled to [-1, 1] and padded
    by 2 pixels of background (-1). No augmentation; validation is the test split.
    """

    debian_dir = Path("/usr/share/datasets/fashion-mnist")

    def __init__(
        self,
        *,
        root: str | Path,
        image_size: int = 32,
        channels: int = 1,
        num_classes: int | None = 10,
        download: bool = False,
        **loader: Any,
    ):
        check_choice("image_size", image_size, (32,), "Fashion-MNIST (28x28 padded to 32)")
        check_choice("channels", channels, (1,), "Fashion-MNIST")
        check_choice("num_classes", num_classes, (10,), "Fashion-MNIST")
        super().__init__(
            image_size=image_size, channels=channels, num_classes=num_classes, **loader
        )
        self.root, self.download = Path(root), download

    @property
    def raw_dir(self) -> Path:
        return self.root / "FashionMNIST" / "raw"

    def prepare_data(self) -> None:
        self._ensure_raw_files()

    def _ensure_raw_files(self) -> None:
        for name in RAW_FILES:
            gzipped = [d / f"{name}.gz" for d in (self.raw_dir, self.debian_dir)]
            source = next((p for p in gzipped if p.is_file()), None)
            if not (self.raw_dir / name).is_file() and source is not None:
                gunzip(source, self.raw_dir / name)
        if all((self.raw_dir / name).is_file() for name in RAW_FILES):
            return
        if not self.download:
            raise DataNotFoundError(
                f"Fashion-MNIST not found under {self.raw_dir} nor in {self.debian_dir}; set "
                "data.root=<dir containing FashionMNIST/raw>, `apt-get install "
                "dataset-fashion-mnist`, or set data.download=true"
            )
        try:
            FashionMNIST(self.root, download=True)
        except (OSError, RuntimeError) as err:
            raise DataNotFoundError(
                f"could not download Fashion-MNIST into {self.raw_dir} ({first_line(err)}); copy "
                "the four idx files there or `apt-get install dataset-fashion-mnist`"
            ) from err

    def reference_settings(self) -> dict[str, Any]:
        return super().reference_settings() | {"root": str(self.root.resolve()), "pad": [2, -1.0]}

    def reference_files(self, split: str) -> list[Path]:
        prefix = "train" if split == "train" else "t10k"
        return [self.raw_dir / name for name in RAW_FILES if name.startswith(prefix)]

    def dataset(self, split: str, augment: bool) -> Dataset:
        self._ensure_raw_files()
        # pad after scaling, so the border is the background value -1
        transform = transforms.Compose([signed_tensor(), transforms.Pad(2, fill=-1.0)])
        return FashionMNIST(self.root, train=split == "train", transform=transform)
