"""`annotate(config)`: plan a run, pick up where an interrupted one stopped, run an engine, complete the folder.

Design trade-offs:
- The engines only turn shards into committed shard files; everything else (listing and scanning the
  inputs, cutting shards, checking a resumed folder against the run that started it, assembling
  `_errors.jsonl` and `_manifest.json`) happens here once, so both engines agree by construction.
- A shard counts as done when its data file and its receipt are both committed; a data file without a
  matching receipt is deleted and redone, so a resumed run never trusts half a shard.
- The engine modules import nothing from here: dependencies run one way, from this entry point down to
  the engines, the folder, the plan and the config.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from .config import AnnotateConfig
from .folder import prepare_folder, write_errors_and_manifest
from .local_engine import run_local
from .plan import bundle_identity, pinned_run, scan_inputs
from .ray_engine import run_ray
from .result import AnnotateResult
from .shards import MANIFEST_FILE, Shard, plan_shards, read_receipt, shard_path

__all__ = ["annotate"]


def _shards_to_do(out: Path, shards: list[Shard], output_format: str) -> list[Shard]:
    """The shards not yet committed; a data file whose receipt is missing or stale is deleted."""
    todo = [s for s in shards if read_receipt(out, s, output_format) is None]
    for shard in todo:
        shard_path(out, shard, output_format).unlink(missing_ok=True)
    return todo


def _run_engine(
    out: Path, config: AnnotateConfig, shards: list[Shard], todo: list[Shard], passthrough: dict[str, Any], state: str
) -> dict[str, Any]:
    """Run the configured engine over `todo`; returns the manifest's `run` entry (engine, sizes, its own)."""
    run: dict[str, Any] = {
        "engine": config.engine,
        "batch_size": config.batch_size,
        "buffer_size": config.buffer_size,
        "resumed": state == "resume",
    }
    if todo:
        if config.engine == "local":
            total = sum(s.rows for s in shards)
            done_rows = total - sum(s.rows for s in todo)
            run.update(run_local(out, config, todo, passthrough, total, done_rows))
        else:
            run.update(run_ray(out, config, todo, passthrough))
    return run


def annotate(config: AnnotateConfig) -> AnnotateResult:
    """Annotate every record of `config.inputs` into sharded files in `config.output`.

    Output: one file per shard (`part-FFFFF-SSSSS.parquet|jsonl`: the key columns source, row, line,
    the input's other fields, the text and its entities), `_errors.jsonl` (one line per bad record:
    source, row, line, reason, excerpt) and `_manifest.json` (written last). `rows in = rows out +
    error rows`.
    """
    started = time.perf_counter()
    out = Path(config.output)
    bundle = bundle_identity(config.bundle, config.precision, config.backend)
    scans, passthrough = scan_inputs(config)
    shards = plan_shards(scans, config.shard_size)
    pinned = pinned_run(config, bundle, scans)
    state = prepare_folder(out, pinned, config.resume)
    if state == "complete":
        counts = json.loads((out / MANIFEST_FILE).read_text(encoding="utf-8"))["counts"]
        return AnnotateResult.from_counts(
            out, counts, 0, counts["shards"], time.perf_counter() - started, config.engine
        )
    todo = _shards_to_do(out, shards, config.output_format)
    run = _run_engine(out, config, shards, todo, passthrough, state)
    seconds = time.perf_counter() - started
    run["seconds"] = round(seconds, 3)
    run["rows_per_second"] = round(sum(s.rows for s in todo) / seconds, 1) if todo and seconds > 0 else None
    manifest = write_errors_and_manifest(out, config, bundle, pinned, shards, run)
    return AnnotateResult.from_counts(
        out, manifest["counts"], len(todo), len(shards) - len(todo), seconds, config.engine, run
    )
