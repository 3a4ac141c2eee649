"""Caption dropout for classifier-free guidance on text: a dropped caption becomes "" (GLIDE
replaces 20% of captions by the empty sequence; Stable Diffusion 10%)."""

from collections.abc import Sequence

import torch


def drop_captions(
    captions: Sequence[str], u_drop: torch.Tensor, cond_drop_prob: float
) -> list[str]:
    """Row i's caption, or "" where u_drop[i] < cond_drop_prob.

    `u_drop` [N] is the per-row uniform that `lightning.rows.draw_rows` draws from the (seed,
    step, global row) stream, so N processes drop the same global rows as one process does.
    """
    if len(captions) != len(u_drop):
        raise ValueError(f"{len(captions)} captions but {len(u_drop)} dropout draws")
    drop = (u_drop < cond_drop_prob).tolist()
    return ["" if d else c for c, d in zip(captions, drop, strict=True)]
