"""Line formats (text and JSONL): physical lines split as bytes, each decoded into one record.

Design trade-offs:
- Lines are split as bytes, on `\\n` and `\\r\\n` only: a lone `\\r` stays inside its text, and a line
  that does not decode is one error record, not a failed file.
- Blank lines (empty, or ASCII whitespace only) are not records: they take no row index but count for
  line numbers. Rows are dense (0..n-1 per file), so `rows in = rows out + error rows` always holds.
- Reading is line by line, so memory does not grow with the file; a reader given a byte offset (from
  `scan_source`) seeks straight to its shard, and one given only a row walks there without parsing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import IO

from .encoding import BOM_UTF8
from .json_values import record_from_json
from .records import Position, Record, excerpt

__all__ = ["split_lines", "line_record", "line_records"]


def split_lines(handle: IO[bytes], line: int = 1, offset: int = 0) -> Iterator[tuple[int, int, bytes]]:
    """(line number, byte offset, content without its `\\n` / `\\r\\n`) of each physical line."""
    for raw in handle:
        size = len(raw)
        content = raw
        if content.endswith(b"\n"):
            content = content[:-2] if content.endswith(b"\r\n") else content[:-1]
        if offset == 0 and content.startswith(BOM_UTF8):
            content = content[len(BOM_UTF8) :]
        yield line, offset, content
        line += 1
        offset += size


def line_record(name: str, fmt: str, text_field: str, row: int, line: int, content: bytes) -> Record:
    """The record of one non-blank line: its text ("text"), or its parsed JSON value ("jsonl")."""
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Record(
            name,
            row,
            line,
            None,
            {},
            f"not valid UTF-8: byte 0x{content[exc.start]:02X} at byte {exc.start + 1} of the line",
            excerpt(content),
        )
    if fmt == "text":
        return Record(name, row, line, text, {})
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return Record(name, row, line, None, {}, f"not valid JSON: {exc.msg} at column {exc.colno}", excerpt(text))
    except RecursionError:
        return Record(name, row, line, None, {}, "not valid JSON: nested too deeply", excerpt(text))
    return record_from_json(name, row, line, value, text_field, text)


def _lines_from(handle: IO[bytes], start: Position) -> Iterator[tuple[int, int, bytes]]:
    """The lines from `start` on: sought to its byte offset, or walked to its row without parsing."""
    if start.offset:
        handle.seek(start.offset)
        return split_lines(handle, start.line or 1, start.offset)
    lines = split_lines(handle)
    if start.row:
        skipped = 0
        for _, _, content in lines:
            if content.strip():
                skipped += 1
                if skipped == start.row:
                    break
    return lines


def line_records(
    handle: IO[bytes], name: str, fmt: str, text_field: str, start: Position, limit: int | None
) -> Iterator[Record]:
    """`limit` records (all when None) of a text or JSONL stream, from `start` on."""
    row = start.row
    produced = 0
    for line, _, content in _lines_from(handle, start):
        if limit is not None and produced >= limit:
            return
        if not content.strip():
            continue
        yield line_record(name, fmt, text_field, row, line, content)
        row += 1
        produced += 1
