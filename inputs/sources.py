"""Read input files as a stream of keyed records: plain text, JSONL, JSON arrays and Parquet.

Design trade-offs:
- One reader for every command that takes files (`annotate` and `predict`), so format choice,
  encodings, line numbers and bad records are decided in one place.
- The format comes from `--format` or the file's extension, never from its content: a text line that
  starts with `{` is text. An unknown extension is read as text, with a warning that says so.
- Lines are split as bytes, on `\\n` and `\\r\\n` only: a lone `\\r` stays inside its text, and a line
  that does not decode is one error record, not a failed file. UTF-16/32 files (a byte order mark, or
  NUL bytes at the start) are refused with the encoding named, since reading them as UTF-8 would
  produce garbage rows rather than errors.
- Blank lines (empty, or ASCII whitespace only) are not records: they take no row index but count for
  line numbers. Rows are dense (0..n-1 per file), so `rows in = rows out + error rows` always holds.
- Streaming: line files are read line by line, JSON arrays element by element, Parquet in row batches.
  `scan_source` is a cheap first pass that counts records and notes where every shard starts, so a
  reader can seek straight to a shard (a JSON array has no line structure to seek by: its shards
  re-parse from the top, acceptable for the format people do not use for large corpora).
- pyarrow is imported only for Parquet: text and JSON need nothing beyond the standard library.
"""

from __future__ import annotations

import codecs
import glob
import io
import json
import os
import re
import sys
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from ner_export.runtime.errors import DataNotFoundError, InputError, MissingDependencyError, NerExportWarning
from ner_export.runtime.texts import json_type, lone_surrogate

__all__ = [
    "FORMATS",
    "EXTENSIONS",
    "STDIN",
    "Record",
    "Position",
    "SourceScan",
    "resolve_format",
    "expand_inputs",
    "read_records",
    "scan_source",
    "parquet_passthrough_schema",
    "check_encoding",
]

FORMATS = ("auto", "text", "jsonl", "json", "parquet")
EXTENSIONS = {
    ".txt": "text",
    ".text": "text",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".parquet": "parquet",
    ".pq": "parquet",
}
STDIN = "-"

_HEAD_BYTES = 4096
_BOM_UTF8 = b"\xef\xbb\xbf"
_EXCERPT_CHARS = 200
# a JSON \u escape of a UTF-16 surrogate: only these can put a lone surrogate into a parsed string
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_JSON_CHUNK = 1 << 16
_MAX_JSON_ELEMENT = 64 << 20  # characters one array element may span before the file is called malformed
_PARQUET_BATCH = 4096


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


# --------------------------------------------------------------------------- formats and files
def resolve_format(path: str, fmt: str = "auto") -> str:
    """The format to read `path` with: `fmt` itself, or for "auto" the one its extension names.

    An unknown extension (and stdin) is read as text, one text a line, with a `NerExportWarning` that
    says so. The content is never used to guess: a text line starting with `{` stays text.
    """
    if fmt not in FORMATS:
        raise ValueError(f"format={fmt!r} is not one of {', '.join(FORMATS)}")
    if fmt != "auto":
        return fmt
    if path == STDIN:
        warnings.warn(
            "reading stdin as text, one text a line; pass --format jsonl or json for JSON input",
            NerExportWarning,
            stacklevel=2,
        )
        return "text"
    suffix = Path(path).suffix.lower()
    if suffix in EXTENSIONS:
        return EXTENSIONS[suffix]
    warnings.warn(
        f"{path}: extension {suffix or '(none)'!r} not known; read as text, one text a line "
        f"(known: {', '.join(EXTENSIONS)}; pass --format to choose)",
        NerExportWarning,
        stacklevel=2,
    )
    return "text"


def _is_pattern(text: str) -> bool:
    return any(c in text for c in "*?[")


def expand_inputs(patterns: Sequence[str]) -> list[str]:
    """Input files named by paths, directories or glob patterns, each listed once, in a stable order.

    A glob's matches and a directory's files are sorted by name; a directory contributes its files with
    a known extension (recursively), skipping names that start with `.` or `_` (hidden files and the
    `_manifest.json` / `_errors.jsonl` of an output folder). A name that matches nothing is an error.
    """
    if isinstance(patterns, (str, os.PathLike)):
        patterns = [str(patterns)]
    files: list[str] = []
    for pattern in map(str, patterns):
        if pattern == STDIN:
            found = [STDIN]
        elif os.path.isdir(pattern):
            found = sorted(
                str(p)
                for p in Path(pattern).rglob("*")
                if p.is_file()
                and p.suffix.lower() in EXTENSIONS
                and not any(part[:1] in "._" for part in p.relative_to(pattern).parts)
            )
            if not found:
                raise DataNotFoundError(
                    f"{pattern}: the directory holds no input file (known extensions: {', '.join(EXTENSIONS)})"
                )
        elif os.path.isfile(pattern):
            found = [pattern]
        elif _is_pattern(pattern):
            found = sorted(p for p in glob.glob(pattern, recursive=True) if os.path.isfile(p))
            if not found:
                raise DataNotFoundError(f"{pattern}: no file matches this pattern")
        else:
            raise DataNotFoundError(f"{pattern}: no such file or directory")
        files.extend(found)
    return list(dict.fromkeys(files))


def _open(path: str) -> IO[bytes]:
    if path == STDIN:
        return sys.stdin.buffer
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise DataNotFoundError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, not an input file") from None


def check_encoding(head: bytes, name: str) -> None:
    """Raise `InputError` naming the encoding when a file's first bytes show UTF-16 or UTF-32.

    A byte order mark names it exactly; without one, NUL bytes in the first block give it away (UTF-8
    text has none), and where they sit tells which of UTF-16/32, little or big endian, it most likely is.
    """
    boms = [
        (codecs.BOM_UTF32_LE, "UTF-32-LE", "UTF-32"),
        (codecs.BOM_UTF32_BE, "UTF-32-BE", "UTF-32"),
        (codecs.BOM_UTF16_LE, "UTF-16-LE", "UTF-16"),
        (codecs.BOM_UTF16_BE, "UTF-16-BE", "UTF-16"),
    ]
    for bom, encoding, iconv in boms:
        if head.startswith(bom):
            raise InputError(
                f"{name}: the file is {encoding} (it starts with a {encoding} byte order mark); "
                "ner-export reads UTF-8: "
                f"convert it first, e.g. iconv -f {iconv} -t UTF-8 {name} > converted.txt"
            )
    if b"\x00" not in head:
        return
    sample = head[: len(head) - len(head) % 4] or head
    zeros = [sum(1 for b in sample[k::4] if b == 0) / max(1, len(sample[k::4])) for k in range(4)]
    even, odd = (zeros[0] + zeros[2]) / 2, (zeros[1] + zeros[3]) / 2
    if zeros[1] > 0.9 and zeros[2] > 0.9 and zeros[3] > 0.9:
        guess, iconv = "UTF-32-LE", "UTF-32LE"
    elif zeros[0] > 0.9 and zeros[1] > 0.9 and zeros[2] > 0.9:
        guess, iconv = "UTF-32-BE", "UTF-32BE"
    elif odd > 0.5 and odd > 2 * even:
        guess, iconv = "UTF-16-LE", "UTF-16LE"
    elif even > 0.5 and even > 2 * odd:
        guess, iconv = "UTF-16-BE", "UTF-16BE"
    else:
        raise InputError(
            f"{name}: the file holds NUL bytes near its start: binary data, or text in an encoding other than UTF-8"
        )
    raise InputError(
        f"{name}: the file looks like {guess} without a byte order mark (NUL bytes between its characters); "
        f"ner-export reads UTF-8: convert it first, e.g. iconv -f {iconv} -t UTF-8 {name} > converted.txt"
    )


def _excerpt(raw: bytes | str) -> str:
    text = raw.decode("utf-8", errors="backslashreplace") if isinstance(raw, bytes) else raw
    text = text.encode("utf-8", errors="backslashreplace").decode("utf-8")  # lone surrogates as \udxxx
    return text[:_EXCERPT_CHARS]


def _lone_surrogate(value: Any, where: str) -> str | None:
    """Where a lone surrogate sits in a parsed JSON value (it cannot be encoded to UTF-8), or None."""
    if isinstance(value, str):
        at = lone_surrogate(value)
        if at is None:
            return None
        return f"{where} holds a lone surrogate U+{ord(value[at]):04X} at character {at}, which is not text"
    if isinstance(value, dict):
        for key, item in value.items():
            found = _lone_surrogate(key, f"a key of {where}") or _lone_surrogate(
                item, f"field {key!r}" if where == "the record" else f"{where}.{key}"
            )
            if found:
                return found
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found = _lone_surrogate(item, f"{where}[{i}]")
            if found:
                return found
    return None


def _json_record(name: str, row: int, line: int | None, value: Any, text_field: str, raw: str) -> Record:
    """A record from one parsed JSON value: a string is the text, an object holds it in `text_field`."""

    def bad(reason: str) -> Record:
        return Record(name, row, line, None, {}, reason, _excerpt(raw))

    if isinstance(value, str):
        text, fields = value, {}
    elif isinstance(value, dict):
        if text_field not in value:
            keys = ", ".join(repr(k) for k in list(value)[:10]) or "none"
            return bad(f"no {text_field!r} field (the object has: {keys})")
        text = value[text_field]
        if not isinstance(text, str):
            return bad(f"{text_field!r} is {json_type(text)}, expected a string")
        fields = {k: v for k, v in value.items() if k != text_field}
    else:
        return bad(f"expected a JSON object or string, found {json_type(value)}")
    if _SURROGATE_ESCAPE.search(raw):
        problem = _lone_surrogate(text, repr(text_field)) or _lone_surrogate(fields, "the record")
        if problem:
            return bad(problem)
    return Record(name, row, line, text, fields)


# --------------------------------------------------------------------------- line formats
def _lines(handle: IO[bytes], line: int = 1, offset: int = 0) -> Iterator[tuple[int, int, bytes]]:
    """(line number, byte offset, content without its `\\n` / `\\r\\n`) of each physical line."""
    for raw in handle:
        size = len(raw)
        content = raw
        if content.endswith(b"\n"):
            content = content[:-2] if content.endswith(b"\r\n") else content[:-1]
        if offset == 0 and content.startswith(_BOM_UTF8):
            content = content[len(_BOM_UTF8) :]
        yield line, offset, content
        line += 1
        offset += size


def _line_record(name: str, fmt: str, text_field: str, row: int, line: int, content: bytes) -> Record:
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
            _excerpt(content),
        )
    if fmt == "text":
        return Record(name, row, line, text, {})
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return Record(name, row, line, None, {}, f"not valid JSON: {exc.msg} at column {exc.colno}", _excerpt(text))
    except RecursionError:
        return Record(name, row, line, None, {}, "not valid JSON: nested too deeply", _excerpt(text))
    return _json_record(name, row, line, value, text_field, text)


def _read_some(handle: IO[bytes], size: int) -> bytes:
    """Up to `size` bytes, returning as soon as some have arrived (a pipe's `read(n)` waits for all n)."""
    read1 = getattr(handle, "read1", None)
    data: bytes = read1(size) if read1 is not None else handle.read(size)
    return data


def _read_head(handle: IO[bytes]) -> tuple[bytes, IO[bytes]]:
    """The first bytes of a stream, and a stream that still yields them (stdin cannot seek back).

    From a pipe it reads only until the first line is complete (or 4 KiB), so a producer that writes a
    line and waits for its answer is not kept waiting for more input.
    """
    if handle.seekable():
        head = handle.read(_HEAD_BYTES)
        handle.seek(0)
        return head, handle
    head = b""
    while len(head) < _HEAD_BYTES and (len(head) < 4 or b"\n" not in head):
        data = _read_some(handle, _HEAD_BYTES - len(head))
        if not data:
            break
        head += data
    return head, io.BufferedReader(_Prefixed(head, handle))


class _Prefixed(io.RawIOBase):
    """A non-seekable stream with bytes already read put back in front."""

    def __init__(self, prefix: bytes, rest: IO[bytes]) -> None:
        self._prefix = prefix
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self._prefix:
            n = min(len(buffer), len(self._prefix))
            buffer[:n] = self._prefix[:n]
            self._prefix = self._prefix[n:]
            return n
        data = _read_some(self._rest, len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _line_records(
    handle: IO[bytes], name: str, fmt: str, text_field: str, start: Position, limit: int | None
) -> Iterator[Record]:
    row = start.row
    if start.offset:
        handle.seek(start.offset)
        lines = _lines(handle, start.line or 1, start.offset)
    else:
        lines = _lines(handle)
        if start.row:  # no offset known: walk to the row without parsing the lines before it
            skipped = 0
            for _, _, content in lines:
                if content.strip():
                    skipped += 1
                    if skipped == start.row:
                        break
    produced = 0
    for line, _, content in lines:
        if limit is not None and produced >= limit:
            return
        if not content.strip():
            continue
        yield _line_record(name, fmt, text_field, row, line, content)
        row += 1
        produced += 1


# --------------------------------------------------------------------------- JSON arrays
class _Malformed(Exception):
    """The JSON array cannot be read past this point."""


class _JsonArray:
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

    def _fill(self, at_least: int = _JSON_CHUNK) -> bool:
        if self._eof:
            return False
        if self._pos > _JSON_CHUNK:
            self._lines_before += self._buf.count("\n", 0, self._pos)
            self._buf, self._pos = self._buf[self._pos :], 0
        data = self._handle.read(max(_JSON_CHUNK, at_least))
        try:
            chunk = self._decode(data, final=not data)
        except UnicodeDecodeError as exc:
            raise _Malformed(f"not valid UTF-8 ({exc.reason}) after {self._where()}") from None
        if not data:
            self._eof = True
            return False
        self._buf += chunk
        return True

    def _where(self) -> str:
        line = self._lines_before + self._buf.count("\n", 0, self._pos) + 1
        column = self._pos - (self._buf.rfind("\n", 0, self._pos) + 1) + 1
        return f"line {line} column {column}"

    def _peek(self) -> str:
        """The next non-whitespace character ('' at the end of the file), without consuming it."""
        while True:
            while self._pos < len(self._buf) and self._buf[self._pos] in " \t\r\n":
                self._pos += 1
            if self._pos < len(self._buf) or not self._fill():
                return self._buf[self._pos : self._pos + 1]

    def open(self) -> None:
        """Check that the file holds an array; raise InputError (a wrong file, not a bad record)."""
        try:
            first = self._peek()
        except _Malformed as exc:
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
        """(value, raw text) of each element; raises _Malformed where the array breaks."""
        if self._peek() == "]":
            self._pos += 1
            self._finish()
            return
        while True:
            yield self._value()
            nxt = self._peek()
            if nxt == ",":
                self._pos += 1
                if self._peek() == "]":
                    raise _Malformed(f"a trailing comma before ']' at {self._where()}")
                continue
            if nxt == "]":
                self._pos += 1
                self._finish()
                return
            found = f"{nxt!r}" if nxt else "the end of the file"
            raise _Malformed(f"expected ',' or ']' at {self._where()}, found {found}")

    def _value(self) -> tuple[Any, str]:
        if not self._peek():
            raise _Malformed(f"the file ends inside the array at {self._where()}")
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
                raise _Malformed(f"an element nested too deeply at {self._where()}") from None
            pending = len(self._buf) - self._pos
            if (error is not None and pending > _MAX_JSON_ELEMENT) or not self._fill(pending):
                if error is None:
                    continue
                raise _Malformed(f"{error.msg} at {self._where()}")

    def _finish(self) -> None:
        if self._peek():
            raise _Malformed(f"unexpected data after the closing ']' at {self._where()}")


def _json_array_records(
    handle: IO[bytes], name: str, text_field: str, start: Position, limit: int | None
) -> Iterator[Record]:
    array = _JsonArray(handle, name)
    array.open()
    row = 0
    produced = 0
    elements = array.elements()
    while limit is None or produced < limit:
        try:
            value, raw = next(elements)
        except StopIteration:
            return
        except _Malformed as exc:
            if row >= start.row:
                yield Record(
                    name,
                    row,
                    None,
                    None,
                    {},
                    f"the JSON array is malformed: {exc}; nothing after this point could be read",
                    None,
                )
            return
        if row >= start.row:
            yield _json_record(name, row, None, value, text_field, raw)
            produced += 1
        row += 1


# --------------------------------------------------------------------------- Parquet
def _pyarrow_parquet() -> Any:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise MissingDependencyError("pyarrow", "annotate", "Reading Parquet") from None
    return pq


def _parquet_file(path: str, text_field: str) -> Any:
    """An open `pyarrow.parquet.ParquetFile` whose `text_field` column holds strings."""
    pq = _pyarrow_parquet()
    import pyarrow as pa

    if path == STDIN:
        raise InputError("Parquet cannot be read from stdin; pass a file")
    try:
        parquet = pq.ParquetFile(path)
    except FileNotFoundError:
        raise DataNotFoundError(f"{path}: no such file") from None
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"{path}: not a readable Parquet file ({exc})") from None
    schema = parquet.schema_arrow
    if text_field not in schema.names:
        raise InputError(f"{path}: no column {text_field!r} (columns: {', '.join(schema.names)}); pass --text-field")
    kind = schema.field(text_field).type
    if pa.types.is_dictionary(kind):
        kind = kind.value_type
    if not (
        pa.types.is_string(kind)
        or pa.types.is_large_string(kind)
        or getattr(pa.types, "is_string_view", lambda _: False)(kind)
    ):
        raise InputError(f"{path}: column {text_field!r} is {kind}, expected strings")
    return parquet


def parquet_passthrough_schema(path: str, text_field: str = "text") -> Any:
    """The Arrow schema of a Parquet file's columns other than the text (kept as they are on output)."""
    schema = _parquet_file(path, text_field).schema_arrow
    return schema.remove(schema.get_field_index(text_field))


def _parquet_records(path: str, text_field: str, start: Position, limit: int | None) -> Iterator[Record]:
    import pyarrow as pa

    parquet = _parquet_file(path, text_field)
    metadata = parquet.metadata
    stop = metadata.num_rows if limit is None else min(metadata.num_rows, start.row + limit)
    first_row, groups = 0, []
    for i in range(metadata.num_row_groups):
        size = metadata.row_group(i).num_rows
        if first_row + size > start.row and first_row < stop:
            groups.append((i, first_row))
        first_row += size
    if not groups:
        return
    names = parquet.schema_arrow.names
    others = [n for n in names if n != text_field]
    row = groups[0][1]
    try:
        for batch in parquet.iter_batches(
            batch_size=_PARQUET_BATCH, row_groups=[i for i, _ in groups], use_threads=False
        ):
            begin, end = max(start.row - row, 0), min(batch.num_rows, stop - row)
            if end > begin:
                part = batch.slice(begin, end - begin)
                texts = part.column(names.index(text_field)).to_pylist()
                columns = [part.column(names.index(n)).to_pylist() for n in others]
                for k, text in enumerate(texts):
                    fields = {n: column[k] for n, column in zip(others, columns, strict=True)}
                    index = row + begin + k
                    if text is None:
                        yield Record(path, index, None, None, {}, f"{text_field!r} is null, expected a string", None)
                    else:
                        yield Record(path, index, None, text, fields)
            row += batch.num_rows
            if row >= stop:
                return
    except pa.ArrowException as exc:
        raise InputError(f"{path}: cannot read row {row} onwards ({exc})") from None


# --------------------------------------------------------------------------- public entry points
def read_records(
    path: str,
    fmt: str = "auto",
    text_field: str = "text",
    *,
    start: Position | None = None,
    limit: int | None = None,
) -> Iterator[Record]:
    """Stream the records of one input file (`-` is stdin), good and bad, in file order.

    fmt: "text" (one text a line), "jsonl" (one JSON object, or string, a line), "json" (a top-level
        array of objects or strings), "parquet", or "auto" (from the extension; see `resolve_format`).
    text_field: the field (JSONL, JSON) or column (Parquet) holding the text; every other field is
        passed through in `Record.fields`.
    start, limit: read only `limit` records from `start` (a `Position` from `scan_source`, or just a row).

    A file that cannot be read at all (missing, UTF-16/32, not a JSON array, no text column) raises
    `InputError` (or `DataNotFoundError`) before the first record; a bad record is yielded as one with
    `error` set, never dropped.
    """
    fmt = resolve_format(str(path), fmt)
    path = str(path)
    start = start or Position(0)
    name = "<stdin>" if path == STDIN else path
    if fmt == "parquet":
        yield from _parquet_records(path, text_field, start, limit)
        return
    handle = _open(path)
    try:
        head, stream = _read_head(handle)
        check_encoding(head, name)
        if fmt == "json":
            yield from _json_array_records(stream, name, text_field, start, limit)
        else:
            yield from _line_records(stream, name, fmt, text_field, start, limit)
    finally:
        if handle is not sys.stdin.buffer:
            handle.close()


def scan_source(path: str, fmt: str, text_field: str = "text", shard_size: int = 10_000) -> SourceScan:
    """Count the records of a file and note where every `shard_size`-th one starts.

    `fmt` must be resolved (not "auto"). Line files are scanned as bytes without decoding (fast); a JSON
    array is parsed through; a Parquet file answers from its footer. File-level problems raise here, so
    a run fails before it writes anything.
    """
    if fmt == "auto":
        raise ValueError("scan_source needs a resolved format; call resolve_format first")
    if shard_size < 1:
        raise ValueError(f"shard_size={shard_size!r} must be positive")
    stat = os.stat(path)
    if fmt == "parquet":
        rows = _parquet_file(path, text_field).metadata.num_rows
        starts = tuple(Position(r) for r in range(0, rows, shard_size))
        return SourceScan(path, fmt, rows, 0, stat.st_size, stat.st_mtime_ns, starts)
    with _open(path) as handle:
        head, _ = _read_head(handle)
        check_encoding(head, path)
        if fmt == "json":
            rows = sum(1 for _ in _json_array_records(handle, path, text_field, Position(0), None))
            starts = tuple(Position(r) for r in range(0, rows, shard_size))
            return SourceScan(path, fmt, rows, 0, stat.st_size, stat.st_mtime_ns, starts)
        rows = blank = 0
        found = []
        for line, offset, content in _lines(handle):
            if not content.strip():
                blank += 1
                continue
            if rows % shard_size == 0:
                found.append(Position(rows, offset, line))
            rows += 1
    return SourceScan(path, fmt, rows, blank, stat.st_size, stat.st_mtime_ns, tuple(found))
