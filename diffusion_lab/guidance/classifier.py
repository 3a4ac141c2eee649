"""Classifier guidance (Dhariwal & Nichol 2021, Algorithms 1 and 2): ∇ log p(y|x_t)."""

from collections.abc import Callable

import torch


def classifier_cond_fn(
    classifier: Callable[..., torch.Tensor], scale: float
) -> Callable[..., torch.Tensor]:
    """`cond_fn(x, t, y=...)` = s·∇_x log p_φ(y | x_t, t), for the samplers' `cond_fn` hook.

    Ancestral sampling shifts the mean by Σ·cond_fn (Algorithm 1); DDIM and the ODE solvers use
    the score form ε̂ = ε − √(1−ᾱ_t)·cond_fn (Algorithm 2).
    """

    def cond_fn(x: torch.Tensor, t: torch.Tensor, y: torch.Tensor, **_) -> torch.Tensor:
        if scale == 0:
            return torch.zeros_like(x)
        with torch.enable_grad():
            x_in = x.detach().requires_grad_(True)
            log_probs = torch.log_softmax(classifier(x_in, t).float(), dim=-1)
            selected = log_probs[torch.arange(len(y), device=y.device), y]
            return torch.autograd.grad(selected.sum(), x_in)[0] * scale

    return cond_fn


class IgnoreLabels(torch.nn.Module):
    """An unconditional network that accepts (and ignores) the labels meant for `cond_fn`."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None, **kwargs):
        return self.model(x, t, **kwargs)
