"""scikit-learn's digits, tinted, placed and sized on a larger canvas, with captions."""

from collections.abc import Sequence
from typing import Any

from torch.utils.data import Dataset

from diffusion_lab.data.attributes import ATTRIBUTES, Layout, check_attributes
from diffusion_lab.data.base import check_choice, check_int
from diffusion_lab.data.captioned import CaptionedDataModule, CaptionedImages
from diffusion_lab.data.captions import DIGIT_NOUNS, CaptionSpec
from diffusion_lab.data.digits import DigitsDataModule


class DigitsCaptionsDataModule(CaptionedDataModule):
    """The 8x8 digits as objects on an `image_size`² canvas: each image's colour, position and
    size (those in `attributes`) drawn per (seed, split, index) and named in its caption, e.g.
    "a small red digit three on the left". Large digits keep their 8x8 pixels, small ones are
    `small_size` wide. RGB with colour, grey without. The split is the digits' (`val_fraction`,
    `seed`); the "test" split holds the validation images.
    """

    alignment_classifier = "digits"  # the small net that reads the class back (evaluate)

    def __init__(
        self,
        *,
        image_size: int = 16,
        channels: int = 3,
        num_classes: int | None = 10,
        attributes: Sequence[str] = ATTRIBUTES,
        small_size: int = 5,
        large_size: int = 8,
        val_fraction: float = 0.1,
        seed: int = 0,
        **loader: Any,
    ):
        attributes = check_attributes(attributes)
        check_int("image_size", image_size, 1)
        check_choice(
            "channels",
            channels,
            (3,) if "colour" in attributes else (1,),
            f"digits with attributes {list(attributes)}",
        )
        check_choice("num_classes", num_classes, (10,), "digits")
        self.spec = CaptionSpec(DIGIT_NOUNS, attributes, Layout(image_size, small_size, large_size))
        super().__init__(
            image_size=image_size, channels=channels, num_classes=num_classes, **loader
        )
        self.digits = DigitsDataModule(val_fraction=val_fraction, seed=seed)
        self.seed = seed

    def dataset(self, split: str, augment: bool) -> Dataset:
        source = self.digits.dataset(split, augment=False)
        return CaptionedImages(
            source,
            source.tensors[1].tolist(),
            self.spec,
            self.seed,
            split,
            to_unit=lambda image: (image + 1) / 2,  # the digits' [-1, 1] back to [0, 1]
        )

    def captions(self) -> list[str]:
        train = self.dataset("train", augment=False)
        return [train.describe(i)[1] for i in range(len(train))]
