"""Exact sharding: the ranks together draw exactly num_samples distinct samples, and gather them."""

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from diffusion_lab.metrics import batch_seed, gather_samples, per_sample_noise, shard_indices


@pytest.mark.parametrize("num_samples", [0, 1, 7, 50_000])
@pytest.mark.parametrize("world_size", [1, 2, 3, 8])
def test_shards_cover_every_index_exactly_once(num_samples, world_size):
    shards = [shard_indices(num_samples, world_size, rank) for rank in range(world_size)]
    indices = [i for shard in shards for i in shard]
    assert sorted(indices) == list(range(num_samples))
    assert max(map(len, shards)) - min(map(len, shards)) <= 1


def test_per_sample_noise_does_not_depend_on_how_samples_are_split():
    whole = per_sample_noise(range(6), (2, 3), seed=5)
    torch.testing.assert_close(per_sample_noise(range(1, 6, 2), (2, 3), seed=5), whole[1::2])
    assert not torch.equal(per_sample_noise(range(6), (2, 3), seed=6), whole)
    assert len({tuple(x.flatten().tolist()) for x in whole}) == 6


def test_a_batch_s_later_noise_is_not_its_first_sample_s_starting_noise():
    starts = per_sample_noise(range(4), (16,), seed=0)
    for first in range(4):
        later = torch.randn(16, generator=torch.Generator().manual_seed(batch_seed(0, first)))
        assert not any(torch.allclose(later, start) for start in starts)


def draw_and_gather(
    rank: int, world_size: int, num_samples: int, rendezvous: str, out: str
) -> None:
    torch.set_num_threads(1)
    dist.init_process_group(
        "gloo", init_method=f"file://{rendezvous}", rank=rank, world_size=world_size
    )
    try:
        local = per_sample_noise(shard_indices(num_samples, world_size, rank), (4,), seed=0)
        gathered = gather_samples(local, num_samples)
        if rank == 0:
            torch.save(gathered, out)
    finally:
        dist.destroy_process_group()


def test_two_gloo_processes_gather_exactly_num_samples_distinct_samples(tmp_path, monkeypatch):
    num_samples = 7  # odd: rank 1's shard is one shorter and padded for all_gather
    out = tmp_path / "gathered.pt"
    if "OMP_NUM_THREADS" not in os.environ:  # for this test only: later tests keep their threads
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
    mp.start_processes(
        draw_and_gather,
        args=(2, num_samples, str(tmp_path / "rendezvous"), str(out)),
        nprocs=2,
        start_method="fork",
    )
    gathered = torch.load(out)
    assert gathered.shape == (num_samples, 4)
    assert len({tuple(row.tolist()) for row in gathered}) == num_samples
    torch.testing.assert_close(gathered, per_sample_noise(range(num_samples), (4,), seed=0))


def test_gather_without_process_group_returns_local_rows():
    x = torch.arange(5.0)
    assert gather_samples(x, 5) is x
