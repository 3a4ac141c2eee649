"""Building blocks of the DDPM / ADM U-Net (Ho et al. 2020 App. B; Dhariwal & Nichol 2021 §3).

Feature maps are [N, C, H, W]; timestep embeddings are [N, emb_channels].
"""

import math
from typing import TYPE_CHECKING, Literal, get_args

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from diffusion_lab.errors import ConfigError

if TYPE_CHECKING:
    from diffusion_lab.models.text.states import TextStates

NORM_GROUPS = 32

# Where the two reference codebases compute differently, so that weights trained under one need
# its numerics: "adm" is improved-/guided-diffusion's PyTorch code; "ddpm_tf" is Ho et al.'s
# TensorFlow code, which the google/ddpm-* weights come from (timestep embedding, GroupNorm eps
# and stride-2 padding differ; see timestep_embedding, NORM_EPS and Downsample).
Conventions = Literal["adm", "ddpm_tf"]
CONVENTIONS = get_args(Conventions)
NORM_EPS = {"adm": 1e-5, "ddpm_tf": 1e-6}


def check_conventions(conventions: str) -> None:
    if conventions not in CONVENTIONS:
        raise ConfigError(f"conventions={conventions!r} is not one of {list(CONVENTIONS)}")


def timestep_embedding(
    timesteps: torch.Tensor,
    dim: int,
    max_period: float = 10000.0,
    conventions: Conventions = "adm",
):
    """Sinusoidal embedding [N, dim] of (possibly fractional) timesteps [N], in float32.

    adm: column i < dim/2 is cos(t·max_period^(-i/(dim/2))), column dim/2 + i the matching sin
    (Transformer positional encoding, Vaswani et al. 2017 §3.5, in ADM's cos-first order).
    ddpm_tf: sin first, with max_period^(-i/(dim/2 - 1)) (DDPM's `get_timestep_embedding`).
    """
    half = dim // 2
    steps = half - 1 if conventions == "ddpm_tf" else half
    exponents = torch.arange(half, dtype=torch.float32, device=timesteps.device) / steps
    args = timesteps.float()[:, None] * torch.exp(-math.log(max_period) * exponents)[None]
    waves = [torch.cos(args), torch.sin(args)]
    embedding = torch.cat(waves[::-1] if conventions == "ddpm_tf" else waves, dim=-1)
    if dim % 2:
        embedding = F.pad(embedding, (0, 1))
    return embedding


class TimestepEmbedder(nn.Sequential):
    """t [N] -> sinusoidal embedding -> Linear, SiLU, Linear -> [N, 4 * model_channels] (DDPM
    App. B; the Transformer's position embedding, then an MLP)."""

    def __init__(self, model_channels: int, conventions: Conventions = "adm"):
        emb_channels = 4 * model_channels
        super().__init__(
            nn.Linear(model_channels, emb_channels),
            nn.SiLU(),
            nn.Linear(emb_channels, emb_channels),
        )
        self.model_channels = model_channels
        self.conventions = conventions

    def forward(self, timesteps: torch.Tensor) -> torch.Tensor:
        t_emb = timestep_embedding(timesteps, self.model_channels, conventions=self.conventions)
        return super().forward(t_emb.to(self[0].weight.dtype))


class GroupNorm32(nn.GroupNorm):
    """GroupNorm with float32 statistics, output in the input's dtype (ADM's GroupNorm32).

    The kernels accumulate bf16 and fp16 inputs in float32 already, so the input is not upcast
    (a float32 copy kept for backward costs memory); CUDA autocast runs group_norm in float32,
    and the cast back keeps the activations after it in bf16.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x).type(x.dtype)


def normalization(channels: int, conventions: Conventions = "adm") -> GroupNorm32:
    return GroupNorm32(NORM_GROUPS, channels, eps=NORM_EPS[conventions])


def zero_module(module: nn.Module) -> nn.Module:
    """Zeroes a module's parameters: residual branches start as the identity (ADM)."""
    for p in module.parameters():
        p.detach().zero_()
    return module


def head_count(channels: int, num_heads: int, num_head_channels: int) -> int:
    """Number of attention heads: channels // num_head_channels, or num_heads if that is -1."""
    if num_head_channels != -1:
        if num_head_channels <= 0 or channels % num_head_channels:
            raise ConfigError(
                f"num_head_channels={num_head_channels} must divide the {channels} channels of "
                "every attention layer (or be -1 to use num_heads)"
            )
        return channels // num_head_channels
    if num_heads <= 0 or channels % num_heads:
        raise ConfigError(
            f"num_heads={num_heads} must divide the {channels} channels of every attention layer"
        )
    return num_heads


class Upsample(nn.Module):
    """Nearest-neighbour ×2 followed by a 3×3 convolution."""

    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


class Downsample(nn.Module):
    """A 3×3 convolution with stride 2, the input padded by one pixel on every side (adm) or,
    as TensorFlow's 'SAME' padding does for even sizes, on the bottom and right only (ddpm_tf)."""

    def __init__(self, channels: int, conventions: Conventions = "adm"):
        super().__init__()
        self.pad = (0, 1, 0, 1) if conventions == "ddpm_tf" else None
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=0 if self.pad else 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.pad(x, self.pad) if self.pad else x)


def _resample(x: torch.Tensor, resample: Literal["up", "down"] | None) -> torch.Tensor:
    if resample == "up":
        return F.interpolate(x, scale_factor=2, mode="nearest")
    if resample == "down":
        return F.avg_pool2d(x, 2)
    return x


class ResBlock(nn.Module):
    """Residual block conditioned on the timestep embedding.

    DDPM adds the projected embedding after the first convolution; with `use_scale_shift_norm`
    it modulates the second GroupNorm instead, AdaGN(h, e) = (1 + e_s)·GroupNorm(h) + e_b
    (ADM §3). `resample` makes it a BigGAN-style up/down-sampling block (ADM §3).
    """

    def __init__(
        self,
        channels: int,
        emb_channels: int,
        dropout: float,
        out_channels: int | None = None,
        use_scale_shift_norm: bool = False,
        resample: Literal["up", "down"] | None = None,
        conventions: Conventions = "adm",
    ):
        super().__init__()
        out_channels = out_channels or channels
        self.use_scale_shift_norm = use_scale_shift_norm
        self.resample = resample
        self.in_norm = normalization(channels, conventions)
        self.in_conv = nn.Conv2d(channels, out_channels, 3, padding=1)
        self.emb_proj = nn.Linear(
            emb_channels, 2 * out_channels if use_scale_shift_norm else out_channels
        )
        self.out_norm = normalization(out_channels, conventions)
        self.dropout = nn.Dropout(dropout)
        self.out_conv = zero_module(nn.Conv2d(out_channels, out_channels, 3, padding=1))
        self.skip = (
            nn.Identity() if out_channels == channels else nn.Conv2d(channels, out_channels, 1)
        )

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        # In-place SiLU is safe: GroupNorm32 returns a fresh tensor, its backward needs its input.
        h = F.silu(self.in_norm(x), inplace=True)
        h, x = _resample(h, self.resample), _resample(x, self.resample)
        h = self.in_conv(h)
        e = self.emb_proj(F.silu(emb))[:, :, None, None]
        if self.use_scale_shift_norm:
            scale, shift = e.chunk(2, dim=1)
            h = self.out_norm(h) * (1 + scale) + shift
        else:
            h = self.out_norm(h + e)
        h = self.out_conv(self.dropout(F.silu(h, inplace=True)))
        return self.skip(x) + h


def masked_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_mask: torch.Tensor | None = None
) -> torch.Tensor:
    """softmax(q·kᵀ/√d)·v over the keys where `key_mask` [N, L_k] is True (all if None);
    q [N, heads, L_q, d], k and v [N, heads, L_k, d] -> [N, heads, L_q, d]."""
    mask = None if key_mask is None else key_mask[:, None, None, :]
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


class TextConditionedBlock(nn.Module):
    """A layer called as `layer(x, text)`, text the captions' TextStates or None."""


class AttentionBlock(TextConditionedBlock):
    """Multi-head self-attention over all H·W positions, residual, output projection zeroed.

    With `encoder_channels` the caption's token states are projected to extra keys and values
    that every position also attends to, their padding masked out (GLIDE §2.2, its
    `encoder_kv`); the zeroed output projection keeps the block the identity at initialisation.
    """

    def __init__(
        self,
        channels: int,
        num_heads: int = 1,
        num_head_channels: int = -1,
        conventions: Conventions = "adm",
        encoder_channels: int | None = None,
    ):
        super().__init__()
        self.num_heads = head_count(channels, num_heads, num_head_channels)
        self.norm = normalization(channels, conventions)
        self.qkv = nn.Linear(channels, 3 * channels)
        if encoder_channels is not None:
            self.encoder_kv = nn.Linear(encoder_channels, 2 * channels)
        else:
            self.encoder_kv = None
        self.proj_out = zero_module(nn.Linear(channels, channels))

    def forward(self, x: torch.Tensor, text: "TextStates | None" = None) -> torch.Tensor:
        n, c, height, width = x.shape
        length, head_dim = height * width, c // self.num_heads
        tokens = self.norm(x).flatten(2).transpose(1, 2)  # [N, HW, C]
        qkv = self.qkv(tokens).view(n, length, 3, self.num_heads, head_dim)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each [N, heads, HW, head_dim]
        key_mask = None
        if self.encoder_kv is not None:
            kv = self.encoder_kv(text.tokens).view(n, -1, 2, self.num_heads, head_dim)
            text_k, text_v = kv.permute(2, 0, 3, 1, 4)  # each [N, heads, L, head_dim]
            k, v = torch.cat([text_k, k], dim=2), torch.cat([text_v, v], dim=2)
            key_mask = torch.cat([text.mask, text.mask.new_ones(n, length)], dim=1)
        a = masked_attention(q, k, v, key_mask).transpose(1, 2).reshape(n, length, c)
        return x + self.proj_out(a).transpose(1, 2).view(n, c, height, width)


class TimestepEmbedSequential(nn.Sequential):
    """A sequence of layers; the residual blocks among them also get the timestep embedding,
    the text-conditioned ones the captions' states."""

    def forward(
        self, x: torch.Tensor, emb: torch.Tensor, text: "TextStates | None" = None
    ) -> torch.Tensor:
        for layer in self:
            if isinstance(layer, ResBlock):
                x = layer(x, emb)
            elif isinstance(layer, TextConditionedBlock):
                x = layer(x, text)
            else:
                x = layer(x)
        return x


def run_block(
    block: TimestepEmbedSequential,
    x: torch.Tensor,
    emb: torch.Tensor,
    use_checkpoint: bool,
    text: "TextStates | None" = None,
) -> torch.Tensor:
    """Applies `block`, recomputing its activations in backward when `use_checkpoint`."""
    if use_checkpoint and torch.is_grad_enabled():
        return checkpoint(block, x, emb, text, use_reentrant=False)
    return block(x, emb, text)
