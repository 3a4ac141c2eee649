"""ADM's noisy-image classifier p_φ(y | x_t, t) for classifier guidance (Dhariwal & Nichol 2021
§4): the U-Net's downsampling half and middle block, then a pooling head -> logits [N, K]."""

from collections.abc import Sequence
from functools import partial
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from diffusion_lab.errors import ConfigError
from diffusion_lab.models.blocks import (
    AttentionBlock,
    ResBlock,
    TimestepEmbedder,
    head_count,
    normalization,
    run_block,
    zero_module,
)
from diffusion_lab.models.unet import attention_downsample_rates, build_encoder_half, check_widths

POOLS = ("attention", "adaptive")


class AttentionPool2d(nn.Module):
    """CLIP's attention pooling (Radford et al. 2021): the mean token, with learned positional
    embeddings, attends to all H·W positions; its output is projected to `out_channels`."""

    def __init__(self, spatial_size: int, channels: int, num_heads: int, out_channels: int):
        super().__init__()
        self.num_heads = num_heads
        self.positional_embedding = nn.Parameter(
            torch.randn(spatial_size**2 + 1, channels) / channels**0.5
        )
        self.qkv = nn.Linear(channels, 3 * channels)
        self.proj = nn.Linear(channels, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c = x.shape[:2]
        tokens = x.flatten(2).transpose(1, 2)  # [N, HW, C]
        tokens = torch.cat([tokens.mean(dim=1, keepdim=True), tokens], dim=1)
        tokens = tokens + self.positional_embedding.to(tokens.dtype)
        qkv = self.qkv(tokens).view(n, tokens.shape[1], 3, self.num_heads, c // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each [N, heads, HW + 1, head_dim]
        pooled = F.scaled_dot_product_attention(q[:, :, :1], k, v)  # only the mean token's query
        return self.proj(pooled.reshape(n, c))


class EncoderUNetModel(nn.Module):
    """Timestep-conditioned encoder that outputs class logits [N, out_channels].

    Arguments as in `UNetModel` (without the decoder's), plus:
        out_channels: number of classes K.
        pool: "attention" (ADM's classifier head, AttentionPool2d) or "adaptive" (global
            average pooling and a zero-initialised 1×1 convolution).
    """

    def __init__(
        self,
        *,
        image_size: int,
        in_channels: int,
        model_channels: int,
        out_channels: int,
        num_res_blocks: int,
        attention_resolutions: Sequence[int],
        dropout: float = 0.0,
        channel_mult: Sequence[int] = (1, 2, 2, 2),
        use_checkpoint: bool = False,
        num_heads: int = 1,
        num_head_channels: int = -1,
        use_scale_shift_norm: bool = False,
        resblock_updown: bool = False,
        pool: Literal["attention", "adaptive"] = "attention",
    ):
        super().__init__()
        if pool not in POOLS:
            raise ConfigError(f"pool={pool!r} is not one of {list(POOLS)}")
        channel_mult = tuple(channel_mult)
        attention_ds = attention_downsample_rates(image_size, channel_mult, attention_resolutions)
        check_widths(model_channels, channel_mult)
        self.use_checkpoint = use_checkpoint

        emb_channels = 4 * model_channels
        self.time_embed = TimestepEmbedder(model_channels)
        self.input_blocks, self.middle_block, widths = build_encoder_half(
            in_channels=in_channels,
            model_channels=model_channels,
            channel_mult=channel_mult,
            num_res_blocks=num_res_blocks,
            attention_ds=attention_ds,
            make_resblock=partial(
                ResBlock,
                emb_channels=emb_channels,
                dropout=dropout,
                use_scale_shift_norm=use_scale_shift_norm,
            ),
            make_attention=partial(
                AttentionBlock, num_heads=num_heads, num_head_channels=num_head_channels
            ),
            resblock_updown=resblock_updown,
        )
        ch = widths[-1]
        self.out_norm = normalization(ch)
        if pool == "attention":
            bottom = image_size // 2 ** (len(channel_mult) - 1)
            heads = head_count(ch, num_heads, num_head_channels)
            self.head = AttentionPool2d(bottom, ch, heads, out_channels)
        else:
            self.head = nn.Sequential(
                nn.AdaptiveAvgPool2d(1),
                zero_module(nn.Conv2d(ch, out_channels, 1)),
                nn.Flatten(),
            )

    def forward(self, x: torch.Tensor, timesteps: torch.Tensor) -> torch.Tensor:
        """x_t [N, C, H, W], timesteps [N] -> logits [N, out_channels]."""
        emb = self.time_embed(timesteps)
        h = x
        for block in self.input_blocks:
            h = run_block(block, h, emb, self.use_checkpoint)
        h = run_block(self.middle_block, h, emb, self.use_checkpoint)
        return self.head(F.silu(self.out_norm(h)))
