"""The shared part of the pretrained, frozen text encoders (Stable Diffusion §3.3: CLIP;
Imagen: T5): loaded from local files, never trained, outside the state dict, cached per caption.
"""

from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from diffusion_lab.errors import WeightsNotFoundError
from diffusion_lab.models.text.states import TextStates


def require_file(path: str | Path | None, key: str, what: str) -> Path:
    """`path` if it exists; else WeightsNotFoundError naming the key, the file and its source."""
    if path is None or not Path(path).exists():
        raise WeightsNotFoundError(
            f"{key}={path} not found: download {what} and put it there (or set {key}=<path>)"
        )
    return Path(path)


class Held:
    """A network held outside the module tree: no parameters, buffers or state-dict keys of
    the module that holds it, so optimizers, EMA, DDP and checkpoints leave it alone (the
    weights file restores it). Copies (EMA's deepcopy) share it: it never changes."""

    def __init__(self, module: nn.Module):
        self.module = module.eval().requires_grad_(False)

    def __deepcopy__(self, memo) -> "Held":
        return self


class FrozenTextEncoder(nn.Module):
    """Captions [N] -> TextStates, from a pretrained network that is never trained.

    Subclasses set `self.held = Held(network)` and implement `encode_uncached(captions)`, which
    returns one (token states [L_i, D] of the real tokens, pooled [D]) per caption. Each caption's
    states are kept in a least-recently-used cache of `cache_size` captions, on the network's
    device and dtype (moving or casting the module empties it); a batch is padded to its
    longest caption.
    """

    trainable = False
    held: Held

    def __init__(self, width: int, cache_size: int = 1024):
        super().__init__()
        self.width = width
        self.cache_size = cache_size
        self.cache: OrderedDict[str, tuple[torch.Tensor, torch.Tensor]] = OrderedDict()

    def encode_uncached(self, captions: list[str]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        raise NotImplementedError

    @torch.no_grad()
    def forward(self, captions: Sequence[str]) -> TextStates:
        missing = list(dict.fromkeys(c for c in captions if c not in self.cache))
        if missing:
            for caption, states in zip(missing, self.encode_uncached(missing), strict=True):
                self.cache[caption] = states
        for caption in captions:
            self.cache.move_to_end(caption)
        rows = [self.cache[c] for c in captions]
        while len(self.cache) > self.cache_size:
            self.cache.popitem(last=False)
        length = max(tokens.shape[0] for tokens, _ in rows)
        first = rows[0][0]
        tokens = first.new_zeros(len(rows), length, first.shape[1])
        mask = torch.zeros(len(rows), length, dtype=torch.bool, device=first.device)
        for i, (states, _) in enumerate(rows):
            tokens[i, : states.shape[0]] = states
            mask[i, : states.shape[0]] = True
        return TextStates(tokens, mask, torch.stack([pooled for _, pooled in rows]))

    def train(self, mode: bool = True) -> "FrozenTextEncoder":
        return super().train(False)  # the held network's dropout stays off

    def _apply(self, fn, recurse: bool = True):
        # .to(device), .half(), ...: the held network follows the module; cached states would not
        self.held.module._apply(fn, recurse)
        self.cache.clear()
        return super()._apply(fn, recurse)

    @property
    def device(self) -> torch.device:
        return next(self.held.module.parameters()).device
