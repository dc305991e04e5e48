"""Throughput and latency of the runtime's execution options, each measured on its own, in one run.

    python -m ner_export.benchmarks.runtime_options BUNDLE --data test.txt [--rounds 3] [--out FILE.md]

Rows (the runtime on raw text, tokenizing and decoding included, batch 32 unless named):
- streams x threads per stream: 1x2 (one batch at a time on every thread), 2x1 (two batches in
  flight, one thread each), and so on for the CPUs this process has;
  (`session.intra_op.allow_spinning` needs no row: a one-thread stream has no pool threads to spin);
- the bare session (pre-tokenized, length-sorted batches, no decoding) at 1x2 and 2x1, the floor.
Configurations take turns round by round, so drift on a shared machine hits all alike; the best
round of each is reported, with the median beside it. Every configuration's entities are checked
equal to the first's: an option that changed answers would be a bug, not a speed-up.
"""

from __future__ import annotations

import argparse
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from ner_export.runtime import NerModel, available_cpus
from ner_export.runtime.casing import case_ids
from ner_export.runtime.conll import read_conll
from ner_export.runtime.manifest import BundleManifest
from ner_export.runtime.session import batch_inputs, create_session, load_tokenizer

from .timing import block_latencies, percentiles

__all__ = ["measure"]


def _stream_thread_splits(cpus: int) -> list[tuple[int, int]]:
    """(streams, threads per stream) pairs that use every CPU, plus 1 x cpus."""
    return [(s, cpus // s) for s in range(1, cpus + 1) if cpus % s == 0]


def _bare_session_pass(bundle: Path, texts: list[str], streams: int, threads: int) -> Callable[[], None]:
    """A pass of length-sorted, pre-tokenized batches of 32 over `streams` concurrent runs of one session."""
    manifest = BundleManifest.read(bundle)
    tokenizer = load_tokenizer(bundle / manifest.tokenizer_file)
    session = create_session(bundle / manifest.graph_for("cpu", "int8").file, threads=threads)
    encodings = tokenizer.encode_batch(texts)
    rows = [(e.ids, case_ids(t, e.offsets) if manifest.casing else None) for t, e in zip(texts, encodings, strict=True)]
    order = sorted(range(len(rows)), key=lambda i: len(rows[i][0]))
    batches = []
    for start in range(0, len(order), 32):
        chunk = [rows[i] for i in order[start : start + 32]]
        types = [t or [] for _, t in chunk] if manifest.casing else None
        batches.append(batch_inputs([ids for ids, _ in chunk], pad_id=manifest.pad_token_id, types=types))
    pool = ThreadPoolExecutor(streams)

    def run() -> None:
        if streams == 1:
            for feeds in batches:
                session.run(None, feeds)
        else:
            list(pool.map(lambda feeds: session.run(None, feeds), batches))

    return run


def measure(bundle: str, data: str, rounds: int = 3, latency_sentences: int = 300) -> tuple[str, dict[str, Any]]:
    """(Markdown table, results) of every option on the CoNLL file `data`."""
    texts = [" ".join(s.words) for s in read_conll(data)]
    cpus = available_cpus()
    source = Path(bundle)
    models: dict[str, NerModel] = {}
    for streams, threads in _stream_thread_splits(cpus):
        models[f"runtime {streams}x{threads}"] = NerModel.load(source, threads=cpus, streams=streams)
    first = next(iter(models.values())).predict(texts)
    same = {name: model.predict(texts) == first for name, model in models.items()}
    passes: dict[str, Callable[[], Any]] = {name: (lambda m=m: m.predict(texts)) for name, m in models.items()}
    for streams, threads in _stream_thread_splits(cpus):
        passes[f"bare {streams}x{threads} session"] = _bare_session_pass(source, texts, streams, threads)
    seconds: dict[str, list[float]] = {name: [] for name in passes}
    for _ in range(rounds):
        for name, run in passes.items():
            started = time.perf_counter()
            run()
            seconds[name].append(time.perf_counter() - started)
    n = min(latency_sentences, len(texts))
    latency = block_latencies({name: (lambda i, m=m: m(texts[i])) for name, m in models.items()}, n)
    results: dict[str, Any] = {}
    for name, taken in seconds.items():
        results[name] = {
            "best_sps": len(texts) / min(taken),
            "median_sps": len(texts) / statistics.median(taken),
            "p50_ms": percentiles(latency[name])["p50"] if name in latency else None,
            "same_entities": same.get(name),
        }
    lines = [
        f"{len(texts)} sentences of `{data}`, {cpus} CPUs, {rounds} rounds (configurations take turns).",
        "",
        "| configuration | sent/s @32, best round | median round | p50 ms, one sentence | entities as the first row |",
        "|---|---|---|---|---|",
    ]
    for name, r in results.items():
        p50 = "-" if r["p50_ms"] is None else f"{r['p50_ms']:.2f}"
        check = "-" if r["same_entities"] is None else ("yes" if r["same_entities"] else "**NO**")
        lines.append(f"| {name} | {r['best_sps']:.0f} | {r['median_sps']:.0f} | {p50} | {check} |")
    return "\n".join(lines) + "\n", results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle")
    parser.add_argument("--data", required=True)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--latency-sentences", type=int, default=300)
    parser.add_argument("--out")
    args = parser.parse_args()
    markdown, _ = measure(args.bundle, args.data, args.rounds, args.latency_sentences)
    command = "python -m ner_export.benchmarks.runtime_options " + shlex.join(sys.argv[1:])
    markdown = f"Command: `{command}`\n\n{markdown}"
    print(markdown)
    if args.out:
        Path(args.out).write_text(markdown, encoding="utf-8")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
