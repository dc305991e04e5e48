"""Span records: one record of an annotation tool's export, checked, as its text and code-point spans.

A span record is a JSON object holding a text and labelled character spans. Five shapes are read:

    entities          {"text", "entities": [{"start", "end", "label", ...}]}   ner-export's `predict` output
    spans             {"text", "spans": [{"start", "end", "label"}]}          spaCy / Prodigy
    doccano           {"text", "label": [[start, end, "PER"], ...]}            doccano
    doccano-entities  {"text", "entities": [{"start_offset", "end_offset", "label"}]}   newer doccano
    label-studio      {"data": {"text"}, "annotations": [{"result": [{"value": {"start", "end", "labels"}}]}]}

Design trade-offs:
- The shape is read from a file's first record (`detect_shape`) and then required of every record, never
  guessed per record: a record that lacks the shape's key is a bad record, so a file that mixes two
  tools' exports fails where they change instead of being half read. The keys are tried in a fixed
  order (`data`, `spans`, `entities`, `label`). The one thing settled later is which item layout an
  `entities` file uses, since a first record without entities does not show it (`entities_shape`).
- Offsets count code points, Python's string indices, which is what `predict` writes. JavaScript tools
  (Label Studio among them) count UTF-16 code units; the two differ after every character outside the
  Basic Multilingual Plane (emoji, many CJK extension characters), so `offsets="utf16"` converts. A span
  that carries its own text (predict's output, Label Studio's `value.text`) is checked against the text at
  its offsets, and the message says when the other offset unit would have matched: a wrong unit is
  caught at the first emoji instead of shifting every later label by one.
- Of a Label Studio task, the first annotation that was not cancelled is read, and of its results only
  those with `labels` (relations, choices and text areas are not spans). A task with no annotation is
  a bad record: reading it as "no entities" would teach the model to miss them.
- A label is an entity type (`PER`): `O`, a tag (`B-PER`) or a label holding whitespace (it could not be
  a CoNLL tag, and checkpoints keep a CoNLL sample of their dev data) is refused.
- Problems are `InputError`s saying what and where inside the record; the file reader (`span_files`)
  adds the file and line, and decides whether to stop or skip.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from .errors import InputError
from .texts import json_type, lone_surrogate

__all__ = [
    "SHAPES",
    "OFFSET_UNITS",
    "Span",
    "ParsedRecord",
    "detect_shape",
    "entities_shape",
    "parse_record",
    "utf16_index",
]

SHAPES = ("entities", "spans", "doccano", "doccano-entities", "label-studio")
"""The span record layouts read, in the order of the module docstring's table."""
OFFSET_UNITS = ("codepoints", "utf16")
"""What span offsets count: code points (Python, `predict`) or UTF-16 code units (JavaScript tools)."""

_SPAN_KEYS = {"entities": "entities", "spans": "spans", "doccano": "label", "doccano-entities": "entities"}
_OFFSET_KEYS = {"doccano-entities": ("start_offset", "end_offset")}
_TAG_PREFIXES = ("B-", "I-", "E-", "S-")


@dataclass(frozen=True, order=True)
class Span:
    """A labelled character span `[start, end)` of a text, in code points."""

    start: int
    end: int
    label: str


@dataclass(frozen=True)
class ParsedRecord:
    """A checked record: its text, its spans sorted by position, and the document it names (or None)."""

    text: str
    spans: tuple[Span, ...]
    document: str | int | None


class _RawSpan(NamedTuple):
    """A span as the record spells it, before any check: offsets, label, its own text, where it sits."""

    start: Any
    end: Any
    label: Any
    quoted: Any  # the span's own text when the record gives one, else None
    where: str  # e.g. "entities[2]", for messages


def detect_shape(record: Any) -> str | None:
    """The shape of a file's first record (one of SHAPES), or None when it holds no span key.

    An `entities` record is reported as "entities"; `entities_shape` tells the doccano layout apart.
    """
    if not isinstance(record, dict):
        return None
    if isinstance(record.get("data"), dict):
        return "label-studio"
    for key, shape in (("spans", "spans"), ("entities", "entities"), ("label", "doccano")):
        if key in record:
            return shape
    return None


def entities_shape(record: Any) -> str | None:
    """ "doccano-entities" or "entities" from the first entity of an `entities` record; None when it has none."""
    items = record.get("entities") if isinstance(record, dict) else None
    if not isinstance(items, list) or not items or not isinstance(items[0], dict):
        return None
    return "doccano-entities" if "start_offset" in items[0] else "entities"


def parse_record(record: Any, shape: str, offsets: str = "codepoints") -> ParsedRecord:
    """The text, spans and document name of one record of `shape`, offsets converted to code points.

    Raises InputError naming the problem: no text, no span key, a malformed span, start >= end, offsets
    outside the text, an empty or tag-like label, a span text that differs from the text at its
    offsets, or overlapping (nested) spans.
    """
    if shape not in SHAPES:
        raise ValueError(f"shape must be one of {', '.join(SHAPES)}, got {shape!r}")
    if offsets not in OFFSET_UNITS:
        raise ValueError(f"offsets must be one of {', '.join(OFFSET_UNITS)}, got {offsets!r}")
    if not isinstance(record, dict):
        raise InputError(f"expected a JSON object, got {json_type(record)}")
    text = _text(record, shape)
    raw_spans = _label_studio_spans(record) if shape == "label-studio" else _listed_spans(record, shape)
    index = utf16_index(text) if offsets == "utf16" else None
    spans = sorted(_checked_span(text, raw, offsets, index) for raw in raw_spans)
    _check_overlaps(spans)
    return ParsedRecord(text, tuple(spans), _document(record, shape))


def _text(record: dict[str, Any], shape: str) -> str:
    holder, name = (record["data"], "data.text") if shape == "label-studio" else (record, "text")
    if "text" not in holder:
        raise InputError(f"no '{name}' field")
    text = holder["text"]
    if not isinstance(text, str):
        raise InputError(f"'{name}' is {json_type(text)}, not a string")
    at = lone_surrogate(text)
    if at is not None:
        raise InputError(f"'{name}' holds a lone surrogate U+{ord(text[at]):04X} at character {at}, which is not text")
    if not text.strip():
        raise InputError(f"'{name}' holds no word")
    return text


def _listed_spans(record: dict[str, Any], shape: str) -> list[_RawSpan]:
    key = _SPAN_KEYS[shape]
    items = _array(record, key, "the file's first record has it")
    start_key, end_key = _OFFSET_KEYS.get(shape, ("start", "end"))
    spans = []
    for i, item in enumerate(items):
        where = f"{key}[{i}]"
        if shape == "doccano":
            if not isinstance(item, list) or len(item) != 3:
                raise InputError(f"{where} is {_excerpt(item)}, not [start, end, label]")
            spans.append(_RawSpan(item[0], item[1], item[2], None, where))
            continue
        if not isinstance(item, dict):
            raise InputError(f"{where} is {json_type(item)}, not an object")
        for name in (start_key, end_key, "label"):
            if name not in item:
                raise InputError(f"{where} has no '{name}'")
        spans.append(_RawSpan(item[start_key], item[end_key], item["label"], item.get("text"), where))
    return spans


def _label_studio_spans(task: dict[str, Any]) -> list[_RawSpan]:
    annotations = _array(task, "annotations", "a Label Studio task has it")
    kept = [(i, a) for i, a in enumerate(annotations) if isinstance(a, dict) and not a.get("was_cancelled")]
    if not kept:
        problem = "every annotation was cancelled" if annotations else "no annotation: the task was not labelled"
        raise InputError(problem)
    number, annotation = kept[0]
    results = _array(annotation, "result", "an annotation has it", f"annotations[{number}].")
    spans = []
    for i, item in enumerate(results):
        where = f"annotations[{number}].result[{i}]"
        value = item.get("value") if isinstance(item, dict) else None
        if not isinstance(value, dict) or "labels" not in value:
            continue  # a relation, a choice or a text area: not a span
        for name in ("start", "end"):
            if name not in value:
                raise InputError(f"{where}.value has no '{name}'")
        labels = value["labels"]
        if not isinstance(labels, list) or len(labels) != 1:
            raise InputError(f"{where}.value.labels is {_excerpt(labels)}, not one label in an array")
        spans.append(_RawSpan(value["start"], value["end"], labels[0], value.get("text"), f"{where}.value"))
    return spans


def _array(holder: dict[str, Any], key: str, why: str, prefix: str = "") -> list[Any]:
    if key not in holder:
        raise InputError(f"no '{prefix}{key}' field ({why})")
    items = holder[key]
    if not isinstance(items, list):
        raise InputError(f"'{prefix}{key}' is {json_type(items)}, not an array")
    return items


def _checked_span(text: str, raw: _RawSpan, offsets: str, index: list[int] | None) -> Span:
    """`raw` checked and in code points (`index`: `utf16_index(text)` when offsets count UTF-16 units)."""
    where = raw.where
    for name, value in (("start", raw.start), ("end", raw.end)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise InputError(f"{where}: {name} is {_excerpt(value)}, not an integer")
    label = _checked_label(raw.label, where)
    start, end = raw.start, raw.end
    if start >= end:
        raise InputError(f"{where}: start {start} is not before end {end}")
    size = len(text) if index is None else len(index) - 1
    unit = "code points" if offsets == "codepoints" else "UTF-16 code units"
    if start < 0 or end > size:
        raise InputError(f"{where}: [{start}, {end}) is outside the text ({size} {unit})")
    if index is not None:
        start, end = index[start], index[end]
        if start < 0 or end < 0:
            raise InputError(f"{where}: [{raw.start}, {raw.end}) cuts a character outside the BMP in half")
    if isinstance(raw.quoted, str) and text[start:end] != raw.quoted:
        raise InputError(_text_mismatch(text, raw, offsets, text[start:end]))
    return Span(start, end, label)


def _checked_label(label: Any, where: str) -> str:
    if not isinstance(label, str):
        raise InputError(f"{where}: the label is {json_type(label)}, not a string")
    if not label.strip():
        raise InputError(f"{where}: the label is empty")
    if label == "O":
        raise InputError(f"{where}: the label 'O' means outside any entity; a span's label is an entity type")
    if label.startswith(_TAG_PREFIXES):
        raise InputError(f"{where}: the label {label!r} is a tag; a span's label is the entity type ({label[2:]!r})")
    if any(ch.isspace() for ch in label):
        raise InputError(f"{where}: the label {label!r} holds whitespace, which a CoNLL tag cannot")
    return label


def _text_mismatch(text: str, raw: _RawSpan, offsets: str, found: str) -> str:
    """The message for a span whose own text differs from the text at its offsets, with a hint when the
    other offset unit reads the span's text there."""
    message = f"{raw.where}: its text {raw.quoted!r} differs from the text at [{raw.start}, {raw.end}), {found!r}"
    other = "utf16" if offsets == "codepoints" else "codepoints"
    index = utf16_index(text) if other == "utf16" else None
    if index is not None and raw.end < len(index) and min(index[raw.start], index[raw.end]) >= 0:
        if text[index[raw.start] : index[raw.end]] == raw.quoted:
            return f"{message}; the offsets count UTF-16 code units: read the file with offsets utf16"
    if other == "codepoints" and text[raw.start : raw.end] == raw.quoted:
        return f"{message}; the offsets count code points: read the file with offsets codepoints"
    return message


def _check_overlaps(spans: Sequence[Span]) -> None:
    """InputError for the first pair of spans that share a character (`spans` sorted by position)."""
    for first, second in zip(spans, spans[1:], strict=False):
        if second.start >= first.end:
            continue
        a, b = (f"[{s.start}, {s.end}) {s.label}" for s in (first, second))
        if first == second:
            raise InputError(f"the span {a} appears twice")
        if second.end <= first.end:
            raise InputError(f"nested spans: {b} lies inside {a}")
        raise InputError(f"overlapping spans: {a} and {b}")


def _document(record: dict[str, Any], shape: str) -> str | int | None:
    """The document a record names with `doc_id`, `document` or `meta.doc_id` (a Label Studio task may
    also name it in `data`), or None."""
    holders = [record, record["data"]] if shape == "label-studio" else [record]
    for holder in holders:
        meta = holder.get("meta")
        named = [(key, holder[key]) for key in ("doc_id", "document") if key in holder]
        if isinstance(meta, dict) and "doc_id" in meta:
            named.append(("meta.doc_id", meta["doc_id"]))
        for key, value in named:
            if value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, (str, int)):
                raise InputError(f"'{key}' is {json_type(value)}, not a document name (a string or an integer)")
            return value
    return None


def utf16_index(text: str) -> list[int] | None:
    """Code point index at each UTF-16 code unit offset of `text` (0..units inclusive), -1 between the two
    halves of a surrogate pair; None when the two units agree (no character outside the BMP)."""
    if len(text.encode("utf-16-le")) == 2 * len(text):
        return None
    index: list[int] = []
    for i, ch in enumerate(text):
        index.append(i)
        if ord(ch) > 0xFFFF:
            index.append(-1)
    index.append(len(text))
    return index


def _excerpt(value: Any) -> str:
    """A JSON value as the record spells it, cut to 40 characters, for messages."""
    shown = json.dumps(value, ensure_ascii=False)
    return shown if len(shown) <= 40 else shown[:37] + "..."
