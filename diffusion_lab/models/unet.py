"""The DDPM / Improved DDPM / ADM U-Net (Ho et al. 2020 App. B; Nichol & Dhariwal 2021;
Dhariwal & Nichol 2021 §3): ε_θ(x_t, t[, y][, caption]) as [N, C_out, H, W]."""

from collections.abc import Callable, Sequence
from functools import partial
from typing import Literal, get_args

import torch
import torch.nn.functional as F
from torch import nn

from diffusion_lab.errors import ConfigError
from diffusion_lab.models.blocks import (
    NORM_GROUPS,
    AttentionBlock,
    Conventions,
    Downsample,
    ResBlock,
    TimestepEmbedder,
    TimestepEmbedSequential,
    Upsample,
    check_conventions,
    normalization,
    run_block,
    zero_module,
)
from diffusion_lab.models.cross_attention import SpatialTransformer
from diffusion_lab.models.text.states import TextStates

TextMode = Literal["glide", "cross_attention"]
TEXT_MODES = get_args(TextMode)


def attention_downsample_rates(
    image_size: int, channel_mult: Sequence[int], attention_resolutions: Sequence[int]
) -> set[int]:
    """Checks the geometry; returns the downsampling factors at which attention runs."""
    factor = 2 ** (len(channel_mult) - 1)
    if image_size <= 0 or image_size % factor:
        raise ConfigError(
            f"image_size={image_size} must be a multiple of {factor}: channel_mult="
            f"{list(channel_mult)} halves the resolution {len(channel_mult) - 1} times"
        )
    resolutions = [image_size // 2**level for level in range(len(channel_mult))]
    missing = sorted(set(attention_resolutions) - set(resolutions), reverse=True)
    if missing:
        raise ConfigError(
            f"attention_resolutions={list(attention_resolutions)}: {missing} do not occur in this "
            f"network; for image_size={image_size} and channel_mult={list(channel_mult)} the "
            f"resolutions are {resolutions}"
        )
    return {image_size // r for r in attention_resolutions}


def check_text(text_channels: int | None, text_mode: str) -> None:
    if text_mode not in TEXT_MODES:
        raise ConfigError(f"text_mode={text_mode!r} is not one of {list(TEXT_MODES)}")
    bad = isinstance(text_channels, bool) or not isinstance(text_channels, int | None)
    if bad or (text_channels is not None and text_channels <= 0):
        raise ConfigError(
            f"text_channels={text_channels!r} must be the text encoder's width (an integer > 0) "
            "or null (no text conditioning)"
        )


def check_widths(model_channels: int, channel_mult: Sequence[int]) -> None:
    widths = [model_channels * m for m in channel_mult]
    if any(w <= 0 or w % NORM_GROUPS for w in widths):
        raise ConfigError(
            f"model_channels * channel_mult = {widths}: every width must be a positive multiple "
            f"of {NORM_GROUPS} (GroupNorm's group count)"
        )


def build_encoder_half(
    *,
    in_channels: int,
    model_channels: int,
    channel_mult: Sequence[int],
    num_res_blocks: int,
    attention_ds: set[int],
    make_resblock: partial,
    make_attention: partial,
    resblock_updown: bool,
    make_downsample: Callable[[int], nn.Module] = Downsample,
) -> tuple[nn.ModuleList, TimestepEmbedSequential, list[int]]:
    """The downsampling path and the middle block; also returns each input block's width."""
    ch = model_channels * channel_mult[0]
    input_blocks = nn.ModuleList(
        [TimestepEmbedSequential(nn.Conv2d(in_channels, ch, 3, padding=1))]
    )
    widths, ds = [ch], 1
    for level, mult in enumerate(channel_mult):
        for _ in range(num_res_blocks):
            layers = [make_resblock(ch, out_channels=model_channels * mult)]
            ch = model_channels * mult
            if ds in attention_ds:
                layers.append(make_attention(ch))
            input_blocks.append(TimestepEmbedSequential(*layers))
            widths.append(ch)
        if level != len(channel_mult) - 1:
            down = make_resblock(ch, resample="down") if resblock_updown else make_downsample(ch)
            input_blocks.append(TimestepEmbedSequential(down))
            widths.append(ch)
            ds *= 2
    middle_block = TimestepEmbedSequential(make_resblock(ch), make_attention(ch), make_resblock(ch))
    return input_blocks, middle_block, widths


class UNetModel(nn.Module):
    """U-Net with timestep embedding, residual blocks and self-attention.

    Args:
        image_size: height = width of the images, in pixels.
        in_channels: image channels.
        model_channels: base width; level i has model_channels * channel_mult[i] channels.
        num_res_blocks: residual blocks per level (the decoder has one more).
        attention_resolutions: resolutions (pixels, e.g. [16]) with self-attention; the
            middle block always has it.
        dropout: dropout rate inside the residual blocks.
        channel_mult: width multiplier per level; each level after the first halves H and W.
        out_channels: output channels (default in_channels), doubled if learn_sigma.
        learn_sigma: also output the variance interpolation v (Improved DDPM eq. 15).
        num_classes: class-conditional with num_classes classes; the embedding has one more
            row, label num_classes = the null class of classifier-free guidance.
        use_checkpoint: gradient checkpointing (recompute activations in backward).
        num_heads: attention heads, unless num_head_channels is set.
        num_head_channels: channels per attention head (-1: use num_heads).
        use_scale_shift_norm: AdaGN timestep conditioning (ADM) instead of adding it.
        resblock_updown: BigGAN-style residual blocks for up/downsampling (ADM).
        conventions: "adm", or "ddpm_tf" for weights trained with Ho et al.'s TensorFlow code
            (google/ddpm-*): its timestep embedding, GroupNorm eps and stride-2 padding.
        text_channels: conditioned on captions whose TextStates have this width D (the text
            encoder's); None: no text conditioning, and nothing of it in the network.
        text_mode: "glide" — the token states as extra keys/values of every attention block,
            the pooled state projected and added to the timestep embedding (GLIDE §2.2);
            "cross_attention" — a SpatialTransformer in place of each attention block (Stable
            Diffusion §3.3). Both text projections into the U-Net start at zero.
    """

    def __init__(
        self,
        *,
        image_size: int,
        in_channels: int,
        model_channels: int,
        num_res_blocks: int,
        attention_resolutions: Sequence[int],
        dropout: float = 0.0,
        channel_mult: Sequence[int] = (1, 2, 2, 2),
        out_channels: int | None = None,
        learn_sigma: bool = False,
        num_classes: int | None = None,
        use_checkpoint: bool = False,
        num_heads: int = 1,
        num_head_channels: int = -1,
        use_scale_shift_norm: bool = False,
        resblock_updown: bool = False,
        conventions: Conventions = "adm",
        text_channels: int | None = None,
        text_mode: TextMode = "glide",
    ):
        super().__init__()
        check_conventions(conventions)
        check_text(text_channels, text_mode)
        channel_mult = tuple(channel_mult)
        attention_ds = attention_downsample_rates(image_size, channel_mult, attention_resolutions)
        check_widths(model_channels, channel_mult)
        self.num_classes = num_classes
        self.text_channels = text_channels
        self.use_checkpoint = use_checkpoint
        self.out_channels = (out_channels or in_channels) * (2 if learn_sigma else 1)

        emb_channels = 4 * model_channels
        self.time_embed = TimestepEmbedder(model_channels, conventions)
        self.label_emb = (
            nn.Embedding(num_classes + 1, emb_channels) if num_classes is not None else None
        )
        if text_channels is not None and text_mode == "glide":
            # GLIDE's name; zeroed, so that at initialisation the caption changes nothing
            self.transformer_proj = zero_module(nn.Linear(text_channels, emb_channels))

        make_resblock = partial(
            ResBlock,
            emb_channels=emb_channels,
            dropout=dropout,
            use_scale_shift_norm=use_scale_shift_norm,
            conventions=conventions,
        )
        make_attention = partial(
            AttentionBlock,
            num_heads=num_heads,
            num_head_channels=num_head_channels,
            conventions=conventions,
        )
        if text_channels is not None:
            if text_mode == "glide":
                make_attention = partial(make_attention, encoder_channels=text_channels)
            else:
                make_attention = partial(
                    SpatialTransformer,
                    context_dim=text_channels,
                    num_heads=num_heads,
                    num_head_channels=num_head_channels,
                    conventions=conventions,
                )
        self.input_blocks, self.middle_block, widths = build_encoder_half(
            in_channels=in_channels,
            model_channels=model_channels,
            channel_mult=channel_mult,
            num_res_blocks=num_res_blocks,
            attention_ds=attention_ds,
            make_resblock=make_resblock,
            make_attention=make_attention,
            resblock_updown=resblock_updown,
            make_downsample=partial(Downsample, conventions=conventions),
        )

        ch, ds = widths[-1], 2 ** (len(channel_mult) - 1)
        self.output_blocks = nn.ModuleList()
        for level, mult in reversed(list(enumerate(channel_mult))):
            for i in range(num_res_blocks + 1):
                layers = [make_resblock(ch + widths.pop(), out_channels=model_channels * mult)]
                ch = model_channels * mult
                if ds in attention_ds:
                    layers.append(make_attention(ch))
                if level and i == num_res_blocks:
                    up = make_resblock(ch, resample="up") if resblock_updown else Upsample(ch)
                    layers.append(up)
                    ds //= 2
                self.output_blocks.append(TimestepEmbedSequential(*layers))

        self.out_norm = normalization(ch, conventions)
        self.out_conv = zero_module(nn.Conv2d(ch, self.out_channels, 3, padding=1))

    def forward(
        self,
        x: torch.Tensor,
        timesteps: torch.Tensor,
        y: torch.Tensor | None = None,
        text: TextStates | None = None,
    ) -> torch.Tensor:
        """x [N, C, H, W], timesteps [N] (may be fractional), y [N] labels, text the captions'
        TextStates (N of them) -> [N, C_out, H, W]."""
        emb = self.time_embed(timesteps)
        if self.label_emb is not None:
            if y is None:
                raise ValueError(
                    f"this U-Net is class-conditional (num_classes={self.num_classes}): pass "
                    f"labels y, using y={self.num_classes} (the null class) for unconditional"
                )
            emb = emb + self.label_emb(y)
        elif y is not None:
            raise ValueError("this U-Net is unconditional (num_classes=None): y must be None")
        if self.text_channels is not None:
            if text is None:
                raise ValueError(
                    "this U-Net is text-conditioned: pass text=TextStates of the captions, the "
                    "empty caption's for unconditional"
                )
            text = text.to(emb.dtype)
            if hasattr(self, "transformer_proj"):
                emb = emb + self.transformer_proj(text.pooled)
        elif text is not None:
            raise ValueError("this U-Net is not text-conditioned (text_channels=None): text=None")

        skips, h = [], x
        for block in self.input_blocks:
            h = run_block(block, h, emb, self.use_checkpoint, text)
            skips.append(h)
        h = run_block(self.middle_block, h, emb, self.use_checkpoint, text)
        for block in self.output_blocks:
            h = torch.cat([h, skips.pop()], dim=1)
            h = run_block(block, h, emb, self.use_checkpoint, text)
        return self.out_conv(F.silu(self.out_norm(h), inplace=True))
