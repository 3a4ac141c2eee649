"""Datasets whose items carry a caption: batches of (images, labels, captions).

A captioned batch is the 2-tuple batch of every other datamodule with a third element, the
captions as a list of N strings (PyTorch's default collation), so `batch[:2]` is what
unconditional and class-conditional training read.
"""

from collections.abc import Callable, Sequence

import torch
from torch.utils.data import Dataset

from diffusion_lab.data.attributes import Attributes, render
from diffusion_lab.data.base import ImageDataModule
from diffusion_lab.data.captions import CaptionSpec


class CaptionedImages(Dataset):
    """(image [C, S, S] in [-1, 1], label, caption) from a dataset of grey objects.

    Item i of `source` (an (image, label) dataset; `to_unit` maps its image to [0, 1] with
    background 0) gets the attributes and caption that `spec` draws for (seed, split, i), and is
    rendered with them.
    """

    def __init__(
        self,
        source: Dataset,
        labels: Sequence[int],
        spec: CaptionSpec,
        seed: int,
        split: str,
        to_unit: Callable[[torch.Tensor], torch.Tensor],
    ):
        self.source, self.labels, self.spec = source, list(labels), spec
        self.seed, self.split, self.to_unit = seed, split, to_unit

    def __len__(self) -> int:
        return len(self.labels)

    def describe(self, index: int) -> tuple[Attributes, str]:
        """Item `index`'s attributes and caption, without reading its image."""
        return self.spec.draw(self.seed, self.split, index, self.labels[index])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, str]:
        image, label = self.source[index]
        attributes, caption = self.describe(index)
        return render(self.to_unit(image), attributes, self.spec.layout), int(label), caption


class CaptionedDataModule(ImageDataModule):
    """An ImageDataModule whose batches are (images, labels, captions list[str])."""

    def captions(self) -> list[str]:
        """Every training caption: the words of a text encoder trained with the U-Net
        (`WordTokenizer.from_captions`)."""
        raise NotImplementedError
