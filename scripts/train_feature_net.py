"""Trains the small feature network behind `features=fmnist` or `features=digits`.

    python scripts/train_feature_net.py fmnist  # Fashion-MNIST, 28x28 padded to 32: ~4 min
    python scripts/train_feature_net.py digits  # sklearn digits, 8x8: seconds

Deterministic (seed 0, one CPU thread). Writes diffusion_lab/metrics/weights/<name>.pt (state dict)
and <name>.json (command, test split, test accuracy measured through the feature extractor).
"""

import argparse
import gzip
import hashlib
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch.nn import functional as F

from diffusion_lab.metrics.small_nets import (
    SMALL_NET_IMAGE_SIZE,
    WEIGHTS_DIR,
    SmallConvNet,
    SmallNetFeatures,
)

FASHION_MNIST_DIR = Path(
    "/usr/share/datasets/fashion-mnist"
)  # apt-get install dataset-fashion-mnist
EPOCHS = {"fmnist": 8, "digits": 150}
DIGITS_TEST_SIZE = 0.25  # held-out share of sklearn's 1,797 digits (stratified, random_state=0)


def read_idx(path: Path) -> np.ndarray:
    """An idx file (LeCun's MNIST format): big-endian dims after a 4-byte magic number."""
    data = gzip.decompress(path.read_bytes())
    ndim = data[3]
    shape = np.frombuffer(data, ">u4", count=ndim, offset=4)
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(shape)


def fashion_mnist(split: str, root: Path = FASHION_MNIST_DIR) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 images [N, 1, 32, 32] (28x28 padded with black) and labels [N]; split train | test."""
    prefix = "train" if split == "train" else "t10k"
    images = torch.from_numpy(read_idx(root / f"{prefix}-images-idx3-ubyte.gz").copy())
    labels = torch.from_numpy(read_idx(root / f"{prefix}-labels-idx1-ubyte.gz").astype(np.int64))
    return F.pad(images[:, None], (2, 2, 2, 2)), labels


def digits(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """uint8 images [N, 1, 8, 8] (0..16 scaled to 0..255) and labels [N]; split train | test."""
    data = load_digits()
    train, test = train_test_split(
        np.arange(len(data.target)),
        test_size=DIGITS_TEST_SIZE,
        random_state=0,
        stratify=data.target,
    )
    index = train if split == "train" else test
    images = np.round(data.images[index] * (255 / 16)).astype(np.uint8)
    return torch.from_numpy(images[:, None]), torch.from_numpy(data.target[index])


LOADERS = {"fmnist": fashion_mnist, "digits": digits}


@torch.no_grad()
def test_accuracy(extractor: SmallNetFeatures, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Accuracy of the extractor's logits: the same path the metrics take."""
    predictions = torch.cat([extractor(batch).logits.argmax(1) for batch in images.split(1000)])
    return (predictions == labels).float().mean().item()


def train(name: str, epochs: int, seed: int) -> dict:
    torch.manual_seed(seed)
    images, labels = LOADERS[name]("train")
    x = images.float() / 127.5 - 1
    net = SmallConvNet(SMALL_NET_IMAGE_SIZE[name])
    optimizer = torch.optim.Adam(net.parameters(), lr=2e-3)
    steps = epochs * ((len(x) + 127) // 128)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=2e-3, total_steps=steps)
    for epoch in range(epochs):
        order = torch.randperm(len(x))
        for batch in order.split(128):
            loss = F.cross_entropy(net(x[batch]), labels[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
        print(f"{name} epoch {epoch + 1}/{epochs}: last batch loss {loss.item():.4f}", flush=True)

    path = WEIGHTS_DIR / f"{name}.pt"
    torch.save(net.state_dict(), path)
    test_images, test_labels = LOADERS[name]("test")
    return {
        "features": name,
        "command": f"python scripts/train_feature_net.py {name} --epochs {epochs} --seed {seed}",
        "test_split": "t10k (10,000 images)"
        if name == "fmnist"
        else "sklearn digits, 25% stratified, random_state=0",
        "num_test": len(test_labels),
        "test_accuracy": round(test_accuracy(SmallNetFeatures(name), test_images, test_labels), 4),
        "epochs": epochs,
        "seed": seed,
        "num_parameters": sum(p.numel() for p in net.parameters()),
        "weights_bytes": path.stat().st_size,
        "weights_sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "torch": torch.__version__,
        "platform": platform.machine(),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("name", choices=sorted(LOADERS))
    parser.add_argument("--epochs", type=int, default=None, help="default: fmnist 8, digits 150")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    start = time.perf_counter()
    record = train(args.name, args.epochs or EPOCHS[args.name], args.seed)
    record["train_seconds"] = round(time.perf_counter() - start, 1)
    (WEIGHTS_DIR / f"{args.name}.json").write_text(json.dumps(record, indent=2) + "\n")
    print(json.dumps(record, indent=2))


if __name__ == "__main__":
    sys.exit(main())
