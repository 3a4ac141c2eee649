"""Stable Diffusion's SpatialTransformer (Rombach et al. 2022, §3.3; its `attention.py`): the
U-Net's feature map as H·W tokens through self-attention, cross-attention to the caption's token
states, and a feed-forward layer, between a zero-initialised output projection and a residual."""

import torch
import torch.nn.functional as F
from torch import nn

from diffusion_lab.models.blocks import (
    Conventions,
    TextConditionedBlock,
    head_count,
    masked_attention,
    normalization,
    zero_module,
)
from diffusion_lab.models.text.states import TextStates


class CrossAttention(nn.Module):
    """Attention of `x` [N, L_q, dim] to `context` [N, L_k, context_dim] (x itself if None),
    over the keys where `mask` [N, L_k] is True; unbiased q, k, v projections as in SD."""

    def __init__(self, query_dim: int, heads: int, context_dim: int | None = None):
        super().__init__()
        context_dim = context_dim or query_dim
        self.heads = heads
        self.to_q = nn.Linear(query_dim, query_dim, bias=False)
        self.to_k = nn.Linear(context_dim, query_dim, bias=False)
        self.to_v = nn.Linear(context_dim, query_dim, bias=False)
        self.to_out = nn.Linear(query_dim, query_dim)

    def forward(
        self,
        x: torch.Tensor,
        context: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        context = x if context is None else context
        n, length, dim = x.shape

        def heads(t: torch.Tensor) -> torch.Tensor:  # [N, L, dim] -> [N, heads, L, dim / heads]
            return t.view(n, t.shape[1], self.heads, dim // self.heads).transpose(1, 2)

        q, k, v = heads(self.to_q(x)), heads(self.to_k(context)), heads(self.to_v(context))
        a = masked_attention(q, k, v, mask)
        return self.to_out(a.transpose(1, 2).reshape(n, length, dim))


class GEGLU(nn.Module):
    """A GELU-gated linear unit (Shazeer 2020), SD's feed-forward input layer."""

    def __init__(self, dim_in: int, dim_out: int):
        super().__init__()
        self.proj = nn.Linear(dim_in, 2 * dim_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x, gate = self.proj(x).chunk(2, dim=-1)
        return x * F.gelu(gate)


class BasicTransformerBlock(nn.Module):
    """x + attn1(norm1(x)) (self), x + attn2(norm2(x), text) (cross), x + ff(norm3(x))."""

    def __init__(self, dim: int, heads: int, context_dim: int):
        super().__init__()
        self.attn1 = CrossAttention(dim, heads)
        self.ff = nn.Sequential(GEGLU(dim, 4 * dim), nn.Linear(4 * dim, dim))
        self.attn2 = CrossAttention(dim, heads, context_dim)
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(dim)
        self.norm3 = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor, text: TextStates) -> torch.Tensor:
        x = x + self.attn1(self.norm1(x))
        x = x + self.attn2(self.norm2(x), text.tokens, text.mask)
        return x + self.ff(self.norm3(x))


class SpatialTransformer(TextConditionedBlock):
    """[N, C, H, W] -> GroupNorm, 1×1 proj_in, `depth` transformer blocks over the H·W tokens,
    1×1 proj_out (zeroed: the block starts as the identity, the caption changes nothing),
    plus the input."""

    def __init__(
        self,
        channels: int,
        context_dim: int,
        num_heads: int = 1,
        num_head_channels: int = -1,
        conventions: Conventions = "adm",
        depth: int = 1,
    ):
        super().__init__()
        heads = head_count(channels, num_heads, num_head_channels)
        self.norm = normalization(channels, conventions)
        self.proj_in = nn.Conv2d(channels, channels, 1)
        self.transformer_blocks = nn.ModuleList(
            BasicTransformerBlock(channels, heads, context_dim) for _ in range(depth)
        )
        self.proj_out = zero_module(nn.Conv2d(channels, channels, 1))

    def forward(self, x: torch.Tensor, text: TextStates) -> torch.Tensor:
        n, c, height, width = x.shape
        h = self.proj_in(self.norm(x)).flatten(2).transpose(1, 2)  # [N, HW, C]
        for block in self.transformer_blocks:
            h = block(h, text)
        return x + self.proj_out(h.transpose(1, 2).reshape(n, c, height, width))
