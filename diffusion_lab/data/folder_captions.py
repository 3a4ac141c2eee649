"""An image folder with captions, in the two conventions people already have: Hugging Face's
imagefolder `metadata.jsonl` ({"file_name": ..., "text": ...} per line), or a `.txt` file
beside each image (same name, e.g. cat.png and cat.txt)."""

import json
from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from diffusion_lab.data.captioned import CaptionedDataModule
from diffusion_lab.data.folder import ImageFiles, ImageFolderDataModule
from diffusion_lab.errors import DataNotFoundError, LabError


class CaptionedImageFiles(ImageFiles):
    """(image, label, caption) triples read from a list of files."""

    def __init__(self, files, labels, captions: list[str], mode: str, transform):
        super().__init__(files, labels, mode, transform)
        self.captions = captions

    def __getitem__(self, index: int):
        image, label = super().__getitem__(index)
        return image, label, self.captions[index]


def read_metadata(root: Path, column: str) -> dict[Path, str]:
    """Captions of every `metadata.jsonl` below `root`; its file names are relative to it."""
    captions = {}
    for metadata in sorted(root.rglob("metadata.jsonl")):
        for number, line in enumerate(metadata.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
                captions[(metadata.parent / entry["file_name"]).resolve()] = str(entry[column])
            except (json.JSONDecodeError, KeyError, TypeError) as err:
                raise LabError(
                    f'{metadata}:{number} is not a JSON object with "file_name" and '
                    f'"{column}" ({type(err).__name__}: {err}); fix the line or set '
                    "data.caption_column=<the caption's key>"
                ) from None
    return captions


class CaptionedImageFolderDataModule(ImageFolderDataModule, CaptionedDataModule):
    """`folder`'s images (layout, sizes, split, bad-file handling), each with its caption: from
    a `metadata.jsonl` entry if one names it, else from the `.txt` beside it (stripped). An image
    with neither stops setup, naming the count and the first such file.

    `caption_column` is the metadata key that holds the caption ("text" in Hugging Face's
    format). `random_flip` is off by default: a flip turns "on the left" into a lie.
    """

    def __init__(
        self,
        *,
        root: str | Path,
        caption_column: str = "text",
        random_flip: bool = False,
        **kwargs: Any,
    ):
        super().__init__(root=root, random_flip=random_flip, **kwargs)
        self.caption_column = caption_column
        self._captions: dict[Path, str] | None = None

    def _caption_of(self, files: list[Path]) -> list[str]:
        if self._captions is None:
            self._captions = read_metadata(self.root, self.caption_column)
        captions, missing = [], []
        for path in files:
            caption = self._captions.get(path.resolve())
            sidecar = path.with_suffix(".txt")
            if caption is None and sidecar.is_file():
                caption = sidecar.read_text(encoding="utf-8").strip()
            if caption is None:
                missing.append(path)
            captions.append(caption)
        if missing:
            raise DataNotFoundError(
                f"{len(missing)} image(s) under {self.root} have no caption, the first "
                f'{missing[0]}: add it to a metadata.jsonl ({{"file_name": ..., '
                f'"{self.caption_column}": ...}}) or write {missing[0].with_suffix(".txt")}'
            )
        return captions

    def dataset(self, split: str, augment: bool) -> Dataset:
        images = super().dataset(split, augment)
        return CaptionedImageFiles(
            images.files,
            images.labels,
            self._caption_of(images.files),
            images.mode,
            images.transform,
        )

    def captions(self) -> list[str]:
        return self.dataset("train", augment=False).captions
