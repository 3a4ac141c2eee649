"""What the U-Net reads of a batch of captions: per-token states, their mask, a pooled state."""

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class TextStates:
    """Encoded captions.

    tokens: [N, L, D] per-token states; mask: [N, L] bool, True at real tokens (every row has
    at least one, so attention never sees a row with nothing to attend to); pooled: [N, D], one
    state per caption (GLIDE and CLIP: the end-of-text token's; Imagen's T5: the mean).
    """

    tokens: torch.Tensor
    mask: torch.Tensor
    pooled: torch.Tensor

    def __post_init__(self):
        n, length = self.tokens.shape[:2]
        if self.mask.shape != (n, length) or self.pooled.shape != (n, self.tokens.shape[2]):
            raise ValueError(
                f"TextStates: tokens {tuple(self.tokens.shape)}, mask {tuple(self.mask.shape)} "
                f"and pooled {tuple(self.pooled.shape)} do not fit [N, L, D], [N, L], [N, D]"
            )

    def __len__(self) -> int:
        return self.tokens.shape[0]

    def pad_to(self, length: int) -> "TextStates":
        """The same captions with padding up to `length` tokens (masked, so nothing changes)."""
        extra = length - self.tokens.shape[1]
        if extra < 0:
            raise ValueError(f"cannot pad {self.tokens.shape[1]} tokens to {length}")
        return TextStates(
            F.pad(self.tokens, (0, 0, 0, extra)), F.pad(self.mask, (0, extra)), self.pooled
        )

    def expand(self, n: int) -> "TextStates":
        """One caption's states repeated for a batch of n (e.g. the empty caption)."""
        if len(self) != 1:
            raise ValueError(f"expand takes the states of one caption, got {len(self)}")
        return TextStates(
            self.tokens.expand(n, -1, -1), self.mask.expand(n, -1), self.pooled.expand(n, -1)
        )

    def to(self, *args, **kwargs) -> "TextStates":
        """tokens and pooled moved/cast like `Tensor.to`; the mask only moved."""
        tokens, pooled = self.tokens.to(*args, **kwargs), self.pooled.to(*args, **kwargs)
        return TextStates(tokens, self.mask.to(tokens.device), pooled)

    @staticmethod
    def cat(parts: Sequence["TextStates"]) -> "TextStates":
        """Concatenates batches, each padded to the longest (guidance's doubled batch)."""
        length = max(p.tokens.shape[1] for p in parts)
        padded = [p.pad_to(length) for p in parts]
        return TextStates(
            torch.cat([p.tokens for p in padded]),
            torch.cat([p.mask for p in padded]),
            torch.cat([p.pooled for p in padded]),
        )
