"""Tokenizers that work offline: [N] captions -> tokens [N, L] int64 and mask [N, L] bool.

Every caption becomes start, words..., end, then padding to the context length L; a caption too
long for L loses words at its end, never the end token (where the pooled state is read). The
empty caption is start, end: two real tokens, the unconditional input of classifier-free
guidance.
"""

import re
from collections.abc import Iterable, Sequence

import torch

from diffusion_lab.errors import ConfigError, LabError

WORD = re.compile(r"[\w'-]+|[^\w\s]")  # words (t-shirt, don't) and single punctuation marks
NO_SPACE_BEFORE = re.compile(r" ([^\w\s'-])(?= |$)")  # a mark token joins the word before it


def check_context_length(context_length: int, minimum: int = 2) -> None:
    if isinstance(context_length, bool) or not isinstance(context_length, int):
        raise ConfigError(f"text_encoder.context_length={context_length!r} must be an integer")
    if context_length < minimum:
        raise ConfigError(
            f"text_encoder.context_length={context_length} must be >= {minimum} (start and end "
            "tokens)"
        )


def _pack(ids: list[list[int]], context_length: int, pad_id: int):
    tokens = torch.full((len(ids), context_length), pad_id, dtype=torch.long)
    mask = torch.zeros((len(ids), context_length), dtype=torch.bool)
    for row, caption in enumerate(ids):
        tokens[row, : len(caption)] = torch.tensor(caption, dtype=torch.long)
        mask[row, : len(caption)] = True
    return tokens, mask


class WordTokenizer:
    """A word-level vocabulary for a text encoder trained with the U-Net (GLIDE §2.2 trains its
    transformer jointly; the lab's synthetic captions need no sub-word units).

    Captions are lower-cased and split into words and punctuation marks; a word outside the
    vocabulary becomes <unk>. Ids: 0 <pad>, 1 <unk>, 2 <start>, 3 <end>, then `words` in order.
    """

    specials = ("<pad>", "<unk>", "<start>", "<end>")
    pad_id, unk_id, start_id, end_id = range(4)

    def __init__(self, words: Sequence[str], context_length: int):
        check_context_length(context_length)
        clash = sorted(set(words) & set(self.specials))
        if clash or len(set(words)) != len(words):
            raise ConfigError(
                f"text_encoder.vocab must list distinct words and none of {list(self.specials)}"
            )
        self.words = [*self.specials, *words]
        self.ids = {word: i for i, word in enumerate(self.words)}
        self.context_length = context_length

    @classmethod
    def from_captions(cls, captions: Iterable[str], context_length: int) -> "WordTokenizer":
        """The vocabulary of every word in `captions`, sorted (the same for the same set)."""
        words = sorted({word for caption in captions for word in cls.split(caption)})
        return cls(words, context_length)

    @staticmethod
    def split(caption: str) -> list[str]:
        return WORD.findall(caption.lower())

    @property
    def n_vocab(self) -> int:
        return len(self.words)

    def __call__(self, captions: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        room = self.context_length - 2
        ids = [
            [self.start_id]
            + [self.ids.get(w, self.unk_id) for w in self.split(c)][:room]
            + [self.end_id]
            for c in captions
        ]
        return _pack(ids, self.context_length, self.pad_id)

    def decode(self, tokens: torch.Tensor) -> list[str]:
        """Tokens [N, L] -> captions: the words between start and end, punctuation attached."""
        captions = []
        for row in tokens.tolist():
            words = [self.words[i] for i in row if i > self.end_id or i == self.unk_id]
            captions.append(NO_SPACE_BEFORE.sub(r"\1", " ".join(words)))
        return captions


def _clip_simple_tokenizer():
    """CLIP's SimpleTokenizer, with the BPE vocabulary (bpe_simple_vocab_16e6.txt.gz) that
    ships inside the open-clip-torch or clip-anytorch wheel."""
    try:
        from open_clip.tokenizer import SimpleTokenizer
    except ImportError:
        try:
            from clip.simple_tokenizer import SimpleTokenizer
        except ImportError:
            raise LabError(
                "the CLIP tokenizer needs open-clip-torch (or clip-anytorch): "
                "pip install 'diffusion_lab[text]'"
            ) from None
    return SimpleTokenizer()


class ClipTokenizer:
    """CLIP's byte-pair encoding (Radford et al. 2021; Sennrich et al. 2016), 49,408 tokens:
    what Stable Diffusion's text encoder reads (context length 77). Captions are cleaned and
    lower-cased as CLIP does; padding is id 0."""

    pad_id = 0

    def __init__(self, context_length: int = 77):
        check_context_length(context_length)
        self.bpe = _clip_simple_tokenizer()
        self.start_id = self.bpe.encoder["<start_of_text>"]
        self.end_id = self.bpe.encoder["<end_of_text>"]
        self.context_length = context_length

    @property
    def n_vocab(self) -> int:
        return len(self.bpe.encoder)

    def __call__(self, captions: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        room = self.context_length - 2
        ids = [[self.start_id] + self.bpe.encode(c)[:room] + [self.end_id] for c in captions]
        return _pack(ids, self.context_length, self.pad_id)

    def decode(self, tokens: torch.Tensor) -> list[str]:
        """Tokens [N, L] -> the cleaned, lower-cased captions (a space before punctuation, as
        CLIP's BPE ends every word and mark with a word boundary)."""
        captions = []
        for row in tokens.tolist():
            end = row.index(self.end_id) if self.end_id in row else len(row)
            captions.append(self.bpe.decode(row[1:end]).strip())
        return captions
