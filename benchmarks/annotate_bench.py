"""Throughput of `ner-export annotate` on a corpus of repeated CoNLL sentences, and a cost projection.

    python -m ner_export.benchmarks.annotate_bench --bundle BUNDLE --data ../shared/data/conll2003/test.txt

This module runs the benchmark and holds its command line; the parts live beside it, one job each:
`annotate_corpus` (the corpus: a CoNLL file's sentences repeated up to `--rows`, as Parquet and JSONL
in a temporary folder), `annotate_runs` (the offline reference, each engine run as a fresh
`ner-export annotate` process, the shard writer alone), `process_memory` (peak PSS of a process tree),
`annotate_cost` (the cost projection) and `annotate_report` (the Markdown page).

Design trade-offs:
- Every engine run is timed from launch to exit, so start-up, the scan pass, model loading and (for
  Ray) cluster start-up are all in the number a user sees; Ray's start-up is also reported on its own.
- The reference is the runtime's offline throughput in this same run, so the ratios compare engines
  with the runtime on the same machine at the same moment.
- The cost model is arithmetic on the measured rates, labelled a projection, with its assumptions.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .annotate_corpus import build_corpus
from .annotate_cost import cost_model
from .annotate_report import TARGETS, render_markdown
from .annotate_runs import offline_rate, run_engine, writer_rate

__all__ = ["AnnotateBenchConfig", "run_annotate_bench", "render_markdown", "main"]


@dataclass(frozen=True)
class AnnotateBenchConfig:
    """One benchmark: the bundle, the CoNLL file, the corpus size, and which engines, actors and formats to run."""

    bundle: str
    data: str
    out: str = "benchmarks/results"
    name: str = "annotate-cpu"
    rows: int = 100_000
    engines: tuple[str, ...] = ("local", "ray")
    actors: tuple[int, ...] = (1, 2)
    formats: tuple[str, ...] = ("parquet", "jsonl")
    batch_size: int = 32
    shard_size: int = 10_000
    precision: str | None = None
    timeout: float = 3600.0
    progress: bool = True
    workdir: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _say(config: AnnotateBenchConfig, message: str) -> None:
    if config.progress:
        print(message, file=sys.stderr, flush=True)


def _engine_runs(config: AnnotateBenchConfig, folder: Path, offline: dict[str, Any]) -> list[dict[str, Any]]:
    """Every engine x actors x format run on the corpus in `folder`, each with its ratio to `offline`."""
    runs = []
    for engine in config.engines:
        for actors in config.actors if engine == "ray" else (None,):
            for fmt in config.formats:
                label = f"{engine}-{actors}-{fmt}" if actors else f"{engine}-{fmt}"
                _say(config, f"run: {label}")
                result = run_engine(
                    config.bundle,
                    folder / f"corpus.{fmt}",
                    folder / f"out-{label}",
                    engine,
                    actors,
                    batch_size=config.batch_size,
                    shard_size=config.shard_size,
                    precision=config.precision,
                    timeout=config.timeout,
                )
                result["format"] = fmt
                result["ratio_to_offline"] = round(result["rows_per_s"] / offline["rows_per_s"], 3)
                runs.append(result)
    return runs


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def run_annotate_bench(config: AnnotateBenchConfig) -> dict[str, Any]:
    """Build the corpus, measure the offline rate and every engine run, write `<name>.json` and `.md`."""
    from ner_export.runtime import available_cpus

    if not Path(config.data).is_file():
        raise SystemExit(
            f"{config.data}: no such CoNLL file (CoNLL-2003 lives in ../shared/data/conll2003/ beside the checkout)"
        )
    with tempfile.TemporaryDirectory(prefix="annotate-bench-", dir=config.workdir) as tmp:
        folder = Path(tmp)
        _say(config, f"building a corpus of {config.rows} rows in {folder}")
        corpus = build_corpus(Path(config.data), config.rows, folder)
        import pyarrow.parquet as pq

        texts = pq.read_table(folder / "corpus.parquet", columns=["text"]).column("text").to_pylist()
        _say(config, "offline reference: NerModel.predict at batch 32")
        offline = offline_rate(config.bundle, texts, config.batch_size, config.precision)
        del texts
        runs = _engine_runs(config, folder, offline)
        writer = writer_rate()
    cpus = available_cpus()
    data = {
        "command": " ".join(["python -m ner_export.benchmarks.annotate_bench", *sys.argv[1:]])
        if config.extra.get("cli")
        else "run_annotate_bench(...)",
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpu": _cpu_name(),
            "cpus_available": cpus,
        },
        "bundle": config.bundle,
        "corpus": corpus,
        "offline": offline,
        "runs": runs,
        "targets": TARGETS,
        "cost_model": cost_model(runs, offline, corpus, cpus, writer),
    }
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{config.name}.json").write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    (out / f"{config.name}.md").write_text(render_markdown(data), encoding="utf-8")
    return data


def _parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m ner_export.benchmarks.annotate_bench", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--bundle", required=True, help="bundle directory")
    parser.add_argument(
        "--data", required=True, help="CoNLL file whose sentences make the corpus (CoNLL-2003 test.txt)"
    )
    parser.add_argument("--out", default="benchmarks/results", help="folder for <name>.json and <name>.md")
    parser.add_argument("--name", default="annotate-cpu")
    parser.add_argument("--rows", type=int, default=100_000, help="corpus size (the sentences repeated)")
    parser.add_argument("--engines", default="local,ray")
    parser.add_argument("--actors", default="1,2", help="Ray actor counts to run (threads per actor = CPUs / actors)")
    parser.add_argument("--formats", default="parquet,jsonl")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--shard-size", type=int, default=10_000)
    parser.add_argument("--precision", choices=["int8", "fp32"])
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds allowed per engine run")
    parser.add_argument("--workdir", help="where the temporary corpus goes [default: the system temp folder]")
    parser.add_argument("-q", "--quiet", action="store_true")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """The command line: run the benchmark, print its Markdown (unless -q) and where the files went."""
    args = _parse_arguments(argv)
    config = AnnotateBenchConfig(
        bundle=args.bundle,
        data=args.data,
        out=args.out,
        name=args.name,
        rows=args.rows,
        engines=tuple(e for e in args.engines.split(",") if e),
        actors=tuple(int(a) for a in args.actors.split(",") if a),
        formats=tuple(f for f in args.formats.split(",") if f),
        batch_size=args.batch_size,
        shard_size=args.shard_size,
        precision=args.precision,
        timeout=args.timeout,
        progress=not args.quiet,
        workdir=args.workdir,
        extra={"cli": True},
    )
    data = run_annotate_bench(config)
    if not args.quiet:
        print(render_markdown(data))
    print(f"results written to {Path(args.out) / (args.name + '.json')} and .md")


if __name__ == "__main__":
    main()
