"""Randomness by global batch row: what each process draws depends on (seed, step, row) only.

Under data parallelism process r of N holds rows r, r + N, ... of the global batch (the
interleaving of `DistributedSampler`). Each row draws its timestep, its label-dropout coin and its
noise from a stream of its own, so a process draws only its rows — its memory and time do not
grow with N — and N processes draw exactly what one process with an N-times batch draws.
"""

import hashlib

import torch


def stream_seed(*key: int | str) -> int:
    """A 63-bit seed from a key such as (seed, step, row): distinct keys, unrelated streams."""
    digest = hashlib.blake2b("/".join(map(str, key)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


def global_rows(local_batch: int, world_size: int, rank: int, micro_batch: int = 0) -> range:
    """The global rows of process `rank`'s local batch; with gradient accumulation, micro-batch
    k of an optimizer step holds rows k·N·B + r, k·N·B + r + N, ... (N processes, batch B), so
    K accumulated micro-batches draw like one K-times batch."""
    start = micro_batch * local_batch * world_size
    return range(start + rank, start + local_batch * world_size, world_size)


def draw_rows(
    seed: int, step: int, rows: range, image_shape: tuple[int, ...]
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(u_t [n], u_drop [n], noise [n, *image_shape]) on the CPU, float32: row g's values come
    from the CPU stream seeded by (seed, step, g), the same on any device and process count."""
    u_t, u_drop, noise = [], [], []
    for row in rows:
        generator = torch.Generator().manual_seed(stream_seed(seed, step, row))
        u_t.append(torch.rand((), generator=generator))
        u_drop.append(torch.rand((), generator=generator))
        noise.append(torch.randn(image_shape, generator=generator))
    return torch.stack(u_t), torch.stack(u_drop), torch.stack(noise)
