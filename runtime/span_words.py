"""Character spans to words with IOB2 tags, and back: how a span record becomes a training sentence.

Words. A span record's text is cut into words the way the runtime cuts raw text (`word_split="text"`,
`runtime.decoding`): a word is a whitespace-delimited chunk, and its *core* is the part the runtime
reads and reports, from its first to its last letter or digit (`(Reuters),` has the core `Reuters`; a
chunk without letters or digits is all core). The core is found by the runtime's own
`text_word_spans`, given the text's characters as tokens, so the two cannot drift apart. A model trained
on these words therefore reads a text as it will be read at prediction time, and text made of CoNLL
words joined by single spaces gives back exactly those words.

Tags. A word is `B-X` when its core starts a span of type X, `I-X` when its core starts inside one,
`O` otherwise: a word belongs to the span that covers the first character of its core, the character
the runtime reads a word's label from.

Misaligned spans. A span is aligned when every word core it touches lies wholly inside it; edge
punctuation and spaces do not matter (`Paris` and `Paris,` both align with the word `Paris,`, as the
runtime reports `Paris` for it). A span that starts or ends inside a word's core (`Paris` inside the
word `Paris-based`) follows the same one rule, which is why no second rule is needed: the word takes
the span's label when the span covers its core's first character (`Paris` labels the whole word
`Paris-based` LOC), and otherwise the span does not label it (`based` in `Paris-based` labels nothing
and is dropped when no other word's core starts inside it). Every misaligned span is returned, with
what was done to it, for the reader to report; none is changed or dropped silently.

Tags back to spans (`word_spans`) give each entity from its first word's first character to its last
word's last character, so a CoNLL sentence turned into text and spans reads back to the same words
and tags.
"""

from __future__ import annotations

import re
from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass

from .decoding import text_word_spans
from .labels import OUTSIDE, entity_chunks
from .span_records import Span

__all__ = [
    "TextWord",
    "MisalignedSpan",
    "WordLabels",
    "split_text_words",
    "label_words",
    "word_spans",
    "unsplittable_word",
    "join_words",
]

_CHUNK = re.compile(r"\S+")  # `\s` is exactly str.isspace, the runtime's word boundary


@dataclass(frozen=True)
class TextWord:
    """A word of a text: the chunk `[start, end)` and its core `[core_start, core_end)`, in code points."""

    start: int
    end: int
    core_start: int
    core_end: int


@dataclass(frozen=True)
class MisalignedSpan:
    """A span that starts or ends inside a word's core, and what was made of it."""

    span: Span
    text: str  # the text the span covers
    words: str  # the words it touches, as they stand in the text
    labelled: bool  # True: the words whose core starts inside it took its label; False: it labels nothing

    def describe(self) -> str:
        """One line: the span, the words it cuts and the outcome."""
        where = f"span [{self.span.start}, {self.span.end}) {self.span.label} {self.text!r} cuts {self.words!r}"
        if self.labelled:
            return f"{where}: the words whose first letter or digit it covers take its label"
        return f"{where}: it covers no word's first letter or digit, so it labels nothing"


@dataclass(frozen=True)
class WordLabels:
    """A text's words with their IOB2 tags, the spans that tagged some word, and the misaligned ones."""

    words: tuple[str, ...]
    tags: tuple[str, ...]
    used: int
    misaligned: tuple[MisalignedSpan, ...]


def split_text_words(text: str) -> list[TextWord]:
    """The words of `text` as the runtime's raw-text word split makes them, with their cores."""
    characters = [(i, i + 1) for i, ch in enumerate(text) if not ch.isspace()]
    cores = text_word_spans(text, characters)  # (first, last) character positions in `characters`
    words: list[TextWord] = []
    next_core = 0
    for chunk in _CHUNK.finditer(text):
        core_start = core_end = -1
        while next_core < len(cores) and characters[cores[next_core][0]][0] < chunk.end():
            first, last = cores[next_core]
            core_start = characters[first][0] if core_start < 0 else core_start
            core_end = characters[last][1]
            next_core += 1
        words.append(TextWord(chunk.start(), chunk.end(), core_start, core_end))
    return words


def label_words(text: str, spans: Sequence[Span]) -> WordLabels:
    """The words of `text` and their IOB2 tags from non-overlapping `spans` (module docstring's rule)."""
    words = split_text_words(text)
    core_starts = [w.core_start for w in words]  # cores are disjoint and in order: both lists ascend
    core_ends = [w.core_end for w in words]
    tags = [OUTSIDE] * len(words)
    used = 0
    misaligned: list[MisalignedSpan] = []
    for span in spans:
        last = bisect_left(core_starts, span.end)  # words from here on start at or after the span's end
        touched = words[bisect_right(core_ends, span.start) : last]
        members = range(bisect_left(core_starts, span.start), last)
        for position, i in enumerate(members):
            tags[i] = f"{'I' if position else 'B'}-{span.label}"
        used += bool(members)
        if members and all(span.start <= w.core_start and w.core_end <= span.end for w in touched):
            continue
        near = touched or [w for w in words if w.start < span.end and w.end > span.start]
        shown = text[near[0].start : near[-1].end] if near else ""
        misaligned.append(MisalignedSpan(span, text[span.start : span.end], shown, bool(members)))
    return WordLabels(tuple(text[w.start : w.end] for w in words), tuple(tags), used, tuple(misaligned))


def word_spans(text: str, tags: Sequence[str]) -> list[Span]:
    """The entities of IOB2 (or IOB1) `tags`, one per word of `text`, as character spans of whole words.

    Tags are read by conlleval/seqeval's lenient rule (`runtime.labels.entity_chunks`).
    """
    words = split_text_words(text)
    if len(words) != len(tags):
        raise ValueError(f"{len(tags)} tags for the {len(words)} words of the text")
    return [Span(words[first].start, words[end - 1].end, kind) for kind, first, end in entity_chunks(tags)]


def unsplittable_word(words: Sequence[str]) -> int | None:
    """Index of the first word that is empty or holds whitespace (it would not come back from its text
    as one word), or None."""
    for i, word in enumerate(words):
        if _CHUNK.fullmatch(word) is None:
            return i
    return None


def join_words(words: Sequence[str]) -> tuple[str, list[tuple[int, int]]]:
    """The text of `words` joined by single spaces, and each word's `[start, end)` in it.

    Raises ValueError for a word that is empty or holds whitespace (`unsplittable_word`): the text would
    not split back into the same words.
    """
    bad = unsplittable_word(words)
    if bad is not None:
        raise ValueError(f"word {bad + 1} {words[bad]!r} is empty or holds whitespace")
    offsets: list[tuple[int, int]] = []
    position = 0
    for word in words:
        offsets.append((position, position + len(word)))
        position += len(word) + 1
    return " ".join(words), offsets
