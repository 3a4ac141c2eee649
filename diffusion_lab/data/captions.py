"""Captions that describe a class and the attributes drawn for an image, in a few templates
with synonyms ("a small red sneaker on the left", "a blue trouser, large"), and read back.

Everything is deterministic: the attributes and wording of image `index` of a split depend on
(seed, split, index) only, so the captions of a test split are fixed and alignment can be
measured offline.
"""

import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from diffusion_lab.data.attributes import Attributes, Layout, draw_attributes

COLOUR_WORDS = {
    "red": ("red", "crimson"),
    "green": ("green", "emerald"),
    "blue": ("blue", "azure"),
    "yellow": ("yellow", "golden"),
    "purple": ("purple", "magenta", "violet"),
    "cyan": ("cyan", "turquoise"),
}
SIZE_WORDS = {"small": ("small", "tiny", "little"), "large": ("large", "big", "huge")}
POSITION_WORDS = {
    "left": ("on the left", "at the left", "to the left"),
    "right": ("on the right", "at the right", "to the right"),
    "top": ("at the top", "on top"),
    "bottom": ("at the bottom", "on the bottom"),
}
WORDS = {"colour": COLOUR_WORDS, "size": SIZE_WORDS, "position": POSITION_WORDS}

DIGIT_NAMES = "zero one two three four five six seven eight nine".split()
DIGIT_NOUNS = tuple((name, f"digit {name}", str(d)) for d, name in enumerate(DIGIT_NAMES))
FASHION_NOUNS = (
    ("t-shirt", "tee", "tee shirt"),
    ("trouser", "pair of trousers", "pants"),
    ("pullover", "sweater", "jumper"),
    ("dress", "frock"),
    ("coat", "jacket"),
    ("sandal", "flip-flop"),
    ("shirt", "blouse"),
    ("sneaker", "trainer", "running shoe"),
    ("bag", "handbag"),
    ("ankle boot", "boot"),
)
SPLITS = {"train": 0, "test": 1}


def _article(phrase: str) -> str:
    return f"{'an' if phrase[:1] in 'aeiou8' else 'a'} {phrase}"


def _join(*parts: str | None, sep: str = " ") -> str:
    return sep.join(p for p in parts if p)


# Each template words (size, colour, noun, position), any of size, colour, position None.
TEMPLATES = (
    lambda s, c, n, p: _join(_article(_join(s, c, n)), p),  # a small red sneaker on the left
    lambda s, c, n, p: _join(_article(_join(c, n)), s, p, sep=", "),  # a blue trouser, large
    lambda s, c, n, p: _join(p, _article(_join(s, c, n)), sep=", "),  # on top, a big cyan bag
    lambda s, c, n, p: _join(_join(_article(n), c and f"in {c}"), s, p, sep=", "),  # a 3 in red
)


def _words(text: str) -> list[str]:
    return re.findall(r"[\w'-]+", text.lower())


def _find(words: list[str], phrases: Sequence[tuple[str, object]]) -> object | None:
    """The value of the longest phrase that occurs in `words` as whole words, or None."""
    for phrase, value in sorted(phrases, key=lambda pv: -len(pv[0].split())):
        target = phrase.split()
        if any(words[i : i + len(target)] == target for i in range(len(words))):
            return value
    return None


@dataclass(frozen=True)
class CaptionSpec:
    """How a captioned synthetic dataset draws, renders and words its images.

    nouns: the names of each class label (the first is the class's own); attributes: which of
    colour, position and size vary; layout: the canvas and object sides.
    """

    nouns: tuple[tuple[str, ...], ...]
    attributes: tuple[str, ...]
    layout: Layout

    def draw(self, seed: int, split: str, index: int, label: int) -> tuple[Attributes, str]:
        """Image `index` of `split`: its attributes and caption, fixed by (seed, split, index)."""
        rng = np.random.default_rng([seed, SPLITS[split], index])
        attributes = draw_attributes(rng, self.attributes)
        return attributes, self.describe(label, attributes, rng)

    def describe(self, label: int, attributes: Attributes, rng: np.random.Generator) -> str:
        """A caption of class `label` with `attributes`: template and synonyms from `rng`."""

        def word(options: Sequence[str]) -> str:
            return options[rng.integers(len(options))]

        size, colour, position = (
            None if value is None else word(WORDS[name][value])
            for name, value in (
                ("size", attributes.size),
                ("colour", attributes.colour),
                ("position", attributes.position),
            )
        )
        return word(TEMPLATES)(size, colour, word(self.nouns[label]), position)

    def parse(self, caption: str) -> tuple[int | None, Attributes]:
        """The class and attributes a caption names (None where it names none)."""
        words = _words(caption)
        nouns = [(name, label) for label, names in enumerate(self.nouns) for name in names]
        found = {
            name: _find(words, [(p, v) for v, phrases in WORDS[name].items() for p in phrases])
            for name in self.attributes
        }
        return _find(words, nouns), Attributes(**found)
