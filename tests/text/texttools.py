"""Tiny text-conditioned networks and encoders shared by the text-to-image tests."""

import torch

from diffusion_lab.models import UNetModel
from diffusion_lab.models.text import TransformerTextEncoder, WordTokenizer

CAPTIONS = ["a small red sneaker on the left", "a blue trouser, large", "a bright image", ""]
TEXT_WIDTH = 16


def tiny_encoder(context_length: int = 24, seed: int = 0) -> TransformerTextEncoder:
    torch.manual_seed(seed)
    vocab = WordTokenizer.from_captions(CAPTIONS, context_length).words[4:]
    return TransformerTextEncoder(
        vocab=vocab, context_length=context_length, width=TEXT_WIDTH, layers=2, heads=2
    )


def tiny_text_unet(text_mode: str, seed: int = 0, **overrides) -> UNetModel:
    """8x8 RGB, two levels, attention at 4x4 and in the middle block."""
    torch.manual_seed(seed)
    kwargs = {
        "image_size": 8,
        "in_channels": 3,
        "model_channels": 32,
        "channel_mult": (1, 2),
        "num_res_blocks": 1,
        "attention_resolutions": [4],
        "num_head_channels": 16,
        "text_channels": TEXT_WIDTH,
        "text_mode": text_mode,
        **overrides,
    }
    return UNetModel(**kwargs)


@torch.no_grad()
def randomise(module: torch.nn.Module, keep=lambda name: False, seed: int = 1) -> None:
    """Every parameter (except those `keep(name)` spares) drawn N(0, 0.2²): a network whose
    zero-initialised layers have moved, as after training."""
    generator = torch.Generator().manual_seed(seed)
    for name, p in module.named_parameters():
        if not keep(name):
            p.copy_(0.2 * torch.randn(p.shape, generator=generator, dtype=p.dtype))
