"""Parquet inputs: the text column checked up front, then records read in row batches.

Design trade-offs:
- pyarrow is imported only here, when a Parquet file is read: text and JSON need nothing beyond the
  standard library, so a missing pyarrow is an error only for the files that need it.
- A file's footer answers the record count and the row groups, so a scan costs no read of the data,
  and a shard reads only the row groups that hold its rows.
- The text column must hold strings (dictionary-encoded too); a null text is an error record. Every
  other column passes through with its Arrow type (`parquet_passthrough_schema`), so an output can keep
  the input's types.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ner_export.runtime.errors import DataNotFoundError, InputError, MissingDependencyError

from .paths import STDIN
from .records import Position, Record

__all__ = ["open_parquet", "parquet_passthrough_schema", "parquet_records"]

_BATCH_ROWS = 4096


def _import_pyarrow_parquet() -> Any:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise MissingDependencyError("pyarrow", "annotate", "Reading Parquet") from None
    return pq


def _is_string_type(pa: Any, kind: Any) -> bool:
    return bool(
        pa.types.is_string(kind)
        or pa.types.is_large_string(kind)
        or getattr(pa.types, "is_string_view", lambda _: False)(kind)
    )


def open_parquet(path: str, text_field: str) -> Any:
    """An open `pyarrow.parquet.ParquetFile` whose `text_field` column holds strings."""
    pq = _import_pyarrow_parquet()
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
    if not _is_string_type(pa, kind):
        raise InputError(f"{path}: column {text_field!r} is {kind}, expected strings")
    return parquet


def parquet_passthrough_schema(path: str, text_field: str = "text") -> Any:
    """The Arrow schema of a Parquet file's columns other than the text (kept as they are on output)."""
    schema = open_parquet(path, text_field).schema_arrow
    return schema.remove(schema.get_field_index(text_field))


def _row_groups(metadata: Any, first: int, stop: int) -> list[tuple[int, int]]:
    """(index, first row) of the row groups that hold any of rows `first .. stop - 1`."""
    first_row, groups = 0, []
    for i in range(metadata.num_row_groups):
        size = metadata.row_group(i).num_rows
        if first_row + size > first and first_row < stop:
            groups.append((i, first_row))
        first_row += size
    return groups


def _batch_records(path: str, text_field: str, part: Any, names: list[str], first_row: int) -> Iterator[Record]:
    """The records of one sliced batch whose first row is `first_row`; a null text is an error record."""
    others = [n for n in names if n != text_field]
    texts = part.column(names.index(text_field)).to_pylist()
    columns = [part.column(names.index(n)).to_pylist() for n in others]
    for k, text in enumerate(texts):
        fields = {n: column[k] for n, column in zip(others, columns, strict=True)}
        index = first_row + k
        if text is None:
            yield Record(path, index, None, None, {}, f"{text_field!r} is null, expected a string", None)
        else:
            yield Record(path, index, None, text, fields)


def parquet_records(path: str, text_field: str, start: Position, limit: int | None) -> Iterator[Record]:
    """`limit` records (all when None) of a Parquet file from row `start.row`, read in row batches."""
    import pyarrow as pa

    parquet = open_parquet(path, text_field)
    metadata = parquet.metadata
    stop = metadata.num_rows if limit is None else min(metadata.num_rows, start.row + limit)
    groups = _row_groups(metadata, start.row, stop)
    if not groups:
        return
    names = parquet.schema_arrow.names
    row = groups[0][1]
    try:
        for batch in parquet.iter_batches(batch_size=_BATCH_ROWS, row_groups=[i for i, _ in groups], use_threads=False):
            begin, end = max(start.row - row, 0), min(batch.num_rows, stop - row)
            if end > begin:
                yield from _batch_records(path, text_field, batch.slice(begin, end - begin), names, row + begin)
            row += batch.num_rows
            if row >= stop:
                return
    except pa.ArrowException as exc:
        raise InputError(f"{path}: cannot read row {row} onwards ({exc})") from None
