"""Test-set negative log-likelihood in bits/dim by the variational bound, and its standard error."""

import math
from collections.abc import Iterable

import torch


@torch.no_grad()
def bits_per_dim(
    diffusion,
    model,
    batches: Iterable[tuple],
    *,
    device: torch.device | str = "cpu",
    class_conditional: bool = False,
    clip_denoised: bool = True,
    text_encoder: torch.nn.Module | None = None,
) -> torch.Tensor:
    """Per-image bound L_0 + L_1 + ... + L_{T-1} + L_T in bits/dim [N] (Ho et al. 2020, eq. 5).

    `batches` yields (images [B, C, H, W] in [-1, 1], labels [B][, captions]); every one of the
    T steps is evaluated (`calc_bpd_loop`), as Improved DDPM's Table 2 does. A class-conditional
    model is given the true labels, so the result bounds -log2 p(x | y); with `text_encoder`, the
    true captions: -log2 p(x | caption).
    """
    parts = []
    for images, labels, *captions in batches:
        model_kwargs = {"y": labels.to(device)} if class_conditional else {}
        if text_encoder is not None:
            model_kwargs["text"] = text_encoder(list(captions[0]))
        terms = diffusion.calc_bpd_loop(
            model, images.to(device), clip_denoised=clip_denoised, model_kwargs=model_kwargs
        )
        parts.append(terms["total_bpd"].cpu())
    return torch.cat(parts)


def mean_and_stderr(values: torch.Tensor) -> tuple[float, float]:
    """The mean of per-image values [N] and its standard error std / sqrt(N) (std with N - 1)."""
    if len(values) < 2:
        raise ValueError(f"a standard error needs at least 2 values, got {len(values)}")
    values = values.double()
    return float(values.mean()), float(values.std(correction=1) / math.sqrt(len(values)))
