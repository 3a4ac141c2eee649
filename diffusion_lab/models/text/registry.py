"""Text encoders by name (`text_encoder=` config group): the one place that lists them."""

from collections.abc import Iterable, Mapping
from typing import Any

from torch import nn

from diffusion_lab.errors import ConfigError
from diffusion_lab.models.text.clip import ClipTextEncoder
from diffusion_lab.models.text.t5 import T5TextEncoder
from diffusion_lab.models.text.tokenizers import WordTokenizer
from diffusion_lab.models.text.transformer import TransformerTextEncoder

TEXT_ENCODERS: dict[str, type[nn.Module]] = {
    "transformer": TransformerTextEncoder,  # GLIDE: trained with the U-Net
    "clip": ClipTextEncoder,  # Stable Diffusion: frozen
    "t5": T5TextEncoder,  # Imagen: frozen
}


def build_text_encoder(config: Mapping[str, Any]) -> nn.Module:
    """The encoder that `config` (a conf/text_encoder/*.yaml: `name` and its options) names."""
    options = dict(config)
    name = options.pop("name", None)
    if name not in TEXT_ENCODERS:
        raise ConfigError(
            f"text_encoder.name={name!r} is not a text encoder; choose one of: "
            f"{', '.join(TEXT_ENCODERS)}"
        )
    return TEXT_ENCODERS[name](**options)


def needs_vocab(config: Mapping[str, Any] | None) -> bool:
    """Whether `config` names the transformer and leaves its words to the training captions."""
    return config is not None and config.get("name") == "transformer" and not config.get("vocab")


def vocab_of(captions: Iterable[str], context_length: int) -> list[str]:
    """The transformer's `vocab`: every word of the captions, sorted (`WordTokenizer`'s own
    special tokens left out, as the encoder adds them)."""
    words = WordTokenizer.from_captions(captions, context_length).words
    return words[len(WordTokenizer.specials) :]
