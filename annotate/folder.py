"""The output folder's life: checked (new, interrupted or finished) at the start, completed at the end.

Design trade-offs:
- `_run.json`, written before the first shard, pins what decides the output. `--resume` refuses a
  folder whose pinned settings differ, naming each difference, so a resumed folder cannot mix two runs;
  a folder that is not ours (not empty, no `_run.json`) is never written into.
- Completing a folder writes `_errors.jsonl`, then `_manifest.json` last, from the shard receipts: the
  manifest's presence means the folder is complete, and the receipts and `_run.json` go only after it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from ner_export.runtime.errors import InputError, OutputExistsError

from .config import AnnotateConfig
from .shards import ERRORS_FILE, MANIFEST_FILE, RECEIPTS, RUN_FILE, Shard, read_receipt, write_atomic

__all__ = ["LAYOUT_VERSION", "prepare_folder", "write_errors_and_manifest"]

LAYOUT_VERSION = 1


def describe_differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """What differs between two pinned runs, one phrase per setting."""
    out = []
    before, after = old.get("settings") or {}, new.get("settings") or {}
    for key in sorted(set(before) | set(after)):
        if before.get(key) != after.get(key):
            out.append(f"{key}: {before.get(key)!r} then, {after.get(key)!r} now")
    if old.get("inputs") != new.get("inputs"):
        out.append("the input files (names, sizes, modification times or row counts)")
    return out


def _check_finished_folder(out: Path, pinned: dict[str, Any], resume: bool) -> None:
    if not resume:
        raise OutputExistsError(
            f"{out}: holds a finished annotation ({MANIFEST_FILE}); choose another --output or remove it"
        )
    data = json.loads((out / MANIFEST_FILE).read_text(encoding="utf-8"))
    previous = {"settings": data.get("settings"), "inputs": data.get("inputs")}
    if previous != pinned:
        raise InputError(f"{out}: finished with other settings; " + "; ".join(describe_differences(previous, pinned)))


def _check_interrupted_folder(out: Path, pinned: dict[str, Any], resume: bool) -> None:
    if not resume:
        raise OutputExistsError(
            f"{out}: holds an interrupted annotation; pass --resume to finish it, or choose another --output"
        )
    previous = json.loads((out / RUN_FILE).read_text(encoding="utf-8"))
    if previous != pinned:
        raise InputError(
            f"{out}: was started with other settings, so --resume would mix two runs; "
            + "; ".join(describe_differences(previous, pinned))
        )


def prepare_folder(out: Path, pinned: dict[str, Any], resume: bool) -> str:
    """Check the output folder; returns "new", "resume" or "complete". Cleans stale temporary files."""
    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"{out}: exists and is not a directory")
    entries = [p for p in out.iterdir()] if out.is_dir() else []
    if (out / MANIFEST_FILE).is_file():
        _check_finished_folder(out, pinned, resume)
        return "complete"
    if (out / RUN_FILE).is_file():
        _check_interrupted_folder(out, pinned, resume)
        for folder in (out, out / RECEIPTS):
            for stale in folder.glob(".*.tmp-*"):
                stale.unlink()
        return "resume"
    if entries:
        raise OutputExistsError(f"{out}: exists and is not empty; choose a new or empty --output")
    out.mkdir(parents=True, exist_ok=True)
    write_atomic(out / RUN_FILE, (json.dumps(pinned, indent=2) + "\n").encode("utf-8"))
    return "new"


def ner_export_version() -> str:
    """The installed ner-export version, or "unknown" in a source checkout that is not installed."""
    try:
        from importlib.metadata import version

        return version("ner-export")
    except Exception:  # not installed as a distribution (a source checkout on sys.path)
        return "unknown"


def _committed_receipts(out: Path, shards: list[Shard], output_format: str) -> list[dict[str, Any]]:
    receipts = []
    for shard in shards:
        receipt = read_receipt(out, shard, output_format)
        if receipt is None:
            raise RuntimeError(f"{shard.name} was not committed; run again with --resume")
        receipts.append(receipt)
    return receipts


def write_errors_and_manifest(
    out: Path,
    config: AnnotateConfig,
    bundle: dict[str, Any],
    pinned: dict[str, Any],
    shards: list[Shard],
    run: dict[str, Any],
) -> dict[str, Any]:
    """Complete the folder: `_errors.jsonl`, then `_manifest.json` (last), then drop receipts and `_run.json`.

    Returns the manifest written.
    """
    receipts = _committed_receipts(out, shards, config.output_format)
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
        "ner_export_version": ner_export_version(),
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
