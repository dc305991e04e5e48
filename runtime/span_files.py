"""Span files: JSON Lines and JSON-array files of span records, every record checked and placed by its line.

`.jsonl` and `.ndjson` files hold one record a line (blank lines are skipped); a `.json` file holds one
top-level array of records (Label Studio's export). The container follows the file's extension, never its
content. The records' shape (`runtime.span_records`) is detected from the first record that is a JSON
object and required of all.

Design trade-offs:
- A whole file is read into memory: training and evaluation files are small next to the model, and a
  reader that sees every record can count and report them before training starts.
- Every record keeps the 1-based line it starts on, in JSON arrays too (the array is walked element by
  element with `json.JSONDecoder.raw_decode`), so a problem in a pretty-printed Label Studio export is
  found with an editor's "go to line". Rows are 0-based and dense, as in `ner_export.inputs`, and a bad
  record's report has the same keys as that reader's (`source`, `row`, `line`, `reason`, `excerpt`).
- A bad record (not JSON, not an object, or failing `parse_record`) stops the reading with one
  `DataFormatError` line naming the file, the line (and, in an array, the record number) and the
  reason; with `skip_bad` it is listed in the result instead and the reading goes on. A problem of the
  file as a whole (not UTF-8 in an array, a broken array, no span key in the first record, no usable
  record) always stops it: no record after it could be trusted.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import DataFormatError, DataNotFoundError, InputError
from .span_records import OFFSET_UNITS, Span, detect_shape, entities_shape, parse_record
from .texts import json_type

__all__ = ["SPAN_SUFFIXES", "SpanRecord", "BadRecord", "SpanFile", "is_span_file", "read_span_file"]

SPAN_SUFFIXES = (".jsonl", ".ndjson", ".json")
"""Extensions of span files; `.json` is a top-level array, the others one record a line."""
_EXCERPT_CHARS = 200  # of a bad record's raw content, in its report
_MESSAGE_CHARS = 80  # of the same, in its one-line message
_JSON_BLANKS = " \t\n\r"
_NO_SPAN_KEY = (
    "no span key: the first record must name its spans with 'data' + 'annotations' (Label Studio), "
    "'spans', 'entities' or 'label' (doccano)"
)


@dataclass(frozen=True)
class SpanRecord:
    """A good record: where it is (`row` 0-based among records, `line` 1-based), its text, its spans in
    code points sorted by position, and the document it names (None when it names none)."""

    source: str
    row: int
    line: int
    text: str
    spans: tuple[Span, ...]
    document: str | int | None = None


@dataclass(frozen=True)
class BadRecord:
    """A record that could not be read: where it is, why, and the start of its raw content."""

    source: str
    row: int
    line: int
    reason: str
    excerpt: str
    in_array: bool = False  # a record of a JSON array, whose message also gives the record number

    def error(self) -> DataFormatError:
        """The one-line error this record raises when bad records are not skipped."""
        shown = self.excerpt if len(self.excerpt) <= _MESSAGE_CHARS else self.excerpt[: _MESSAGE_CHARS - 3] + "..."
        problem = f"record {self.row + 1}: {self.reason}" if self.in_array else self.reason
        return DataFormatError(self.source, self.line, shown, problem)

    @property
    def message(self) -> str:
        return str(self.error())

    def error_dict(self) -> dict[str, Any]:
        """The report of a skipped record, with the keys of `ner_export.inputs` error reports."""
        return {
            "source": self.source,
            "row": self.row,
            "line": self.line,
            "reason": self.reason,
            "excerpt": self.excerpt,
        }


@dataclass(frozen=True)
class SpanFile:
    """What `read_span_file` read: the shape, the good records and (with `skip_bad`) the bad ones."""

    path: str
    shape: str
    records: tuple[SpanRecord, ...]
    bad: tuple[BadRecord, ...] = ()

    @property
    def spans(self) -> int:
        """How many spans the good records hold."""
        return sum(len(r.spans) for r in self.records)


def is_span_file(path: str | Path) -> bool:
    """True when `path`'s extension names a span file (`.jsonl`, `.ndjson`, `.json`, any case)."""
    return Path(path).suffix.lower() in SPAN_SUFFIXES


def read_span_file(path: str | Path, *, offsets: str = "codepoints", skip_bad: bool = False) -> SpanFile:
    """Read and check every record of a span file (`.json`: an array; anything else: JSON Lines).

    `offsets`: "codepoints" (Python string indices) or "utf16" (UTF-16 code units, converted).
    `skip_bad`: list bad records in the result and go on, instead of raising DataFormatError at the first.
    Raises DataNotFoundError for a missing file and DataFormatError for a file that cannot be read.
    """
    if offsets not in OFFSET_UNITS:
        raise ValueError(f"offsets must be one of {', '.join(OFFSET_UNITS)}, got {offsets!r}")
    path = Path(path)
    if not path.is_file():
        raise DataNotFoundError(f"{path}: no such file")
    source = str(path)
    in_array = path.suffix.lower() == ".json"
    entries = _array_entries(source, path.read_bytes()) if in_array else _line_entries(path.read_bytes())
    shape = ""
    layout_known = False  # whether the item layout of an `entities` file is settled (`entities_shape`)
    records: list[SpanRecord] = []
    bad: list[BadRecord] = []
    for row, (line, raw, value, problem) in enumerate(entries):
        if problem is None and not shape:
            shape = detect_shape(value) or ""
            if not shape and isinstance(value, dict):
                raise DataFormatError(source, line, raw[:_MESSAGE_CHARS], _NO_SPAN_KEY)
        if problem is None and shape == "entities" and not layout_known:
            settled = entities_shape(value)
            shape, layout_known = settled or shape, settled is not None
        if problem is None and shape:
            try:
                parsed = parse_record(value, shape, offsets)
            except InputError as exc:
                problem = str(exc)
            else:
                records.append(SpanRecord(source, row, line, parsed.text, parsed.spans, parsed.document))
                continue
        if problem is None:
            problem = f"expected a JSON object, got {json_type(value)}"
        record = BadRecord(source, row, line, problem, raw[:_EXCERPT_CHARS], in_array)
        if not skip_bad:
            raise record.error()
        bad.append(record)
    if not records:
        found = f" ({len(bad)} bad record(s) skipped)" if bad else ""
        raise DataFormatError(source, 1, "", f"the file holds no usable record{found}")
    return SpanFile(source, shape, tuple(records), tuple(bad))


_Entry = tuple[int, str, Any, str | None]
"""(line, raw content, parsed value, problem or None) of one record."""


def _line_entries(data: bytes) -> Iterator[_Entry]:
    """The records of a JSON Lines file: a line that is not UTF-8 or not JSON is a bad record."""
    for number, raw_line in enumerate(data.split(b"\n"), start=1):
        if number == 1:
            raw_line = raw_line.removeprefix(b"\xef\xbb\xbf")
        try:
            line = raw_line.decode("utf-8")
        except UnicodeDecodeError as exc:
            shown = raw_line.decode("utf-8", errors="backslashreplace")
            yield number, shown, None, f"not valid UTF-8 (byte 0x{raw_line[exc.start]:02X} at byte {exc.start})"
            continue
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            yield number, line, None, f"not valid JSON ({exc.msg} at column {exc.colno})"
            continue
        yield number, line, value, None


def _array_entries(source: str, data: bytes) -> Iterator[_Entry]:
    """The records of a file holding one JSON array, each with the line it starts on."""
    try:
        text = data.decode("utf-8").removeprefix("\ufeff")
    except UnicodeDecodeError as exc:
        number = data[: exc.start].count(b"\n") + 1
        shown = data.split(b"\n")[number - 1].decode("utf-8", errors="backslashreplace")
        raise DataFormatError(source, number, shown[:_MESSAGE_CHARS], "not valid UTF-8") from None
    decoder = json.JSONDecoder()
    line, counted = 1, 0

    def line_at(position: int) -> int:
        nonlocal line, counted
        line += text.count("\n", counted, position)
        counted = position
        return line

    def fail(position: int, problem: str) -> DataFormatError:
        at = line_at(position)
        return DataFormatError(source, at, text.split("\n")[at - 1][:_MESSAGE_CHARS], problem)

    position = _skip_blanks(text, 0)
    if not text.startswith("[", position):
        raise fail(position, "a .json span file holds one JSON array of records")
    position = _skip_blanks(text, position + 1)
    closed = text.startswith("]", position)
    while not closed:
        try:
            value, end = decoder.raw_decode(text, position)
        except json.JSONDecodeError as exc:
            raise fail(exc.pos, f"not valid JSON ({exc.msg} at column {exc.colno})") from None
        yield line_at(position), text[position:end], value, None
        position = _skip_blanks(text, end)
        closed = text.startswith("]", position)
        if not closed and not text.startswith(",", position):
            raise fail(position, "expected ',' or ']' after a record of the array")
        position = _skip_blanks(text, position + 1) if not closed else position
    if _skip_blanks(text, position + 1) < len(text):
        raise fail(_skip_blanks(text, position + 1), "text after the array's closing ']'")


def _skip_blanks(text: str, position: int) -> int:
    while position < len(text) and text[position] in _JSON_BLANKS:
        position += 1
    return position
