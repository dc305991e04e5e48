"""The annotate benchmark's measurements: the offline reference, one engine run, the shard writer alone.

Design trade-offs:
- Every engine run is a fresh `ner-export annotate` process, timed from launch to exit, so start-up,
  the scan pass, model loading and (for Ray) cluster start-up are all in the number a user sees. Ray's
  start-up is also reported on its own (from the run's manifest), and a rate without it.
- The reference is the runtime's offline throughput in the same run: `NerModel.predict` over the whole
  in-memory corpus at batch 32 (what `ner-export bench` measures), the best an engine can approach.
- The shard writer is timed alone because the Ray engine commits every shard on the driver: its rate
  bounds what one driver can sustain however many actors run.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from .process_memory import PeakMemory

__all__ = ["offline_rate", "run_engine", "writer_rate"]


def offline_rate(bundle: str, texts: list[str], batch_size: int, precision: str | None) -> dict[str, Any]:
    """The runtime's own throughput: one `predict` over every text, at `batch_size`, best of two."""
    from ner_export.runtime import NerModel

    model = NerModel.load(bundle, precision=precision)
    model.predict(texts[:256], batch_size=batch_size)  # warm-up
    best = float("inf")
    for _ in range(2):
        started = time.perf_counter()
        model.predict(texts, batch_size=batch_size)
        best = min(best, time.perf_counter() - started)
    return {
        "rows_per_s": round(len(texts) / best, 1),
        "seconds": round(best, 3),
        "batch_size": batch_size,
        "precision": model.precision,
    }


def _annotate_command(
    bundle: str, corpus: Path, out: Path, engine: str, batch_size: int, shard_size: int, precision: str | None
) -> list[str]:
    command = [
        sys.executable,
        "-m",
        "ner_export",
        "annotate",
        bundle,
        "--input",
        str(corpus),
        "--output",
        str(out),
        "-q",
        "--engine",
        engine,
        "--batch-size",
        str(batch_size),
        "--shard-size",
        str(shard_size),
    ]
    if precision:
        command += ["--precision", precision]
    return command


def run_engine(
    bundle: str,
    corpus: Path,
    out: Path,
    engine: str,
    actors: int | None,
    *,
    batch_size: int,
    shard_size: int,
    precision: str | None,
    timeout: float,
) -> dict[str, Any]:
    """One fresh `ner-export annotate` process: wall time, rates, peak memory, its manifest's numbers."""
    from ner_export.runtime import available_cpus

    command = _annotate_command(bundle, corpus, out, engine, batch_size, shard_size, precision)
    threads = None
    if engine == "ray":
        threads = max(1, available_cpus() // (actors or 1))
        command += ["--actors", str(actors), "--threads", str(threads)]
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    memory = PeakMemory(process.pid)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        memory.stop()
        raise SystemExit(f"{engine} run timed out after {timeout:.0f} s: {' '.join(command)}") from None
    wall = time.perf_counter() - started
    peak = memory.stop()
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({process.returncode}):\n{stderr[-3000:]}")
    manifest = json.loads((out / "_manifest.json").read_text(encoding="utf-8"))
    rows = manifest["counts"]["rows_in"]
    init = manifest["run"].get("ray_init_seconds") or 0.0
    return {
        "engine": engine,
        "actors": actors,
        "threads": threads or available_cpus(),
        "rows": rows,
        "errors": manifest["counts"]["errors"],
        "wall_s": round(wall, 3),
        "rows_per_s": round(rows / wall, 1),
        "ray_init_s": manifest["run"].get("ray_init_seconds"),
        "rows_per_s_without_ray_start": round(rows / (wall - init), 1) if init else None,
        "peak_pss_mb": peak,
        "pss_sampler_cpu_s": round(memory.cpu_s, 2),
        "summary": stdout.strip().splitlines()[-1] if stdout.strip() else "",
    }


def writer_rate(rows: int = 20_000) -> dict[str, Any]:
    """Rows/s of the shard writer alone (what the Ray driver must sustain), on typical output rows."""
    from ner_export.annotate.shards import Shard, write_shard
    from ner_export.inputs import Position, Record

    entity = {"text": "Paris", "label": "LOC", "start": 10, "end": 15, "score": 0.99}
    items = [
        (
            Record("corpus.parquet", i, None, "Acme backs Danish plan to build a bridge near Paris .", {"id": i}),
            [entity, entity],
        )
        for i in range(rows)
    ]
    shard = Shard("part-00000-00000", "corpus.parquet", "parquet", 0, rows, Position(0))
    result = {}
    with tempfile.TemporaryDirectory() as folder:
        for fmt in ("parquet", "jsonl"):
            started = time.perf_counter()
            write_shard(Path(folder), shard, items, output_format=fmt, text_field="text")
            result[fmt] = round(rows / (time.perf_counter() - started), 1)
    return result
