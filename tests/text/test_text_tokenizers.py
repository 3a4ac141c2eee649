"""Offline tokenizers: round trip, padding and truncation to the context length, the empty
caption."""

import pytest
import torch

from diffusion_lab.errors import ConfigError
from diffusion_lab.models.text import ClipTokenizer, WordTokenizer

CAPTIONS = ["a small red sneaker on the left", "a blue trouser, large", "on top, a big cyan bag"]


@pytest.fixture(scope="module")
def words():
    return WordTokenizer.from_captions(CAPTIONS, context_length=16)


@pytest.fixture(scope="module")
def clip():
    return ClipTokenizer(context_length=16)


def test_word_round_trip(words):
    tokens, mask = words(CAPTIONS)
    assert words.decode(tokens) == CAPTIONS
    assert tokens.shape == mask.shape == (3, 16) and tokens.dtype == torch.long


def test_word_vocabulary_is_sorted_and_the_same_for_the_same_captions(words):
    again = WordTokenizer.from_captions(reversed(CAPTIONS), context_length=16)
    assert again.words == words.words and words.words[4:] == sorted(words.words[4:])
    assert words.words[:4] == ["<pad>", "<unk>", "<start>", "<end>"]


def test_word_padding_mask_and_end_token(words):
    tokens, mask = words(["a blue trouser, large"])
    n = 2 + 5  # start, a blue trouser , large, end
    assert mask[0].tolist() == [True] * n + [False] * (16 - n)
    assert tokens[0, 0] == words.start_id and tokens[0, n - 1] == words.end_id
    assert (tokens[0, n:] == words.pad_id).all()


def test_word_truncation_keeps_the_end_token():
    short = WordTokenizer.from_captions(CAPTIONS, context_length=5)
    tokens, mask = short(["a small red sneaker on the left"])
    assert mask.all() and tokens[0, -1] == short.end_id
    assert short.decode(tokens) == ["a small red"]


def test_word_unknown_words_and_the_empty_caption(words):
    tokens, mask = words(["a purple sneaker", ""])
    assert words.decode(tokens) == ["a <unk> sneaker", ""]
    assert tokens[1, :2].tolist() == [words.start_id, words.end_id] and mask[1].sum() == 2


def test_word_vocabulary_rejects_special_words():
    with pytest.raises(ConfigError, match="text_encoder.vocab"):
        WordTokenizer(["<pad>", "a"], context_length=8)


def test_clip_round_trip(clip):
    plain = ["a small red sneaker on the left", "on top a big cyan bag"]
    tokens, _ = clip(plain)
    assert clip.decode(tokens) == plain
    # CLIP's BPE ends each word and mark with a boundary: a space before the comma comes back
    tokens, _ = clip(["a blue trouser, large"])
    assert clip.decode(tokens) == ["a blue trouser , large"]


def test_clip_ids_are_clips(clip):
    tokens, mask = clip(["a photo of a cat", ""])
    # the ids CLIP's own tokenizer gives (start 49406, end 49407, zero padding)
    assert tokens[0, :7].tolist() == [49406, 320, 1125, 539, 320, 2368, 49407]
    assert tokens[1, :2].tolist() == [49406, 49407] and mask[1].sum() == 2
    assert (tokens[1, 2:] == 0).all() and clip.n_vocab == 49408


def test_clip_truncation_keeps_the_end_token():
    tokens, mask = ClipTokenizer(context_length=4)(["a small red sneaker on the left"])
    assert mask.all() and tokens[0, -1] == 49407


def test_context_length_is_checked():
    with pytest.raises(ConfigError, match="text_encoder.context_length=1"):
        ClipTokenizer(context_length=1)
