"""Text encoders for text-to-image diffusion: captions -> TextStates that the U-Net reads."""

from diffusion_lab.models.text.clip import ClipTextEncoder
from diffusion_lab.models.text.registry import TEXT_ENCODERS, build_text_encoder
from diffusion_lab.models.text.states import TextStates
from diffusion_lab.models.text.t5 import T5TextEncoder
from diffusion_lab.models.text.tokenizers import ClipTokenizer, WordTokenizer
from diffusion_lab.models.text.transformer import TransformerTextEncoder

__all__ = [
    "TEXT_ENCODERS",
    "ClipTextEncoder",
    "ClipTokenizer",
    "T5TextEncoder",
    "TextStates",
    "TransformerTextEncoder",
    "WordTokenizer",
    "build_text_encoder",
]
