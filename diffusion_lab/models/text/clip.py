"""CLIP's text transformer as a frozen encoder (Radford et al. 2021), the one Stable Diffusion
v1 reads (Rombach et al. 2022, §3.3 and App. E), through open_clip, from a local weights file."""

from pathlib import Path

import torch

from diffusion_lab.errors import ConfigError, LabError
from diffusion_lab.models.text.frozen import FrozenTextEncoder, Held, require_file
from diffusion_lab.models.text.tokenizers import ClipTokenizer


class ClipTextEncoder(FrozenTextEncoder):
    """Captions -> CLIP's final-layer-norm token states [L, width] (SD's conditioning) and the
    end token's state as pooled (CLIP's text feature before its projection).

    Args:
        weights: open_clip weights file of `model_name` (e.g. `open_clip_pytorch_model.bin`,
            or `.safetensors`); nothing is downloaded.
        model_name: open_clip's architecture name, e.g. ViT-L-14-quickgelu for OpenAI's
            ViT-L/14 (SD v1's text encoder).
        width: the text transformer's width (ViT-L/14: 768); checked against the model.
        cache_size: captions whose states are kept.
    """

    def __init__(
        self,
        *,
        weights: str | Path | None,
        model_name: str = "ViT-L-14-quickgelu",
        width: int = 768,
        cache_size: int = 1024,
    ):
        super().__init__(width, cache_size)
        path = require_file(
            weights,
            "text_encoder.weights",
            f"open_clip's {model_name} weights (for ViT-L-14-quickgelu: open_clip_pytorch_model"
            ".bin of the timm/vit_large_patch14_clip_224.openai hub repository)",
        )
        try:
            import open_clip
        except ImportError:
            raise LabError(
                "text_encoder=clip needs open-clip-torch: pip install 'diffusion_lab[text]'"
            ) from None
        if model_name not in open_clip.list_models():
            raise ConfigError(
                f"text_encoder.model_name={model_name!r} is not an open_clip model; e.g. "
                "ViT-L-14-quickgelu, ViT-H-14, ViT-B-32 (open_clip.list_models())"
            )
        model = open_clip.create_model(model_name)
        open_clip.load_checkpoint(model, str(path))
        model.visual = None  # the image tower is not needed
        if model.ln_final.normalized_shape[0] != width:
            raise ConfigError(
                f"text_encoder.width={width}, but {model_name}'s text transformer is "
                f"{model.ln_final.normalized_shape[0]} wide; set text_encoder.width to it"
            )
        self.held = Held(model)
        self.weights_path = path
        self.tokenizer = ClipTokenizer(model.context_length)

    def encode_uncached(self, captions: list[str]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        model = self.held.module
        tokens, mask = self.tokenizer(captions)
        tokens = tokens.to(model.positional_embedding.device)
        x = model.token_embedding(tokens) + model.positional_embedding
        # CLIP's causal mask: a token sees only those before it, so padding changes nothing
        x = model.ln_final(model.transformer(x, attn_mask=model.attn_mask))
        lengths = mask.sum(dim=1).tolist()
        return [(x[i, :n], x[i, n - 1]) for i, n in enumerate(lengths)]
