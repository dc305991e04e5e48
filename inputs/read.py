"""The reader's entry points: stream one file's records (`read_records`), or scan it first (`scan_source`).

Design trade-offs:
- One reader for every command that takes files (`annotate` and `predict`), so format choice,
  encodings, line numbers and bad records are decided in one place; this module only dispatches to
  the format's own module (`lines`, `json_array`, `parquet`).
- Streaming: line files are read line by line, JSON arrays element by element, Parquet in row batches.
  `scan_source` is a cheap first pass that counts records and notes where every shard starts, so a
  reader can seek straight to a shard. File-level problems (missing, UTF-16/32, not a JSON array, no
  text column) raise before the first record, so a run fails before it writes anything.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator

from .encoding import check_encoding, read_head
from .json_array import json_array_records
from .lines import line_records, split_lines
from .parquet import open_parquet, parquet_records
from .paths import STDIN, open_input, resolve_format
from .records import Position, Record, SourceScan

__all__ = ["read_records", "scan_source"]


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
        yield from parquet_records(path, text_field, start, limit)
        return
    handle = open_input(path)
    try:
        head, stream = read_head(handle)
        check_encoding(head, name)
        if fmt == "json":
            yield from json_array_records(stream, name, text_field, start, limit)
        else:
            yield from line_records(stream, name, fmt, text_field, start, limit)
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
        rows = open_parquet(path, text_field).metadata.num_rows
        starts = tuple(Position(r) for r in range(0, rows, shard_size))
        return SourceScan(path, fmt, rows, 0, stat.st_size, stat.st_mtime_ns, starts)
    with open_input(path) as handle:
        head, _ = read_head(handle)
        check_encoding(head, path)
        if fmt == "json":
            rows = sum(1 for _ in json_array_records(handle, path, text_field, Position(0), None))
            starts = tuple(Position(r) for r in range(0, rows, shard_size))
            return SourceScan(path, fmt, rows, 0, stat.st_size, stat.st_mtime_ns, starts)
        rows = blank = 0
        found = []
        for line, offset, content in split_lines(handle):
            if not content.strip():
                blank += 1
                continue
            if rows % shard_size == 0:
                found.append(Position(rows, offset, line))
            rows += 1
    return SourceScan(path, fmt, rows, blank, stat.st_size, stat.st_mtime_ns, tuple(found))
