"""Fashion-MNIST, tinted, placed and sized on a canvas, with captions."""

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset
from torchvision import transforms
from torchvision.datasets import FashionMNIST

from diffusion_lab.data.attributes import ATTRIBUTES, Layout, check_attributes
from diffusion_lab.data.base import check_choice, check_int
from diffusion_lab.data.captioned import CaptionedDataModule, CaptionedImages
from diffusion_lab.data.captions import FASHION_NOUNS, CaptionSpec
from diffusion_lab.data.fashion_mnist import FashionMNISTDataModule


class FashionMNISTCaptionsDataModule(CaptionedDataModule):
    """The 28x28 Fashion-MNIST items as objects on an `image_size`² canvas: each image's colour,
    position and size (those in `attributes`) drawn per (seed, split, index) and named in its
    caption, e.g. "a small red sneaker on the left". Items are resized to `large_size` or
    `small_size` pixels. RGB with colour, grey without. Found as `fashion_mnist` finds it
    (`root`, Debian's package, `download`); validation is the test split.
    """

    alignment_classifier = "fmnist"  # the small net that reads the class back (evaluate)

    def __init__(
        self,
        *,
        root: str | Path,
        image_size: int = 32,
        channels: int = 3,
        num_classes: int | None = 10,
        attributes: Sequence[str] = ATTRIBUTES,
        small_size: int = 10,
        large_size: int = 16,
        seed: int = 0,
        download: bool = False,
        **loader: Any,
    ):
        attributes = check_attributes(attributes)
        check_int("image_size", image_size, 1)
        check_choice(
            "channels",
            channels,
            (3,) if "colour" in attributes else (1,),
            f"Fashion-MNIST with attributes {list(attributes)}",
        )
        check_choice("num_classes", num_classes, (10,), "Fashion-MNIST")
        self.spec = CaptionSpec(
            FASHION_NOUNS, attributes, Layout(image_size, small_size, large_size)
        )
        super().__init__(
            image_size=image_size, channels=channels, num_classes=num_classes, **loader
        )
        self.fashion = FashionMNISTDataModule(root=root, download=download)
        self.seed = seed

    def prepare_data(self) -> None:
        self.fashion.prepare_data()

    def dataset(self, split: str, augment: bool) -> Dataset:
        self.fashion._ensure_raw_files()
        source = FashionMNIST(
            self.fashion.root, train=split == "train", transform=transforms.ToTensor()
        )
        return CaptionedImages(
            source, source.targets.tolist(), self.spec, self.seed, split, to_unit=lambda x: x
        )

    def captions(self) -> list[str]:
        train = self.dataset("train", augment=False)
        return [train.describe(i)[1] for i in range(len(train))]
