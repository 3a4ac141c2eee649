"""Small classifiers whose penultimate layer stands in for Inception on Fashion-MNIST and digits.

Inception features of 8x8 or 28x28 grayscale images say little; a few conv layers trained on the
dataset itself give a domain-appropriate FID (as in e.g. the MNIST FIDs of many small-scale papers).
`scripts/train_feature_net.py` trains them; the weights ship in `diffusion_lab/metrics/weights/`.
"""

import json
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional as F

from diffusion_lab.errors import ConfigError, WeightsNotFoundError
from diffusion_lab.metrics.features import FeatureExtractor, Features, to_uint8

WEIGHTS_DIR = Path(__file__).parent / "weights"
SMALL_NET_IMAGE_SIZE = {"fmnist": 32, "digits": 8}  # Fashion-MNIST is 28x28 padded to 32


class SmallConvNet(nn.Module):
    """Three 3x3 conv layers, max-pooled down to at most 4x4, then a 128-d hidden layer and logits.

    Shapes: x [N, 1, S, S] in [-1, 1] -> logits [N, num_classes]; `features(x)` -> [N, 128].
    """

    def __init__(self, image_size: int, num_classes: int = 10, feature_dim: int = 128):
        super().__init__()
        widths = (16, 32, 64)
        # Pool after each conv while the map is over 4x4: 32 -> 16 -> 8 -> 4, and 8 -> 4 -> 4 -> 4.
        self.pool = [image_size >> i > 4 for i in range(len(widths))]
        self.convs = nn.ModuleList(
            nn.Conv2d(c_in, c_out, 3, padding=1)
            for c_in, c_out in zip((1, *widths[:-1]), widths, strict=True)
        )
        self.hidden = nn.Linear(widths[-1] * 2 * 2, feature_dim)
        self.head = nn.Linear(feature_dim, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        for conv, pool in zip(self.convs, self.pool, strict=True):
            x = F.relu(conv(x))
            if pool:
                x = F.max_pool2d(x, 2)
        x = F.adaptive_avg_pool2d(x, 2).flatten(1)
        return F.relu(self.hidden(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


class SmallNetFeatures(FeatureExtractor):
    """Penultimate-layer features and logits of the shipped `fmnist` or `digits` classifier.

    Takes 1-channel images at the net's resolution (Fashion-MNIST's native 28x28 is padded to 32).
    """

    def __init__(self, name: str):
        super().__init__()
        if name not in SMALL_NET_IMAGE_SIZE:
            raise ConfigError(
                f"features={name!r} is not a small net; allowed: {list(SMALL_NET_IMAGE_SIZE)}"
            )
        path = WEIGHTS_DIR / f"{name}.pt"
        if not path.is_file():
            raise WeightsNotFoundError(
                f"feature-net weights {path} missing; "
                f"run `python scripts/train_feature_net.py {name}`"
            )
        self.name, self.weights_file = name, path
        self.image_size = SMALL_NET_IMAGE_SIZE[name]
        self.net = SmallConvNet(self.image_size)
        self.net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        self.net.requires_grad_(False)
        self.num_features = self.net.hidden.out_features
        self.eval()

    def forward(self, images: torch.Tensor) -> Features:
        x = to_uint8(images).float() / 127.5 - 1
        if self.name == "fmnist" and x.shape[-1] == 28:
            x = F.pad(x, (2, 2, 2, 2), value=-1.0)
        if x.shape[1:] != (1, self.image_size, self.image_size):
            raise ConfigError(
                f"features={self.name} takes 1x{self.image_size}x{self.image_size} images, "
                f"got {tuple(images.shape[1:])}; use features=inception for other data"
            )
        hidden = self.net.features(x)
        return Features(features=hidden, logits=self.net.head(hidden))


def recorded_accuracy(name: str) -> dict:
    """The training record written beside the weights: command, test split, test accuracy."""
    return json.loads((WEIGHTS_DIR / f"{name}.json").read_text())
