"""Shared by the datamodules: the [-1, 1] scaling, config checks, seeded splits, loaders."""

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Literal

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler
from torchvision import transforms

from diffusion_lab.errors import ConfigError

Split = Literal["train", "test"]


def to_signed(x: torch.Tensor) -> torch.Tensor:
    """Maps [0, 1] to [-1, 1], DDPM's data range (Ho et al. 2020, §3.3); 0 and 1 map exactly."""
    return x * 2 - 1


def signed_tensor(*augment: Any) -> transforms.Compose:
    """PIL image -> optional PIL augmentations -> float32 tensor [C, H, W] in [-1, 1]."""
    return transforms.Compose([*augment, transforms.ToTensor(), to_signed])


class ZeroLabels(Dataset):
    """Wraps an image dataset whose targets are not class labels; every label becomes 0."""

    def __init__(self, dataset: Dataset):
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.dataset[index][0], 0


def first_line(err: BaseException) -> str:
    """An exception as one line, for the one-line messages the CLI prints."""
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0]}" if text else type(err).__name__


def check_choice(key: str, value: Any, allowed: Sequence[Any], dataset: str) -> None:
    if value not in allowed:
        choices = ", ".join(repr(a) for a in allowed)
        raise ConfigError(
            f"data.{key}={value!r} is not supported for {dataset}; allowed: {choices}"
        )


def check_int(key: str, value: Any, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"data.{key}={value!r} must be an integer >= {minimum}")


def check_fraction(key: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1:
        raise ConfigError(f"data.{key}={value!r} must lie strictly between 0 and 1")


def check_split(split: str) -> None:
    if split not in ("train", "test"):
        raise ConfigError(f"reference split {split!r} is not supported; allowed: 'train', 'test'")


def seeded_split(n: int, val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """A random (train, validation) partition of range(n), the same for the same seed everywhere."""
    n_val = max(1, round(n * val_fraction))
    if n_val >= n:
        raise ConfigError(
            f"data.val_fraction={val_fraction} leaves no training images out of {n}; lower it"
        )
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    return sorted(order[n_val:]), sorted(order[:n_val])


class EpochSampler(DistributedSampler):
    """`DistributedSampler` (also for one process) that can begin an epoch part-way, at resume.

    Its order depends only on (seed, epoch), never on the global RNG, and process r of N takes
    positions r, r + N, ... of the shuffled order.
    """

    def __init__(self, dataset: Dataset, num_replicas: int, rank: int, seed: int):
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed)
        self.start = 0  # indices of the current epoch already consumed before a resume

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:
            self.start = 0
        super().set_epoch(epoch)

    def __iter__(self) -> Iterator[int]:
        indices = list(super().__iter__())[self.start :]
        self.start = 0
        return iter(indices)


class ResumableLoader(DataLoader):
    """A training DataLoader whose place in the epoch goes into Lightning's checkpoints
    (`state_dict` / `load_state_dict`): a resumed run sees the batches an uninterrupted one would.
    """

    sampler: EpochSampler

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.position = 0  # batches yielded in the current epoch

    def __iter__(self) -> Iterator[Any]:
        self.position = self.sampler.start // self.batch_size
        self.generator.manual_seed(self.sampler.seed + self.sampler.epoch)  # worker seeds
        for batch in super().__iter__():
            self.position += 1
            yield batch

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.sampler.epoch, "position": self.position}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.sampler.set_epoch(state["epoch"])
        self.sampler.start = state["position"] * self.batch_size


class ImageDataModule(L.LightningDataModule):
    """Loader settings, splits and dataloaders; subclasses say how to read a split (`dataset`).

    Batches are (images float32 [N, C, H, W] in [-1, 1], labels int64 [N]).
    """

    image_size: int
    channels: int
    num_classes: int | None
    val_split = "test"  # the split validation runs on

    def __init__(
        self,
        *,
        image_size: int,
        channels: int,
        num_classes: int | None,
        batch_size: int = 128,
        num_workers: int = 0,
        pin_memory: bool = False,
        persistent_workers: bool = False,
    ):
        """The images' shape and label count (checked by each dataset), then the loader settings
        that every dataset takes as `**loader`: `batch_size` per process, `num_workers` loader
        processes, `pin_memory` (with CUDA only), `persistent_workers` (with workers only)."""
        super().__init__()
        check_int("batch_size", batch_size, 1)
        check_int("num_workers", num_workers, 0)
        self.image_size, self.channels, self.num_classes = image_size, channels, num_classes
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.persistent_workers = persistent_workers
        self.train_set: Dataset | None = None
        self.val_set: Dataset | None = None

    def dataset(self, split: str, augment: bool) -> Dataset:
        """The images of `split` ("train", "test" or `val_split`), augmented for training if
        `augment`."""
        raise NotImplementedError

    def setup(self, stage: str | None = None) -> None:
        if stage in (None, "fit"):
            self.train_set = self.dataset("train", augment=True)
        self.val_set = self.dataset(self.val_split, augment=False)

    def reference_dataset(self, split: Split) -> Dataset:
        """The `split` images without augmentation: what FID reference statistics use."""
        check_split(split)
        return self.dataset(split, augment=False)

    def reference_settings(self) -> dict[str, Any]:
        """The settings that decide the reference images' pixels besides the files: shape, value
        range and each dataset's own (root, split seed, crop, resize); part of the cache key."""
        return {"image_size": self.image_size, "channels": self.channels, "range": [-1, 1]}

    def reference_files(self, split: Split) -> list[str | Path]:
        """The files `split`'s images are read from; the cache key holds their names, sizes and
        modification times (a missing file counts as changed)."""
        raise NotImplementedError(
            f"{type(self).__name__} must list the files its images are read from"
        )

    def train_dataloader(self) -> DataLoader:
        """Shuffled by (seed, epoch): `PL_GLOBAL_SEED`, which `seed_everything` sets on every rank.

        `batch_size` is per process; each process gets its own share of every epoch.
        """
        dataset = self._checked(self.train_set)
        trainer = self.trainer
        world, rank = (trainer.world_size, trainer.global_rank) if trainer else (1, 0)
        seed = int(os.environ.get("PL_GLOBAL_SEED", 0))
        sampler = EpochSampler(dataset, num_replicas=world, rank=rank, seed=seed)
        return ResumableLoader(
            dataset, sampler=sampler, generator=torch.Generator(), **self._loader_options()
        )

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self._checked(self.val_set), shuffle=False, **self._loader_options())

    def _checked(self, dataset: Dataset | None) -> Dataset:
        if dataset is None:
            raise RuntimeError(f"{type(self).__name__}.setup() must run before its dataloaders")
        return dataset

    def _loader_options(self) -> dict[str, Any]:
        return {
            "batch_size": self.batch_size,
            "num_workers": self.num_workers,
            # pinning without CUDA only warns; persistent workers need workers
            "pin_memory": self.pin_memory and torch.cuda.is_available(),
            "persistent_workers": self.persistent_workers and self.num_workers > 0,
        }
