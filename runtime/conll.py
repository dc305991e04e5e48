"""Reader and writer of CoNLL-style NER files (standard library only, so any install can score data).

One token per line with blank- or tab-separated columns, the tag in the last column; a blank line ends a
sentence; `-DOCSTART-` lines start a new document. CRLF line ends and a UTF-8 BOM are accepted. Tags in
IOB1, IOB2 or BIOES are normalised to IOB2 (the scheme is detected per file). In an IOB2 file an `I-X`
that does not continue an `X` entity is repaired to `B-X` with a warning naming the first such line,
as conlleval reads it; rejecting it would make many real files unreadable. The reader is strict:
a line it cannot understand stops it with an error naming the file, the line and its content, since a
silently dropped line shifts every label after it. Documents are kept, because models that read
neighbouring sentences need to know where a document ends. One leniency: a line holding only
invisible characters (a stray BOM or zero-width character, as concatenating files leaves) looks blank
in every editor, so it is read as a blank line, with a warning naming the first such line; a BOM
before `-DOCSTART-` does not hide the document mark. A word line is kept whatever its characters:
a word the tokenizer turns into nothing still has its label slot.
"""

from __future__ import annotations

import re
import unicodedata
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from .errors import DataFormatError, DataNotFoundError, InvisibleLineWarning, TagRepairWarning
from .labels import detect_scheme, split_tag, to_iob2

__all__ = ["Sentence", "read_conll", "write_conll", "TagRepairWarning", "InvisibleLineWarning"]


# Columns are separated by ASCII blanks only: a no-break or other Unicode space is part of a token.
_COLUMN_SEPARATORS = re.compile(r"[ \t\f\v]+")
# Variation selectors and the combining grapheme joiner are marks (Mn), not format characters (Cf),
# yet render as nothing on their own.
_INVISIBLE_MARKS = frozenset(
    [chr(c) for c in range(0xFE00, 0xFE10)]
    + [chr(c) for c in range(0xE0100, 0xE01F0)]
    + [chr(c) for c in range(0x180B, 0x1810)]
    + ["\u034f"]
)


def _is_invisible(text: str) -> bool:
    """True when `text` shows nothing: only whitespace, format characters (BOM, zero-width space,
    joiners, word joiner, soft hyphen, direction marks) and variation selectors."""
    return all(c.isspace() or c in _INVISIBLE_MARKS or unicodedata.category(c) == "Cf" for c in text)


@dataclass(frozen=True)
class Sentence:
    """One sentence: its words, IOB2 tags, the document it belongs to and its first line number."""

    words: tuple[str, ...]
    tags: tuple[str, ...]
    document: int = 0
    line: int = 0


class _RawSentence(NamedTuple):
    """A sentence as the file holds it: words, tags in the file's scheme, document, line numbers."""

    words: list[str]
    tags: list[str]
    document: int
    line_numbers: list[int]


def read_conll(path: str | Path, *, encoding: str = "utf-8") -> list[Sentence]:
    """Read a CoNLL file into sentences with IOB2 tags.

    Raises DataNotFoundError for a missing file, DataFormatError (file:line) for a line with one column,
    an unknown tag, undecodable bytes, tags of two schemes in one file, or a file without any sentence.
    """
    path = Path(path)
    text = _decoded_text(path, encoding)
    # split on "\n" only: str.splitlines() would also break at U+2028, U+0085 and friends inside tokens
    lines = text.split("\n")
    raw_sentences, invisible = _raw_sentences(path, lines)
    if invisible:
        first = lines[invisible[0] - 1].strip(" \t\r\f\v")
        codes = " ".join(f"U+{ord(c):04X}" for c in dict.fromkeys(first) if c not in " \t\r\f\v")
        warnings.warn(
            f"{path}:{invisible[0]}: a line holding only invisible characters ({codes}) was read as a blank line "
            f"({len(invisible)} such line(s) in the file)",
            InvisibleLineWarning,
            stacklevel=2,
        )
    if not raw_sentences:
        raise DataFormatError(str(path), 1, text[:80], "the file holds no sentence")
    sentences, repaired = _iob2_sentences(path, lines, raw_sentences)
    if repaired:
        warnings.warn(
            f"{path}:{repaired[0]}: an I- tag that does not continue an entity of its type was read as B-, "
            f"as conlleval does ({len(repaired)} such tag(s) in the file)",
            TagRepairWarning,
            stacklevel=2,
        )
    return sentences


def _decoded_text(path: Path, encoding: str) -> str:
    """The file's text without a leading BOM; undecodable bytes stop it naming their line."""
    if not path.is_file():
        raise DataNotFoundError(f"{path}: no such file")
    raw = path.read_bytes()
    try:
        text = raw.decode(encoding)
    except UnicodeDecodeError as exc:
        line_number = raw[: exc.start].count(b"\n") + 1
        bad_line = raw.split(b"\n")[line_number - 1].decode(encoding, errors="replace").rstrip("\r")
        raise DataFormatError(str(path), line_number, bad_line, f"not valid {encoding}") from None
    return text.removeprefix("\ufeff")


def _raw_sentences(path: Path, lines: list[str]) -> tuple[list[_RawSentence], list[int]]:
    """The file's sentences with their tags as written, and the numbers of the lines read as blank
    because they hold only invisible characters."""
    raw_sentences: list[_RawSentence] = []
    words: list[str] = []
    tags: list[str] = []
    numbers: list[int] = []
    document = 0
    invisible: list[int] = []
    for number, line in enumerate(lines, start=1):
        stripped = line.strip(" \t\r\f\v")
        if stripped and _is_invisible(stripped):
            invisible.append(number)
            stripped = ""
        if not stripped:
            if words:
                raw_sentences.append(_RawSentence(words, tags, document, numbers))
                words, tags, numbers = [], [], []
            continue
        columns = _COLUMN_SEPARATORS.split(stripped)
        if "".join(c for c in columns[0] if not _is_invisible(c)) == "-DOCSTART-":
            if words:
                raw_sentences.append(_RawSentence(words, tags, document, numbers))
                words, tags, numbers = [], [], []
            if raw_sentences and raw_sentences[-1].document == document:
                document += 1
            continue
        words.append(columns[0])
        tags.append(_checked_tag(path, number, line, columns))
        numbers.append(number)
    if words:
        raw_sentences.append(_RawSentence(words, tags, document, numbers))
    return raw_sentences, invisible


def _checked_tag(path: Path, number: int, line: str, columns: list[str]) -> str:
    """The tag of a word line (its last column), refused when missing or not a tag."""
    if len(columns) < 2:
        raise DataFormatError(str(path), number, line, "expected a word and a tag separated by whitespace")
    tag = columns[-1]
    try:
        split_tag(tag)
    except ValueError as exc:
        raise DataFormatError(str(path), number, line, str(exc)) from None
    return tag


def _iob2_sentences(
    path: Path, lines: list[str], raw_sentences: list[_RawSentence]
) -> tuple[list[Sentence], list[int]]:
    """The sentences with IOB2 tags (the file's scheme detected over all its tags), and the line numbers
    of IOB2 tags repaired from `I-` to `B-`."""
    scheme = detect_scheme(t for raw in raw_sentences for t in raw.tags)
    iob1 = scheme == "IOB2" and _looks_iob1([raw.tags for raw in raw_sentences])
    sentences = []
    repaired: list[int] = []
    for sentence_words, sentence_tags, doc, line_numbers in raw_sentences:
        if scheme == "BIOES":
            bad = _bioes_violation(sentence_tags)
            if bad is not None:
                number = line_numbers[bad]
                raise DataFormatError(
                    str(path),
                    number,
                    lines[number - 1],
                    "tags mix schemes: this file uses BIOES (E-/S- tags), but this tag does not fit a BIOES entity",
                )
        iob2 = to_iob2(sentence_tags, scheme)
        if scheme == "IOB2" and not iob1:
            repaired.extend(n for n, a, b in zip(line_numbers, sentence_tags, iob2, strict=True) if a != b)
        sentences.append(Sentence(tuple(sentence_words), tuple(iob2), doc, line_numbers[0]))
    return sentences, repaired


def _looks_iob1(sentences: Sequence[Sequence[str]]) -> bool:
    """IOB1 starts entities with I- and uses B- only right after an entity of the same type."""
    starts_with_i = False
    for tags in sentences:
        previous_kind = ""
        for tag in tags:
            prefix, kind = split_tag(tag)
            if prefix == "B" and kind != previous_kind:
                return False  # a B- that starts an entity: IOB2
            if prefix == "I" and kind != previous_kind:
                starts_with_i = True
            previous_kind = kind
    return starts_with_i


def _bioes_violation(tags: Sequence[str]) -> int | None:
    """Index of the first tag that breaks BIOES (an entity left open or continued wrongly), or None."""
    open_kind = ""
    for i, tag in enumerate(tags):
        prefix, kind = split_tag(tag)
        if prefix in ("I", "E"):
            if kind != open_kind:
                return i
            open_kind = kind if prefix == "I" else ""
        else:
            if open_kind:
                return i
            open_kind = kind if prefix == "B" else ""
    return len(tags) - 1 if open_kind else None


def write_conll(path: str | Path, sentences: Sequence[Sentence]) -> None:
    """Write sentences as `word TAG` lines with a blank line after each sentence.

    A `-DOCSTART-` line marks each change of document, so reading the file back keeps the documents.
    """
    lines: list[str] = []
    for i, sentence in enumerate(sentences):
        if i and sentence.document != sentences[i - 1].document:
            lines.extend(["-DOCSTART- O", ""])
        lines.extend(f"{w} {t}" for w, t in zip(sentence.words, sentence.tags, strict=True))
        lines.append("")
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")
