"""Planning a run: which bundle graph, which inputs (scanned), and the settings that pin the output.

Design trade-offs:
- A first pass over the inputs (`scan_source`) costs a read of each file but buys a fixed shard plan,
  the total for the progress bar's ETA, and every file-level error (UTF-16, no text column, not a JSON
  array, a Parquet column named like an output key) before anything is written.
- What decides the output is pinned (`pinned_run`): the bundle's sha256, the graph, the options that
  change entities, the formats, the shard size, and each input's size, mtime and row count. Batch size,
  threads and the engine are left out: they change speed, not output, on a batch-invariant graph.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ner_export.inputs import (
    STDIN,
    SourceScan,
    expand_inputs,
    parquet_passthrough_schema,
    resolve_format,
    scan_source,
)
from ner_export.runtime.errors import InputError
from ner_export.runtime.manifest import MANIFEST_NAME, BundleManifest, sha256_file

from .config import AnnotateConfig
from .shards import RESERVED

__all__ = ["bundle_identity", "scan_inputs", "pinned_run"]


def bundle_identity(bundle: str, precision: str | None, backend: str = "onnxruntime") -> dict[str, Any]:
    """The bundle and the graph a run uses, by path and sha256, for the manifest and the pinned settings."""
    manifest = BundleManifest.read(Path(bundle))
    graph = manifest.graph_for("cpu", precision, backend)
    return {
        "path": str(bundle),
        "sha256": sha256_file(Path(bundle) / MANIFEST_NAME),  # bundle.json pins every file by its own sha256
        "graph": graph.file,
        "graph_sha256": manifest.files.get(graph.file),
        "precision": graph.precision,
        "backend": graph.backend,
        "batch_invariant": graph.batch_invariant,
    }


def scan_inputs(config: AnnotateConfig) -> tuple[list[SourceScan], dict[str, Any]]:
    """The scan of every input file, and the pass-through Arrow schema of each Parquet input, by path."""
    files = expand_inputs(config.inputs)
    if STDIN in files:
        raise InputError("annotate reads files (it needs to scan and resume them); stdin is not supported")
    scans, passthrough = [], {}
    for path in files:
        fmt = resolve_format(path, config.input_format)
        if fmt == "parquet":
            schema = parquet_passthrough_schema(path, config.text_field)
            reserved = [name for name in RESERVED if name in schema.names]
            if reserved:
                raise InputError(
                    f"{path}: column {reserved[0]!r} clashes with the output column of that name "
                    f"({', '.join(RESERVED)} are reserved); rename it"
                )
            passthrough[path] = schema
        scans.append(scan_source(path, fmt, config.text_field, config.shard_size))
    return scans, passthrough


def _pinned_settings(config: AnnotateConfig, bundle: dict[str, Any]) -> dict[str, Any]:
    return {
        "bundle_sha256": bundle["sha256"],
        "graph": bundle["graph"],
        "aggregation": config.aggregation,
        "decoding": config.decoding,
        "text_field": config.text_field,
        "input_format": config.input_format,
        "output_format": config.output_format,
        "shard_size": config.shard_size,
    }


def _pinned_inputs(scans: list[SourceScan]) -> list[dict[str, Any]]:
    return [
        {
            "path": s.path,
            "format": s.format,
            "rows": s.rows,
            "blank_lines": s.blank_lines,
            "size": s.size,
            "mtime_ns": s.mtime_ns,
        }
        for s in scans
    ]


def pinned_run(config: AnnotateConfig, bundle: dict[str, Any], scans: list[SourceScan]) -> dict[str, Any]:
    """What decides the output (`settings` and `inputs`): a resumed run must match it exactly."""
    return {"settings": _pinned_settings(config, bundle), "inputs": _pinned_inputs(scans)}
