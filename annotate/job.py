"""`annotate(config)`: plan a run, pick up where an interrupted one stopped, run an engine, seal the folder.

Design trade-offs:
- The engines only turn shards into committed shard files; everything else (listing and scanning the
  inputs, cutting shards, checking a resumed folder against the run that started it, assembling
  `_errors.jsonl` and `_manifest.json`) happens here once, so both engines agree by construction.
- A first pass over the inputs (`scan_source`) costs a read of each file but buys a fixed shard plan,
  the total for the progress bar's ETA, and every file-level error (UTF-16, no text column, not a JSON
  array) before anything is written.
- `_run.json`, written before the first shard, pins what decides the output (bundle sha256, model
  options, text field, formats, shard size, each input's size, mtime and row count). `--resume` refuses
  a folder whose pinned settings differ, so a resumed folder cannot mix two runs. Batch size, threads
  and the engine may change on resume: they change speed, not output, on a batch-invariant graph.
- Records with a field named like an output key column (source, row, line, entities) become error
  records in both engines (`shard_records`), since writing them would overwrite the key.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ner_export.inputs import (
    FORMATS,
    STDIN,
    Record,
    SourceScan,
    expand_inputs,
    parquet_passthrough_schema,
    read_records,
    resolve_format,
    scan_source,
)
from ner_export.runtime.errors import InputError, MissingDependencyError, OutputExistsError
from ner_export.runtime.manifest import BACKENDS, MANIFEST_NAME, BundleManifest

from .shards import (
    ERRORS_FILE,
    MANIFEST_FILE,
    OUTPUT_FORMATS,
    RECEIPTS,
    RESERVED,
    RUN_FILE,
    Shard,
    plan_shards,
    read_receipt,
    shard_path,
    write_atomic,
    write_shard,
)

__all__ = ["AnnotateConfig", "AnnotateResult", "annotate", "ENGINES", "predict_entities", "shard_records"]

ENGINES = ("local", "ray")
LAYOUT_VERSION = 1


@dataclass(frozen=True)
class AnnotateConfig:
    """One `ner-export annotate` run.

    bundle: the bundle directory. inputs: files, directories or glob patterns. output: the folder.
    input_format: "auto" (from each file's extension), "text", "jsonl", "json" or "parquet".
    output_format: "parquet" or "jsonl". engine: "local" (in-process) or "ray".
    address: the Ray cluster to join ("auto", "ray://host:port"); None starts a local Ray on 127.0.0.1.
    resume: finish an interrupted run in `output` (complete shards are kept, the rest redone).
    batch_size: texts per onnxruntime run; buffer_size: texts per `predict` call (the window sorted
        by length), and the Ray map batch; shard_size: input records per output file.
    threads: onnxruntime threads (local: default all CPUs; ray: per actor, default 1).
    actors: Ray actors, one model each (default: the cluster's CPUs / threads).
    precision, backend, aggregation, decoding: as for `NerModel.load`.
    """

    bundle: str
    inputs: tuple[str, ...]
    output: str
    text_field: str = "text"
    input_format: str = "auto"
    output_format: str = "parquet"
    engine: str = "local"
    address: str | None = None
    resume: bool = False
    batch_size: int = 32
    buffer_size: int = 4096
    shard_size: int = 10_000
    threads: int | None = None
    actors: int | None = None
    precision: str | None = None
    backend: str = "onnxruntime"
    aggregation: str = "first"
    decoding: str = "constrained"
    progress: bool = True

    def check(self) -> None:
        """Raise ValueError naming the first option that cannot work."""
        if isinstance(self.inputs, str):
            raise TypeError("inputs must be a sequence of paths or patterns, not one string")
        if not self.inputs:
            raise ValueError("give at least one --input")
        if self.input_format not in FORMATS:
            raise ValueError(f"input format {self.input_format!r} is not one of {', '.join(FORMATS)}")
        if self.output_format not in OUTPUT_FORMATS:
            raise ValueError(f"output format {self.output_format!r} is not one of {', '.join(OUTPUT_FORMATS)}")
        if self.backend not in BACKENDS:
            raise ValueError(f"backend {self.backend!r} is not one of {', '.join(BACKENDS)}")
        if self.engine not in ENGINES:
            raise ValueError(f"engine {self.engine!r} is not one of {', '.join(ENGINES)}")
        if self.engine != "ray" and (self.address is not None or self.actors is not None):
            raise ValueError("--address and --actors apply to --engine ray only")
        if self.text_field in RESERVED or not self.text_field:
            raise ValueError(
                f"--text-field {self.text_field!r} cannot be used: {', '.join(RESERVED)} are output key columns"
            )
        for name in ("batch_size", "buffer_size", "shard_size", "threads", "actors"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f"{name}={value!r} must be a positive integer")


@dataclass(frozen=True)
class AnnotateResult:
    """What a run did: counts over the whole folder, and what this invocation added."""

    output: str
    files: int
    rows_in: int
    rows_out: int
    errors: int
    blank_lines: int
    shards: int
    shards_written: int
    shards_skipped: int
    seconds: float
    engine: str
    run: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_counts(
        cls,
        output: Path,
        counts: dict[str, Any],
        written: int,
        skipped: int,
        seconds: float,
        engine: str,
        run: dict[str, Any] | None = None,
    ) -> AnnotateResult:
        """The result of a run whose folder's `_manifest.json` holds `counts`."""
        c = counts
        return cls(
            str(output), c["files"], c["rows_in"], c["rows_out"], c["errors"], c["blank_lines"], c["shards"],
            written, skipped, seconds, engine, run or {},
        )  # fmt: skip

    def summary(self) -> str:
        done = (
            "already complete"
            if self.shards_written == 0 and self.shards_skipped == self.shards
            else (
                f"{self.shards_written} shards written"
                + (f", {self.shards_skipped} kept from the interrupted run" if self.shards_skipped else "")
            )
        )
        return (
            f"annotated {self.rows_in} rows from {self.files} files into {self.output}: {self.rows_out} rows out, "
            f"{self.errors} errors (see {ERRORS_FILE}), {self.blank_lines} blank lines skipped; {done} "
            f"({self.engine} engine, {self.seconds:.1f} s)"
        )


# --------------------------------------------------------------------------- shared by both engines
def shard_records(shard: Shard, text_field: str) -> Iterator[Record]:
    """The records of a shard, with a field that would overwrite an output key column made an error."""
    count = 0
    for record in read_records(shard.source, shard.format, text_field, start=shard.start, limit=shard.rows):
        clash = [name for name in RESERVED if name in record.fields] if record.ok else []
        if clash:
            record = Record(
                record.source,
                record.row,
                record.line,
                None,
                {},
                f"field {clash[0]!r} clashes with the output column of that name "
                f"({', '.join(RESERVED)} are reserved); rename it",
                None,
            )
        count += 1
        yield record
    if count != shard.rows:
        raise InputError(
            f"{shard.source}: changed while being read "
            f"({count} records where the scan counted {shard.rows} from row {shard.first_row})"
        )


def predict_entities(model: Any, texts: list[str], batch_size: int) -> list[list[dict[str, Any]]]:
    """Entities of each text as plain dicts (text, label, start, end, score), in input order."""
    if not texts:
        return []
    return [[e.to_dict() for e in entities] for entities in model.predict(texts, batch_size=batch_size)]


def model_options(config: AnnotateConfig) -> dict[str, Any]:
    return {
        "precision": config.precision,
        "backend": config.backend,
        "aggregation": config.aggregation,
        "decoding": config.decoding,
    }


# --------------------------------------------------------------------------- planning and the folder
def _bundle_identity(bundle: str, precision: str | None, backend: str = "onnxruntime") -> dict[str, Any]:
    manifest = BundleManifest.read(Path(bundle))
    graph = manifest.graph_for("cpu", precision, backend)
    digest = hashlib.sha256((Path(bundle) / MANIFEST_NAME).read_bytes()).hexdigest()
    return {
        "path": str(bundle),
        "sha256": digest,  # of bundle.json, which pins every file of the bundle by its own sha256
        "graph": graph.file,
        "graph_sha256": manifest.files.get(graph.file),
        "precision": graph.precision,
        "backend": graph.backend,
        "batch_invariant": graph.batch_invariant,
    }


def _scan_inputs(config: AnnotateConfig) -> tuple[list[SourceScan], dict[str, Any]]:
    files = expand_inputs(config.inputs)
    if STDIN in files:
        raise InputError("annotate reads files (it needs to scan and resume them); stdin is not supported")
    scans, passthrough = [], {}
    for path in files:
        fmt = resolve_format(path, config.input_format)
        if fmt == "parquet":
            schema = parquet_passthrough_schema(path, config.text_field)
            clash = [name for name in RESERVED if name in schema.names]
            if clash:
                raise InputError(
                    f"{path}: column {clash[0]!r} clashes with the output column of that name "
                    f"({', '.join(RESERVED)} are reserved); rename it"
                )
            passthrough[path] = schema
        scans.append(scan_source(path, fmt, config.text_field, config.shard_size))
    return scans, passthrough


def _settings(config: AnnotateConfig, bundle: dict[str, Any]) -> dict[str, Any]:
    """What decides the output; a resumed run must match it exactly."""
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


def _inputs(scans: list[SourceScan]) -> list[dict[str, Any]]:
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


def _differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """What differs between two pinned runs, one phrase per setting."""
    out = []
    before, after = old.get("settings") or {}, new.get("settings") or {}
    for key in sorted(set(before) | set(after)):
        if before.get(key) != after.get(key):
            out.append(f"{key}: {before.get(key)!r} then, {after.get(key)!r} now")
    if old.get("inputs") != new.get("inputs"):
        out.append("the input files (names, sizes, modification times or row counts)")
    return out


def _prepare_folder(out: Path, pinned: dict[str, Any], resume: bool) -> str:
    """Check the output folder; returns "new", "resume" or "complete". Cleans stale temporary files."""
    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"{out}: exists and is not a directory")
    entries = [p for p in out.iterdir()] if out.is_dir() else []
    manifest, run = out / MANIFEST_FILE, out / RUN_FILE
    if manifest.is_file():
        if not resume:
            raise OutputExistsError(
                f"{out}: holds a finished annotation ({MANIFEST_FILE}); choose another --output or remove it"
            )
        data = json.loads(manifest.read_text(encoding="utf-8"))
        previous = {"settings": data.get("settings"), "inputs": data.get("inputs")}
        if previous != pinned:
            raise InputError(f"{out}: finished with other settings; " + "; ".join(_differences(previous, pinned)))
        return "complete"
    if run.is_file():
        if not resume:
            raise OutputExistsError(
                f"{out}: holds an interrupted annotation; pass --resume to finish it, or choose another --output"
            )
        previous = json.loads(run.read_text(encoding="utf-8"))
        if previous != pinned:
            raise InputError(
                f"{out}: was started with other settings, so --resume would mix two runs; "
                + "; ".join(_differences(previous, pinned))
            )
        for folder in (out, out / RECEIPTS):
            for stale in folder.glob(".*.tmp-*"):
                stale.unlink()
        return "resume"
    if entries:
        raise OutputExistsError(f"{out}: exists and is not empty; choose a new or empty --output")
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(run, (json.dumps(pinned, indent=2) + "\n").encode("utf-8"))
    return "new"


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("ner-export")
    except Exception:  # not installed as a distribution (a source checkout on sys.path)
        return "unknown"


def _seal(
    out: Path,
    config: AnnotateConfig,
    bundle: dict[str, Any],
    pinned: dict[str, Any],
    shards: list[Shard],
    run: dict[str, Any],
) -> dict[str, Any]:
    """Write `_errors.jsonl`, then `_manifest.json` (last), then drop the per-shard receipts."""
    receipts = []
    for shard in shards:
        receipt = read_receipt(out, shard, config.output_format)
        if receipt is None:
            raise RuntimeError(f"{shard.name} was not committed; run again with --resume")
        receipts.append(receipt)
    errors = "".join(json.dumps(e, ensure_ascii=False) + "\n" for r in receipts for e in r["error_records"])
    write_atomic(out / ERRORS_FILE, errors.encode("utf-8"))
    inputs = pinned["inputs"]
    counts = {
        "files": len(inputs),
        "shards": len(shards),
        "rows_in": sum(r["rows_in"] for r in receipts),
        "rows_out": sum(r["rows_out"] for r in receipts),
        "errors": sum(r["errors"] for r in receipts),
        "blank_lines": sum(i["blank_lines"] for i in inputs),
    }
    manifest = {
        "layout_version": LAYOUT_VERSION,
        "tool": "ner-export annotate",
        "ner_export_version": _version(),
        "bundle": {k: v for k, v in bundle.items() if k != "path"},
        "settings": pinned["settings"],
        "inputs": inputs,
        "columns": {
            "key": ["source", "row", "line"],
            "text": config.text_field,
            "entities": "list of {text: string, label: string, start: int64, end: int64, score: float64}",
        },
        "counts": counts,
        "shards": [{k: v for k, v in r.items() if k != "error_records"} for r in receipts],
        "run": run,
    }
    write_atomic(out / MANIFEST_FILE, (json.dumps(manifest, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))
    shutil.rmtree(out / RECEIPTS, ignore_errors=True)
    (out / RUN_FILE).unlink(missing_ok=True)
    return manifest


# --------------------------------------------------------------------------- the local engine
def _progress_bar(total: int, initial: int, enabled: bool) -> Any:
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        raise MissingDependencyError("tqdm", "annotate", "The progress bar (-q turns it off)") from None
    return tqdm(
        total=total, initial=initial, unit="rows", unit_scale=True, smoothing=0.05, file=sys.stderr, dynamic_ncols=True
    )


def _run_local(
    out: Path, config: AnnotateConfig, todo: list[Shard], passthrough: dict[str, Any], total: int, done: int
) -> dict[str, Any]:
    """Annotate shards one after another in this process: read a buffer, predict it, write the shard."""
    from ner_export.runtime import NerModel, available_cpus

    threads = config.threads or available_cpus()
    model = NerModel.load(config.bundle, threads=threads, **model_options(config))
    bar = _progress_bar(total, done, config.progress)
    try:
        for shard in todo:
            items: list[tuple[Record, list[dict[str, Any]] | None]] = []
            buffer: list[Record] = []
            records = shard_records(shard, config.text_field)
            while True:
                buffer.clear()
                for record in records:
                    buffer.append(record)
                    if len(buffer) == config.buffer_size:
                        break
                if not buffer:
                    break
                good = [r for r in buffer if r.ok]
                found = iter(predict_entities(model, [r.text for r in good], config.batch_size))  # type: ignore[misc]
                items.extend((r, next(found) if r.ok else None) for r in buffer)
                if bar is not None:
                    bar.update(len(buffer))
            write_shard(
                out,
                shard,
                items,
                output_format=config.output_format,
                text_field=config.text_field,
                passthrough=passthrough.get(shard.source),
            )
    finally:
        if bar is not None:
            bar.close()
    return {"threads": threads}


# --------------------------------------------------------------------------- entry point
def annotate(config: AnnotateConfig) -> AnnotateResult:
    """Annotate every record of `config.inputs` into sharded files in `config.output`.

    Output: one file per shard (`part-FFFFF-SSSSS.parquet|jsonl`: the key columns source, row, line,
    the input's other fields, the text and its entities), `_errors.jsonl` (one line per bad record:
    source, row, line, reason, excerpt) and `_manifest.json` (written last). `rows in = rows out +
    error rows`.
    """
    config.check()
    started = time.perf_counter()
    out = Path(config.output)
    bundle = _bundle_identity(config.bundle, config.precision, config.backend)
    scans, passthrough = _scan_inputs(config)
    shards = plan_shards(scans, config.shard_size)
    pinned = {"settings": _settings(config, bundle), "inputs": _inputs(scans)}
    state = _prepare_folder(out, pinned, config.resume)
    if state == "complete":
        counts = json.loads((out / MANIFEST_FILE).read_text(encoding="utf-8"))["counts"]
        return AnnotateResult.from_counts(
            out, counts, 0, counts["shards"], time.perf_counter() - started, config.engine
        )
    todo = [s for s in shards if read_receipt(out, s, config.output_format) is None]
    done_rows = sum(s.rows for s in shards) - sum(s.rows for s in todo)
    total = sum(s.rows for s in shards)
    for shard in todo:  # a data file whose receipt is missing or stale is not a committed shard
        shard_path(out, shard, config.output_format).unlink(missing_ok=True)
    run: dict[str, Any] = {
        "engine": config.engine,
        "batch_size": config.batch_size,
        "buffer_size": config.buffer_size,
        "resumed": state == "resume",
    }
    if todo:
        if config.engine == "local":
            run.update(_run_local(out, config, todo, passthrough, total, done_rows))
        else:
            from .ray_engine import run_ray

            run.update(run_ray(out, config, todo, passthrough))
    seconds = time.perf_counter() - started
    run["seconds"] = round(seconds, 3)
    run["rows_per_second"] = round(sum(s.rows for s in todo) / seconds, 1) if todo and seconds > 0 else None
    manifest = _seal(out, config, bundle, pinned, shards, run)
    return AnnotateResult.from_counts(
        out, manifest["counts"], len(todo), len(shards) - len(todo), seconds, config.engine, run
    )
