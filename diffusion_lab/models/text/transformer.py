"""GLIDE's text transformer, trained jointly with the U-Net (Nichol et al. 2022, §2.2 and App. A;
its `text2im_model.py` and `xf.py`): token and position embeddings, residual attention blocks,
a final layer norm; every token's state, and the end token's as the pooled state."""

from collections.abc import Sequence

import torch
from torch import nn

from diffusion_lab.errors import ConfigError
from diffusion_lab.models.blocks import masked_attention
from diffusion_lab.models.text.states import TextStates
from diffusion_lab.models.text.tokenizers import WordTokenizer


class MultiheadAttention(nn.Module):
    """Self-attention over the caption's real tokens (padding is masked out as keys, so it
    changes nothing; GLIDE attends to a learned padding embedding instead)."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.heads = heads
        self.c_qkv = nn.Linear(width, 3 * width)
        self.c_proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        n, length, width = x.shape
        qkv = self.c_qkv(x).view(n, length, 3, self.heads, width // self.heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each [N, heads, L, head_dim]
        a = masked_attention(q, k, v, mask)
        return self.c_proj(a.transpose(1, 2).reshape(n, length, width))


class ResidualAttentionBlock(nn.Module):
    """Pre-norm transformer layer: x + attn(ln_1(x)), then x + mlp(ln_2(x)) (CLIP's, GLIDE's)."""

    def __init__(self, width: int, heads: int):
        super().__init__()
        self.ln_1 = nn.LayerNorm(width)
        self.attn = MultiheadAttention(width, heads)
        self.ln_2 = nn.LayerNorm(width)
        self.mlp = nn.Sequential(
            nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width)
        )

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), mask)
        return x + self.mlp(self.ln_2(x))


class TransformerTextEncoder(nn.Module):
    """Captions [N] -> TextStates (tokens [N, context_length, width]), trained with the U-Net.

    Args:
        vocab: the words of the captions (`WordTokenizer.from_captions(...).words[4:]`); kept in
            the config so a checkpoint rebuilds the same tokenizer.
        context_length: tokens per caption, start and end included (GLIDE's text_ctx: 128).
        width: state width D (GLIDE's xf_width: 2048); the U-Net's `text_channels`.
        layers: transformer layers (GLIDE: 16).
        heads: attention heads (GLIDE: 32).
    """

    trainable = True

    def __init__(
        self,
        *,
        vocab: Sequence[str],
        context_length: int = 32,
        width: int = 128,
        layers: int = 2,
        heads: int = 4,
    ):
        super().__init__()
        if not vocab:
            raise ConfigError(
                "text_encoder.vocab is empty: the transformer's words come from the captions "
                "(WordTokenizer.from_captions(datamodule.captions()))"
            )
        if width <= 0 or heads <= 0 or width % heads:
            raise ConfigError(
                f"text_encoder.heads={heads} must divide text_encoder.width={width} (both > 0)"
            )
        self.tokenizer = WordTokenizer(list(vocab), context_length)
        self.width = width
        self.token_embedding = nn.Embedding(self.tokenizer.n_vocab, width)
        self.positional_embedding = nn.Parameter(torch.empty(context_length, width))
        self.transformer = nn.ModuleList(
            ResidualAttentionBlock(width, heads) for _ in range(layers)
        )
        self.final_ln = nn.LayerNorm(width)
        # GLIDE's token embedding keeps nn.Embedding's N(0, 1): each word's identity dominates
        # its residual stream (CLIP's std 0.02 lets it drown in the blocks' outputs).
        nn.init.normal_(self.positional_embedding, std=0.01)

    def forward(self, captions: Sequence[str]) -> TextStates:
        tokens, mask = self.tokenizer(captions)
        device = self.positional_embedding.device
        return self.encode(tokens.to(device), mask.to(device))

    def encode(self, tokens: torch.Tensor, mask: torch.Tensor) -> TextStates:
        """tokens [N, L] and mask [N, L] (L <= context_length) -> TextStates [N, L, width]."""
        x = self.token_embedding(tokens) + self.positional_embedding[: tokens.shape[1]]
        for block in self.transformer:
            x = block(x, mask)
        x = self.final_ln(x)
        end = mask.sum(dim=1) - 1  # the end token: the last real one
        pooled = x[torch.arange(x.shape[0], device=x.device), end]
        # padded positions hold states of nothing: zero them, so they cannot leak anywhere
        return TextStates(x * mask[..., None], mask, pooled)
