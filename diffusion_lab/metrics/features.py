"""The one interface every feature network follows: images in, features (and logits) out."""

import functools
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn


@dataclass
class Features:
    """Per-image features for FID and precision/recall, and class logits for the Inception Score.

    features: [N, D] float32.  logits: [N, K] float32 (Inception: the 1008 unbiased logits that
    torch-fidelity and the original IS code use).
    """

    features: torch.Tensor
    logits: torch.Tensor

    @staticmethod
    def cat(parts: "list[Features]") -> "Features":
        return Features(
            features=torch.cat([p.features for p in parts]),
            logits=torch.cat([p.logits for p in parts]),
        )


def to_uint8(images: torch.Tensor) -> torch.Tensor:
    """uint8 images pass through; floats in [-1, 1] are quantised to 0..255, as saved PNGs are."""
    if images.dtype == torch.uint8:
        return images
    if not images.is_floating_point():
        raise TypeError(f"images must be uint8 or float in [-1, 1], got {images.dtype}")
    return ((images.float() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8)


class FeatureExtractor(nn.Module):
    """Maps images [N, C, H, W] (uint8, or float in [-1, 1]) to `Features`; always in eval mode.

    Subclasses set `name` (the `features=` value), `num_features` (D; torchmetrics reads it) and,
    when the weights come from a file, `weights_file`.
    """

    name: str
    num_features: int
    weights_file: Path | None = None

    def weights_sha256(self) -> str:
        """SHA-256 of the weights file, else of the parameters and buffers (a net built in code)."""
        if self.weights_file is not None:
            return file_sha256(self.weights_file)
        digest = hashlib.sha256()
        for name, tensor in sorted(self.state_dict().items()):
            digest.update(name.encode())
            digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
        return digest.hexdigest()

    @property
    def device(self) -> torch.device:
        return next(self.parameters(), torch.empty(0)).device

    def train(self, mode: bool = True) -> "FeatureExtractor":
        # A LightningModule's .train() must not put the frozen network's BatchNorm in training mode.
        return super().train(False)

    def forward(self, images: torch.Tensor) -> Features:
        raise NotImplementedError


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes; read once per (path, size, modification time) in a process."""
    stat = os.stat(path)
    return _sha256_of_file(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)


@functools.cache
def _sha256_of_file(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()
