"""Shards of an annotation run: how the input is cut, and how each piece is written and committed.

Design trade-offs:
- A shard is a fixed range of rows of one input file (`shard_size` records, the last one shorter), so
  the cut depends only on the input and the shard size: both engines, and a resumed run, produce the
  same shards with the same names (`part-FFFFF-SSSSS`, file and shard index).
- A shard is written whole from memory (bounded by `shard_size`), under a hidden temporary name, then
  renamed: the rename is the commit, and readers never see half a shard. Its receipt (counts and error
  records) is committed just before it; a shard counts as done when both exist.
- Parquet columns of a Parquet input keep the input's Arrow types. JSON values get the types pyarrow
  infers for the shard; a field whose values do not fit one type in a shard (an id that is sometimes a
  number, sometimes a string) is stored as JSON text for that shard, and the receipt says so, rather
  than failing the run or changing values.
- `_errors.jsonl` and `_manifest.json` are assembled from the receipts when every shard is done, the
  manifest last: its presence means the folder is complete.
"""

from __future__ import annotations

import base64
import datetime
import decimal
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ner_export.inputs import Position, Record, SourceScan
from ner_export.runtime.errors import MissingDependencyError

__all__ = [
    "RESERVED",
    "OUTPUT_FORMATS",
    "Shard",
    "plan_shards",
    "shard_path",
    "write_shard",
    "write_atomic",
    "entity_arrow_type",
    "json_default",
    "read_receipt",
]

RESERVED = ("source", "row", "line", "entities")  # columns every output row has besides the input's
OUTPUT_FORMATS = ("parquet", "jsonl")
RECEIPTS = "_shards"
ERRORS_FILE = "_errors.jsonl"
MANIFEST_FILE = "_manifest.json"
RUN_FILE = "_run.json"


@dataclass(frozen=True)
class Shard:
    """Rows `first_row .. first_row + rows - 1` of one input file, written as one output file."""

    name: str
    source: str
    format: str
    first_row: int
    rows: int
    start: Position

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "source": self.source, "first_row": self.first_row, "rows": self.rows}


def plan_shards(scans: Sequence[SourceScan], shard_size: int) -> list[Shard]:
    """Cut every file into shards of `shard_size` records, in file order; empty files give none."""
    shards = []
    for f, scan in enumerate(scans):
        for k, start in enumerate(scan.starts):
            rows = min(shard_size, scan.rows - start.row)
            shards.append(Shard(f"part-{f:05d}-{k:05d}", scan.path, scan.format, start.row, rows, start))
    return shards


def shard_path(out: Path, shard: Shard, output_format: str) -> Path:
    return Path(out) / f"{shard.name}.{output_format}"


def receipt_path(out: Path, shard: Shard) -> Path:
    return Path(out) / RECEIPTS / f"{shard.name}.json"


def write_atomic(path: Path, data: bytes, *, sync: bool = True) -> None:
    """Write `data` under a hidden temporary name beside `path`, then rename it into place."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with open(tmp, "wb") as handle:
        handle.write(data)
        if sync:
            handle.flush()
            os.fsync(handle.fileno())
    os.replace(tmp, path)


def _import_pyarrow() -> Any:
    try:
        import pyarrow as pa
        import pyarrow.parquet  # noqa: F401  (pa.parquet is used below)
    except ImportError:
        raise MissingDependencyError("pyarrow", "annotate", "Writing Parquet") from None
    return pa


def entity_arrow_type() -> Any:
    pa = _import_pyarrow()
    return pa.list_(
        pa.struct(
            [
                ("text", pa.string()),
                ("label", pa.string()),
                ("start", pa.int64()),
                ("end", pa.int64()),
                ("score", pa.float64()),
            ]
        )
    )


def json_default(value: Any) -> Any:
    """JSON for the Arrow values a Parquet input may pass through (dates, decimals, bytes)."""
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _jsonl_bytes(rows: Sequence[tuple[Record, list[dict[str, Any]]]], text_field: str) -> bytes:
    lines = []
    for record, entities in rows:
        data = {
            "source": record.source,
            "row": record.row,
            "line": record.line,
            **record.fields,
            text_field: record.text,
            "entities": entities,
        }
        lines.append(json.dumps(data, ensure_ascii=False, default=json_default))
    return ("\n".join(lines) + "\n").encode("utf-8") if lines else b""


def _parquet_writable(kind: Any) -> bool:
    """False for types Parquet cannot store: a struct without fields (what `{}` infers to), at any depth."""
    pa = _import_pyarrow()
    if pa.types.is_struct(kind):
        return kind.num_fields > 0 and all(_parquet_writable(kind.field(i).type) for i in range(kind.num_fields))
    if pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind):
        return _parquet_writable(kind.value_type)
    if pa.types.is_map(kind):
        return _parquet_writable(kind.key_type) and _parquet_writable(kind.item_type)
    return True


def _parquet_bytes(
    rows: Sequence[tuple[Record, list[dict[str, Any]]]], text_field: str, passthrough: Any | None
) -> tuple[bytes, list[str]]:
    """The shard as Parquet bytes, and the fields stored as JSON text because their types were mixed."""
    pa = _import_pyarrow()
    records = [r for r, _ in rows]
    columns: dict[str, Any] = {
        "source": pa.array([r.source for r in records], pa.string()),
        "row": pa.array([r.row for r in records], pa.int64()),
        "line": pa.array([r.line for r in records], pa.int64()),
    }
    json_columns: list[str] = []
    if passthrough is not None:  # a Parquet input: keep its types
        for column in passthrough:
            columns[column.name] = pa.array([r.fields.get(column.name) for r in records], column.type)
    else:
        names = list(dict.fromkeys(name for r in records for name in r.fields))
        for name in names:
            values = [r.fields.get(name) for r in records]
            try:
                columns[name] = pa.array(values)
                if not _parquet_writable(columns[name].type):
                    raise pa.ArrowNotImplementedError("an empty object has no Parquet type")
            except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError, OverflowError):
                columns[name] = pa.array(
                    [None if v is None else json.dumps(v, ensure_ascii=False) for v in values], pa.string()
                )
                json_columns.append(name)
    columns[text_field] = pa.array([r.text for r in records], pa.string())
    columns["entities"] = pa.array([e for _, e in rows], entity_arrow_type())
    table = pa.table(columns)
    sink = pa.BufferOutputStream()
    pa.parquet.write_table(table, sink, compression="zstd", row_group_size=max(1, min(len(records), 65536)))
    return sink.getvalue().to_pybytes(), json_columns


def write_shard(
    out: Path,
    shard: Shard,
    items: Sequence[tuple[Record, list[dict[str, Any]] | None]],
    *,
    output_format: str,
    text_field: str,
    passthrough: Any | None = None,
) -> dict[str, Any]:
    """Commit one shard: its receipt, then its data file (the rename that makes it visible).

    items: every record of the shard in row order, with its entities (None for an error record).
    passthrough: the Arrow schema of a Parquet input's other columns (None for text and JSON inputs).
    Returns the receipt: counts, error records and the fields stored as JSON text.
    """
    if len(items) != shard.rows:
        raise RuntimeError(f"{shard.name}: {len(items)} records for a shard of {shard.rows}")
    rows = [(record, entities) for record, entities in items if record.ok and entities is not None]
    errors = [record.error_dict() for record, _ in items if not record.ok]
    if output_format == "parquet":
        data, json_columns = _parquet_bytes(rows, text_field, passthrough)
    else:
        data, json_columns = _jsonl_bytes(rows, text_field), []
    receipt = {
        "file": shard_path(out, shard, output_format).name,
        "source": shard.source,
        "first_row": shard.first_row,
        "rows_in": shard.rows,
        "rows_out": len(rows),
        "errors": len(errors),
        "json_columns": json_columns,
        "error_records": errors,
    }
    receipt_file = receipt_path(out, shard)
    receipt_file.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(receipt_file, (json.dumps(receipt, ensure_ascii=False) + "\n").encode("utf-8"), sync=False)
    write_atomic(shard_path(out, shard, output_format), data)
    return receipt


def read_receipt(out: Path, shard: Shard, output_format: str) -> dict[str, Any] | None:
    """The receipt of a committed shard, or None when the shard is not done."""
    receipt = receipt_path(out, shard)
    if not (receipt.is_file() and shard_path(out, shard, output_format).is_file()):
        return None
    try:
        data = json.loads(receipt.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if data.get("rows_in") == shard.rows and data.get("first_row") == shard.first_row else None
