"""Classifier-free guidance on captions (GLIDE §3.2; Ho & Salimans 2022): the empty caption is
the unconditional input."""

import torch

from diffusion_lab.guidance.classifier_free import guided_output
from diffusion_lab.models.text.states import TextStates


class CaptionClassifierFreeGuidance(torch.nn.Module):
    """ε̂ = ε(x_t | "") + w·(ε(x_t | caption) − ε(x_t | "")): w = 1 is the caption-conditional
    model unguided, w = 0 the unconditional one.

    Both passes run as one doubled batch, the captions' states and the empty caption's padded
    to one length (padding is masked: it changes nothing). Encode the captions once, before
    sampling, and pass them as `text` in the sampler's `model_kwargs`.

    Args:
        model: network called as `model(x_t, t, text=TextStates)`, trained with caption dropout.
        scale: the guidance scale w.
        empty: the text encoder's states of the empty caption (one row).
    """

    def __init__(self, model: torch.nn.Module, scale: float, empty: TextStates):
        super().__init__()
        self.model = model
        self.scale = scale
        self.empty = empty

    def forward(self, x: torch.Tensor, t: torch.Tensor, text: TextStates, **kwargs) -> torch.Tensor:
        if self.scale == 1.0:
            return self.model(x, t, text=text, **kwargs)
        both = TextStates.cat([text, self.empty.to(text.tokens.device).expand(len(text))])
        out = self.model(torch.cat([x, x]), torch.cat([t, t]), text=both, **kwargs)
        return guided_output(out, x.shape[1], self.scale)
