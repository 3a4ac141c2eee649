"""Classifier guidance (Dhariwal & Nichol 2021, Algorithms 1 and 2): s·∇ log p_φ(y | x_t)."""

import torch


class ClassifierGuidance(torch.nn.Module):
    """The samplers' `cond_fn(x, t, y=...)` = s·∇_x log p_φ(y | x_t, t) [N, C, H, W].

    Ancestral sampling shifts the mean by Σ·cond_fn (Algorithm 1); DDIM and the ODE solvers use
    the score form ε̂ = ε − √(1−ᾱ_t)·cond_fn (Algorithm 2). s = 0 is no guidance. A module, so
    that the classifier moves to the sampling device with the network.

    Args:
        classifier: noisy classifier called as `classifier(x_t, t)` -> logits [N, K], t the
            original timesteps.
        scale: the gradient scale s.
    """

    def __init__(self, classifier: torch.nn.Module, scale: float):
        super().__init__()
        self.classifier = classifier
        self.scale = scale

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor, **_) -> torch.Tensor:
        if self.scale == 0:
            return torch.zeros_like(x)
        # samplers run under no_grad, Lightning's predict under inference mode: leave both
        with torch.inference_mode(False), torch.enable_grad():
            x_in = x.detach().clone().requires_grad_(True)
            log_probs = torch.log_softmax(self.classifier(x_in, t.clone()).float(), dim=-1)
            selected = log_probs.gather(1, y.clone().view(-1, 1))
            gradient = torch.autograd.grad(selected.sum(), x_in)[0]
        return gradient * self.scale


class IgnoreLabels(torch.nn.Module):
    """An unconditional network that accepts (and ignores) the labels meant for `cond_fn`."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None, **kwargs):
        return self.model(x, t, **kwargs)
