"""Classifier-free guidance (Ho & Salimans 2022) as a wrapper around a class-conditional network."""

import torch


def guided_output(both: torch.Tensor, channels: int, scale: float) -> torch.Tensor:
    """The doubled batch's outputs [2N, C_out, ...] (conditional first) -> ε_u + w·(ε_c − ε_u)
    on the first `channels` channels, the conditional pass's on the rest (learned variances)."""
    cond, uncond = both.chunk(2)
    guided = uncond[:, :channels] + scale * (cond[:, :channels] - uncond[:, :channels])
    return torch.cat([guided, cond[:, channels:]], dim=1)


class ClassifierFreeGuidance(torch.nn.Module):
    """ε̂ = ε_u + w·(ε_c − ε_u): w = 1 is the conditional model unguided, w = 0 the unconditional.

    The conditional and unconditional passes run as one doubled batch. The guided combination is
    applied to the first C output channels (ε, x0 or v alike: each is affine in ε for a given x_t);
    learned variance channels, if any, are the conditional pass's.

    Args:
        model: network called as `model(x_t, t, y=labels)`, trained with label dropout.
        scale: the guidance scale w.
        null_label: the label that means "no class" (the U-Net's `num_classes`).
    """

    def __init__(self, model: torch.nn.Module, scale: float, null_label: int):
        super().__init__()
        self.model = model
        self.scale = scale
        self.null_label = null_label

    def forward(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor, **kwargs) -> torch.Tensor:
        if self.scale == 1.0:
            return self.model(x, t, y=y, **kwargs)
        null = torch.full_like(y, self.null_label)
        both = self.model(torch.cat([x, x]), torch.cat([t, t]), y=torch.cat([y, null]), **kwargs)
        return guided_output(both, x.shape[1], self.scale)
