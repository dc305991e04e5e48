"""Per-row int8 embedding tables: one scale per token row instead of one for the whole table.

ONNX Runtime quantizes a `Gather`'s table with a single scale, set by the table's largest value. A
word-embedding table's rows differ widely in norm (frequent tokens are large, rare ones small), so
the small rows keep only a few of the 256 levels and lose most of their precision. Here each row
gets its own symmetric int8 scale (max |row| / 127): every row keeps 8 bits of resolution, for
4 bytes of scale per row (0.1 MB on a 30k-token vocabulary).

The graph stays ordinary ONNX, with no contrib op: the token ids gather the int8 rows and, with a
second `Gather`, their scales (stored as a [rows, 1] column so the product broadcasts over the
hidden size), then `Cast` and `Mul` rebuild fp32 rows. It runs on any onnxruntime execution provider,
loads in Optimum unchanged, and does not depend on the input, so it keeps a graph batch-invariant.

Which tables are rewritten is the caller's choice (`export.quantize`: the word table, and any other
table of at least `LARGE_TABLE_BYTES`; small position and token-type tables stay fp32).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "LARGE_TABLE_BYTES",
    "RowErrors",
    "gather_tables",
    "quantize_rows",
    "quantize_table_rows",
    "row_errors",
]

LARGE_TABLE_BYTES = 1 << 20


def quantize_rows(table: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(int8 rows, fp32 scale column [rows, 1]) of a 2-D table, symmetric per row."""
    table = np.asarray(table, dtype=np.float32)
    scale = np.abs(table).max(axis=1, keepdims=True) / 127.0
    scale[scale == 0] = 1.0  # an all-zero row stays zero
    return np.clip(np.round(table / scale), -127, 127).astype(np.int8), scale.astype(np.float32)


@dataclass(frozen=True)
class RowErrors:
    """Relative L2 reconstruction error of each row of a table: mean, worst, and over chosen rows."""

    mean: float
    worst: float
    median: float

    @classmethod
    def of(cls, table: np.ndarray, rebuilt: np.ndarray, rows: np.ndarray | None = None) -> RowErrors:
        norms = np.linalg.norm(table, axis=1)
        errors = np.linalg.norm(table - rebuilt, axis=1) / np.maximum(norms, 1e-12)
        if rows is not None:
            errors = errors[rows]
        return cls(float(errors.mean()), float(errors.max()), float(np.median(errors)))


def row_errors(table: np.ndarray, rebuilt: np.ndarray, rows: np.ndarray | None = None) -> RowErrors:
    """`RowErrors` of `rebuilt` against `table`, over all rows or only `rows`."""
    return RowErrors.of(np.asarray(table, dtype=np.float32), np.asarray(rebuilt, dtype=np.float32), rows)


def gather_tables(model: Any, names: Collection[str] | None = None) -> dict[str, list[Any]]:
    """{table initializer name: Gather nodes reading it along axis 0} for the 2-D fp32 tables `names`
    (default: every such table)."""
    import onnx

    tables = {
        t.name
        for t in model.graph.initializer
        if len(t.dims) == 2 and t.data_type == onnx.TensorProto.FLOAT and (names is None or t.name in names)
    }
    found: dict[str, list[Any]] = {}
    for node in model.graph.node:
        if node.op_type == "Gather" and node.input[0] in tables and _gather_axis(node) == 0:
            found.setdefault(node.input[0], []).append(node)
    return found


def _gather_axis(node: Any) -> int:
    return next((int(a.i) for a in node.attribute if a.name == "axis"), 0)


def quantize_table_rows(graph_path: Path, dest: Path, names: Collection[str]) -> list[str]:
    """Write `graph_path` to `dest` with the Gather tables `names` stored as per-row int8.

    Returns the rewritten tables' names: those of `names` that are 2-D fp32 initializers read by a
    Gather (a table already quantized per tensor, for example, is left as it is).
    """
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(graph_path))
    graph = model.graph
    tables = gather_tables(model, names)
    initializers = {t.name: t for t in graph.initializer}
    for name, gathers in tables.items():
        rows, scale = quantize_rows(numpy_helper.to_array(initializers[name]))
        graph.initializer.remove(initializers[name])
        graph.initializer.extend(
            [numpy_helper.from_array(rows, f"{name}_int8_rows"), numpy_helper.from_array(scale, f"{name}_row_scale")]
        )
        for gather in gathers:
            out, ids = gather.output[0], gather.input[1]
            base = gather.name or out
            position = list(graph.node).index(gather)
            graph.node.remove(gather)
            for offset, node in enumerate(
                (
                    helper.make_node("Gather", [f"{name}_int8_rows", ids], [f"{out}_int8"], name=f"{base}_int8_rows"),
                    helper.make_node("Gather", [f"{name}_row_scale", ids], [f"{out}_scale"], name=f"{base}_row_scales"),
                    helper.make_node(
                        "Cast", [f"{out}_int8"], [f"{out}_float"], to=onnx.TensorProto.FLOAT, name=f"{base}_cast"
                    ),
                    helper.make_node("Mul", [f"{out}_float", f"{out}_scale"], [out], name=f"{base}_dequantize_rows"),
                )
            ):
                graph.node.insert(position + offset, node)
    onnx.save(model, str(dest))
    return sorted(tables)
