"""JSON arrays (`.json`): the elements of one top-level array, parsed one at a time from a bounded window.

Design trade-offs:
- `json.load` would hold the whole file and its parsed values in memory; `JsonArrayReader` keeps a
  window of the file (64 KiB chunks) and hands `json.JSONDecoder.raw_decode` one element at a time, so
  memory is bounded by the largest element (64 Mi characters before the file is called malformed).
- A file that is not an array at all is a wrong file (`InputError` before the first record). An array
  that breaks part-way gives the records before the break, then one error record that says where it
  broke: nothing after that point can be trusted.
- An array has no line structure to seek by: a shard re-parses from the top and skips the rows before
  it, acceptable for the format people do not use for large corpora.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterator
from typing import IO, Any

from ner_export.runtime.errors import InputError

from .json_values import record_from_json
from .records import Position, Record

__all__ = ["MalformedJsonArray", "JsonArrayReader", "json_array_records"]

_CHUNK_CHARS = 1 << 16
_MAX_ELEMENT_CHARS = 64 << 20  # characters one array element may span before the file is called malformed


class MalformedJsonArray(InputError):
    """The JSON array cannot be read past this point (caught here and turned into an error record)."""


class JsonArrayReader:
    """Elements of a top-level JSON array, decoded one at a time from a bounded window of the file."""

    def __init__(self, handle: IO[bytes], name: str) -> None:
        self._handle = handle
        self._decode = codecs.getincrementaldecoder("utf-8-sig")(errors="strict").decode
        self._name = name
        self._decoder = json.JSONDecoder()
        self._buf = ""
        self._pos = 0
        self._eof = False
        self._lines_before = 0  # newlines in the part of the file already dropped from the buffer

    def _read_more(self, at_least: int = _CHUNK_CHARS) -> bool:
        """Append the next chunk to the window (dropping what was consumed); False at the end of the file."""
        if self._eof:
            return False
        if self._pos > _CHUNK_CHARS:
            self._lines_before += self._buf.count("\n", 0, self._pos)
            self._buf, self._pos = self._buf[self._pos :], 0
        data = self._handle.read(max(_CHUNK_CHARS, at_least))
        try:
            chunk = self._decode(data, final=not data)
        except UnicodeDecodeError as exc:
            raise MalformedJsonArray(f"not valid UTF-8 ({exc.reason}) after {self._position()}") from None
        if not data:
            self._eof = True
            return False
        self._buf += chunk
        return True

    def _position(self) -> str:
        """The reading position as "line N column M" of the file, for messages."""
        line = self._lines_before + self._buf.count("\n", 0, self._pos) + 1
        column = self._pos - (self._buf.rfind("\n", 0, self._pos) + 1) + 1
        return f"line {line} column {column}"

    def _peek(self) -> str:
        """The next non-whitespace character ('' at the end of the file), without consuming it."""
        while True:
            while self._pos < len(self._buf) and self._buf[self._pos] in " \t\r\n":
                self._pos += 1
            if self._pos < len(self._buf) or not self._read_more():
                return self._buf[self._pos : self._pos + 1]

    def open(self) -> None:
        """Check that the file holds an array; raise InputError (a wrong file, not a bad record)."""
        try:
            first = self._peek()
        except MalformedJsonArray as exc:
            raise InputError(f"{self._name}: {exc}") from None
        if first == "[":
            self._pos += 1
            return
        if not first:
            raise InputError(f"{self._name}: the file is empty; a .json input holds a JSON array ([...])")
        hint = (
            " (one JSON object per line is JSONL: pass --format jsonl, or name the file .jsonl)" if first == "{" else ""
        )
        raise InputError(f"{self._name}: expected a JSON array ('[') at the top level, found {first!r}{hint}")

    def elements(self) -> Iterator[tuple[Any, str]]:
        """(value, raw text) of each element; raises MalformedJsonArray where the array breaks."""
        if self._peek() == "]":
            self._pos += 1
            self._expect_end()
            return
        while True:
            yield self._next_value()
            nxt = self._peek()
            if nxt == ",":
                self._pos += 1
                if self._peek() == "]":
                    raise MalformedJsonArray(f"a trailing comma before ']' at {self._position()}")
                continue
            if nxt == "]":
                self._pos += 1
                self._expect_end()
                return
            found = f"{nxt!r}" if nxt else "the end of the file"
            raise MalformedJsonArray(f"expected ',' or ']' at {self._position()}, found {found}")

    def _next_value(self) -> tuple[Any, str]:
        if not self._peek():
            raise MalformedJsonArray(f"the file ends inside the array at {self._position()}")
        while True:
            try:
                value, end = self._decoder.raw_decode(self._buf, self._pos)
                if end < len(self._buf) or self._eof:  # something follows: the value is complete
                    raw = self._buf[self._pos : end]
                    self._pos = end
                    return value, raw
                error = None
            except json.JSONDecodeError as exc:
                error = exc
            except RecursionError:
                raise MalformedJsonArray(f"an element nested too deeply at {self._position()}") from None
            pending = len(self._buf) - self._pos
            if (error is not None and pending > _MAX_ELEMENT_CHARS) or not self._read_more(pending):
                if error is None:
                    continue
                raise MalformedJsonArray(f"{error.msg} at {self._position()}")

    def _expect_end(self) -> None:
        if self._peek():
            raise MalformedJsonArray(f"unexpected data after the closing ']' at {self._position()}")


def json_array_records(
    handle: IO[bytes], name: str, text_field: str, start: Position, limit: int | None
) -> Iterator[Record]:
    """`limit` records (all when None) of a JSON array, from row `start.row` on; a break ends them."""
    array = JsonArrayReader(handle, name)
    array.open()
    row = 0
    produced = 0
    elements = array.elements()
    while limit is None or produced < limit:
        try:
            value, raw = next(elements)
        except StopIteration:
            return
        except MalformedJsonArray as exc:
            if row >= start.row:
                reason = f"the JSON array is malformed: {exc}; nothing after this point could be read"
                yield Record(name, row, None, None, {}, reason, None)
            return
        if row >= start.row:
            yield record_from_json(name, row, None, value, text_field, raw)
            produced += 1
        row += 1
