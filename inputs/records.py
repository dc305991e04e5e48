"""What the input reader yields: keyed records (good or bad), reading positions and a file's scan.

Design trade-offs:
- A bad record is a `Record` like a good one, with `text=None` and the reason in `error`, so a stream
  keeps its row numbering and `rows in = rows out + error rows` holds without a second channel.
- `excerpt` keeps only the start of a bad record's raw content (200 characters, undecodable bytes and
  lone surrogates as backslash escapes): enough to find it in the file, never a whole line in a report.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = ["Record", "Position", "SourceScan", "excerpt"]

EXCERPT_CHARS = 200


@dataclass(frozen=True)
class Record:
    """One input record: its key, its text and the input's other fields; or, if bad, why.

    `source` and `row` (0-based, dense: blank lines take none) identify it; `line` is the 1-based
    physical line for line formats (text, JSONL), None for JSON arrays and Parquet. `fields` holds
    every input field other than the text, in input order, unchanged. A bad record has `text=None` and
    `error` set; `excerpt` is the start of its raw content, for the error report.
    """

    source: str
    row: int
    line: int | None
    text: str | None
    fields: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    excerpt: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def where(self) -> str:
        """`file:line` for line formats, `file row N` (0-based) otherwise: for messages."""
        return f"{self.source}:{self.line}" if self.line is not None else f"{self.source} row {self.row}"

    def error_dict(self) -> dict[str, Any]:
        """The error report of a bad record: file, row, line, reason and the start of its content."""
        return {
            "source": self.source,
            "row": self.row,
            "line": self.line,
            "reason": self.error,
            "excerpt": self.excerpt,
        }


@dataclass(frozen=True)
class Position:
    """Where reading may start: a record's row and, in a line file, its byte offset and line number."""

    row: int
    offset: int | None = None
    line: int | None = None


@dataclass(frozen=True)
class SourceScan:
    """What the first pass over one file found: its record count and where each shard starts."""

    path: str
    format: str
    rows: int
    blank_lines: int
    size: int
    mtime_ns: int
    starts: tuple[Position, ...]


def excerpt(raw: bytes | str) -> str:
    """The start of a bad record's raw content, printable: invalid bytes and lone surrogates escaped."""
    text = raw.decode("utf-8", errors="backslashreplace") if isinstance(raw, bytes) else raw
    text = text.encode("utf-8", errors="backslashreplace").decode("utf-8")  # lone surrogates as \udxxx
    return text[:EXCERPT_CHARS]
