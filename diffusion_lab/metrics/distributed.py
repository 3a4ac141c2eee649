"""Exact sharding of num_samples across ranks, per-sample noise, an all-gather that drops padding.

Rank r draws samples r, r + W, r + 2W, ... of `num_samples` (W = world size): the union over
ranks is exactly range(num_samples) whatever W is, so 50k means 50k, never rounded up to a batch.
"""

import numpy as np
import torch
import torch.distributed as dist


def shard_indices(num_samples: int, world_size: int, rank: int) -> range:
    """The global sample indices rank `rank` generates: range(rank, num_samples, world_size)."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} outside world of size {world_size}")
    return range(rank, num_samples, world_size)


def sample_seed(seed: int, index: int) -> int:
    """A seed for sample `index` of a run seeded `seed` (independent streams, SeedSequence)."""
    return int(np.random.SeedSequence([seed, index]).generate_state(1)[0])


def batch_seed(seed: int, first_index: int) -> int:
    """A seed for the noise a sampler adds on the way (ancestral steps, DDIM with η > 0) to the
    batch that starts at sample `first_index`: a stream apart from every sample's starting noise."""
    return int(np.random.SeedSequence([seed, first_index, 1]).generate_state(1)[0])


def per_sample_noise(
    indices: range | list[int],
    shape: tuple[int, ...],
    seed: int,
    device: torch.device | str = "cpu",
) -> torch.Tensor:
    """Starting noise [len(indices), *shape]; sample i's noise depends only on (seed, i), not on the
    world size or the batch it is drawn in."""
    generators = (torch.Generator().manual_seed(sample_seed(seed, i)) for i in indices)
    return torch.stack([torch.randn(shape, generator=g) for g in generators]).to(device)


def gather_samples(local: torch.Tensor, num_samples: int) -> torch.Tensor:
    """All ranks' rows [num_samples, ...] in global index order, from this rank's shard rows.

    `local` holds this rank's rows for `shard_indices(num_samples, world_size, rank)`. Shards are
    padded to equal length for all_gather (NCCL needs equal shapes) and the padding is dropped.
    Without an initialised process group this returns `local`.
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return local
    world_size, rank = dist.get_world_size(), dist.get_rank()
    expected = len(shard_indices(num_samples, world_size, rank))
    if len(local) != expected:
        raise ValueError(f"rank {rank} has {len(local)} rows, its shard has {expected}")
    per_rank = len(shard_indices(num_samples, world_size, 0))  # the longest shard
    padded = local.new_zeros((per_rank, *local.shape[1:]))
    padded[: len(local)] = local
    shards = [torch.empty_like(padded) for _ in range(world_size)]
    dist.all_gather(shards, padded.contiguous())
    out = local.new_empty((num_samples, *local.shape[1:]))
    for r, shard in enumerate(shards):
        out[r::world_size] = shard[: len(shard_indices(num_samples, world_size, r))]
    return out
