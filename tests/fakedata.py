"""Tiny fake copies of the datasets, in their real on-disk formats, for everyone's tests.

Every helper writes under `root` and returns the path a datamodule's `root` should point at.
Pixel values always include 0 and 255, so scaled batches reach both -1 and 1.
"""

import gzip
import os
import pickle
import struct
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

CELEBA_ATTRIBUTES = (
    "5_o_Clock_Shadow Arched_Eyebrows Attractive Bags_Under_Eyes Bald Bangs Big_Lips Big_Nose "
    "Black_Hair Blond_Hair Blurry Brown_Hair Bushy_Eyebrows Chubby Double_Chin Eyeglasses Goatee "
    "Gray_Hair Heavy_Makeup High_Cheekbones Male Mouth_Slightly_Open Mustache Narrow_Eyes No_Beard "
    "Oval_Face Pale_Skin Pointy_Nose Receding_Hairline Rosy_Cheeks Sideburns Smiling Straight_Hair "
    "Wavy_Hair Wearing_Earrings Wearing_Hat Wearing_Lipstick Wearing_Necklace Wearing_Necktie Young"
).split()
LANDMARKS = (
    "lefteye_x lefteye_y righteye_x righteye_y nose_x nose_y "
    "leftmouth_x leftmouth_y rightmouth_x rightmouth_y"
)


def noise(rng: np.random.Generator, shape: Sequence[int]) -> np.ndarray:
    """Random uint8 pixels with one 0 and one 255, so both ends of the range occur."""
    pixels = rng.integers(0, 256, size=shape, dtype=np.uint8)
    pixels.flat[0], pixels.flat[-1] = 0, 255
    return pixels


def make_fake_cifar10(root: str | Path, n_train: int = 20, n_test: int = 10, seed: int = 0) -> Path:
    """`root/cifar-10-batches-py/` as torchvision reads it: five training batches, a test batch and
    `batches.meta`, pickled dicts of `data` (uint8 [N, 3072], channel-major) and `labels`."""
    folder = Path(root) / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)

    def write(name: str, n: int) -> None:
        batch = {"data": noise(rng, (n, 3072)), "labels": [i % 10 for i in range(n)]}
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f)

    for i, part in enumerate(np.array_split(np.arange(n_train), 5), start=1):
        write(f"data_batch_{i}", len(part))
    write("test_batch", n_test)
    names = "airplane automobile bird cat deer dog frog horse ship truck".split()
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": names, "num_cases_per_batch": n_train // 5, "num_vis": 3072}, f)
    return Path(root)


def make_fake_celeba(root: str | Path, n: int = 12) -> Path:
    """`root/celeba/`: `img_align_celeba/000001.jpg`... (178x218 JPEGs) and the five annotation
    files in their real formats. Split: the last max(2, n//6) images "test", as many before
    them "valid", the rest "train".

    Every image is mid-grey except DDIM's 128x128 face box (rows 57-184, cols 25-152): its left
    half white, its right half black, so a test can tell the crop used and whether it flipped.
    """
    folder = Path(root) / "celeba"
    (folder / "img_align_celeba").mkdir(parents=True, exist_ok=True)
    pixels = np.full((218, 178, 3), 128, dtype=np.uint8)
    pixels[57:185, 25:89] = 255
    pixels[57:185, 89:153] = 0
    names = [f"{i:06d}.jpg" for i in range(1, n + 1)]
    for name in names:
        Image.fromarray(pixels).save(folder / "img_align_celeba" / name, quality=95)

    n_held = max(2, n // 6)  # torchvision's CelebA cannot load a split of exactly one image
    if n < 2 * n_held + 1:
        raise ValueError(f"make_fake_celeba needs n >= {2 * n_held + 1}, got {n}")
    partition = [0] * (n - 2 * n_held) + [1] * n_held + [2] * n_held
    rows = {
        "list_eval_partition.txt": [f"{m} {p}" for m, p in zip(names, partition, strict=True)],
        "identity_CelebA.txt": [f"{m} {1 + i % 3}" for i, m in enumerate(names)],
    }
    signs = ["  1" if i % 2 else " -1" for i in range(len(CELEBA_ATTRIBUTES))]
    header = {
        "list_attr_celeba.txt": " ".join(CELEBA_ATTRIBUTES) + " ",
        "list_bbox_celeba.txt": "image_id x_1 y_1 width height",
        "list_landmarks_align_celeba.txt": LANDMARKS,
    }
    body = {
        "list_attr_celeba.txt": [f"{m}{''.join(signs)}" for m in names],
        "list_bbox_celeba.txt": [f"{m:<10}    95  71 226 313" for m in names],
        "list_landmarks_align_celeba.txt": [
            f"{m:<10}   69  109  106  113   77  142   73  152  108  154" for m in names
        ],
    }
    for name, head in header.items():
        rows[name] = [str(n), head, *body[name]]
    for name, lines in rows.items():
        (folder / name).write_text("\n".join(lines) + "\n")
    return Path(root)


def make_fake_image_folder(
    root: str | Path,
    classes: Sequence[str] | None = ("cat", "dog"),
    n_per_class: int = 6,
    size: tuple[int, int] = (40, 30),
    seed: int = 0,
) -> Path:
    """RGB PNGs of `size` (width, height) in one sub-folder per class, or straight in `root` when
    `classes` is None or empty. Every second image goes one folder deeper (`nested/`), to test
    the recursive search."""
    rng = np.random.default_rng(seed)
    for folder in [Path(root) / c for c in classes] if classes else [Path(root)]:
        (folder / "nested").mkdir(parents=True, exist_ok=True)
        for i in range(n_per_class):
            path = folder / ("nested" if i % 2 else "") / f"img_{i:03d}.png"
            Image.fromarray(noise(rng, (size[1], size[0], 3))).save(path)
    return Path(root)


def idx_bytes(array: np.ndarray) -> bytes:
    """The idx format of (Fashion-)MNIST: big-endian magic (uint8 type, ndim), sizes, then data."""
    header = struct.pack(">I", 0x0800 | array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def make_fake_fashion_mnist(
    root: str | Path, n_train: int = 20, n_test: int = 10, gzipped: bool = False, seed: int = 0
) -> Path:
    """The four idx files: raw under `root/FashionMNIST/raw/` (as torchvision wants), or with
    `gzipped=True` as `*.gz` straight in `root` (as Debian's `dataset-fashion-mnist` ships them).
    Images are black (0) with a random 20x20 centre, like the real ones' empty border."""
    rng = np.random.default_rng(seed)
    folder = Path(root) if gzipped else Path(root) / "FashionMNIST" / "raw"
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        images = np.zeros((n, 28, 28), dtype=np.uint8)
        images[:, 4:24, 4:24] = noise(rng, (n, 20, 20))
        labels = np.arange(n) % 10
        files = {f"{prefix}-images-idx3-ubyte": images, f"{prefix}-labels-idx1-ubyte": labels}
        for name, array in files.items():
            data = idx_bytes(array)
            if gzipped:
                (folder / f"{name}.gz").write_bytes(gzip.compress(data))
            else:
                (folder / name).write_bytes(data)
    return Path(root)


def exists(fpath: str | Path, md5: str | None = None) -> bool:
    return os.path.isfile(fpath)


def bypass_integrity_checks(monkeypatch) -> None:
    """Makes torchvision's CIFAR-10 and CelebA check that their files exist, not their MD5s, so
    the fakes above load. Tests only: `monkeypatch` (pytest's fixture) undoes it afterwards."""
    monkeypatch.setattr("torchvision.datasets.cifar.check_integrity", exists)
    monkeypatch.setattr("torchvision.datasets.celeba.check_integrity", exists)
