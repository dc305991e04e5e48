"""`ner-export bench`: accuracy and speed of a bundle against PyTorch and Optimum, in one run.

This module runs the measurements; the systems compared are in `systems`, the timing in `timing`, the
report and the goals in `report`. All systems see the same sentences. Pre-split F1 goes through the
project's word tagging for every system (`tag_words`, `predict_words`), so all decode alike; raw-text
F1 is each system's own output on the sentences joined with spaces, mapped back to words by character
overlap, and comes from the throughput run's first round, so nothing is predicted twice. Latency is
per sentence and throughput per batch of sentences, what a service answering independent requests
sees; a model trained with document context is still scored as it is served, with its document's
neighbours (pre-split) and on whole documents (raw text, an extra untimed pass).
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ner_export.runtime.conll import read_conll
from ner_export.runtime.labels import entity_scores
from ner_export.runtime.machine import available_cpus, cpu_model, library_versions
from ner_export.runtime.manifest import BundleManifest, sha256_file

from .report import add_ratios, plot, render_markdown, targets
from .systems import BARE, COLD_STARTS, SYSTEMS, BareSystem, RuntimeSystem, System, cold_start, load_systems
from .timing import block_latencies, percentiles

__all__ = [
    "BenchConfig",
    "BenchResult",
    "batch_invariance",
    "dataset_facts",
    "write_results",
    "entities_to_word_tags",
    "group_documents",
    "machine",
    "run_bench",
    "split_documents",
]


@dataclass(frozen=True)
class BenchConfig:
    """What to bench (a bundle and the checkpoint it came from, on a CoNLL file) and how."""

    bundle: str
    checkpoint: str
    data: str
    out: str = "bench-results"
    name: str = "bench"
    sentences: int | None = None
    latency_sentences: int = 500
    repeats: int = 1
    batch_size: int = 32
    warmup: int = 20
    systems: tuple[str, ...] | None = None
    cold_start: bool = True
    progress: bool = True
    command: str = ""


@dataclass
class BenchResult:
    """A finished run: its record (the JSON), its Markdown report and the files written."""

    data: dict[str, Any]
    markdown: str
    files: list[str] = field(default_factory=list)


def entities_to_word_tags(words: Sequence[str], spans: Sequence[tuple[str, int, int]]) -> list[str]:
    """IOB2 word tags of `" ".join(words)` from (label, start, end) character spans.

    A word belongs to the first entity that overlaps it; the first word of an entity gets B-.
    """
    tags = ["O"] * len(words)
    starts, position = [], 0
    for word in words:
        starts.append(position)
        position += len(word) + 1
    ends = [s + len(w) for s, w in zip(starts, words, strict=True)]
    for label, begin, end in sorted(spans, key=lambda s: s[1]):
        first = True
        for i, (ws, we) in enumerate(zip(starts, ends, strict=True)):
            if ws < end and begin < we and tags[i] == "O":
                tags[i] = ("B-" if first else "I-") + label
                first = False
    return tags


def group_documents(words: list[list[str]], documents: list[int]) -> tuple[list[list[str]], list[list[int]]]:
    """Words of each run of equal document ids, and the sentence lengths to split them back."""
    doc_words: list[list[str]] = []
    sizes: list[list[int]] = []
    for i, sentence in enumerate(words):
        if i == 0 or documents[i] != documents[i - 1]:
            doc_words.append([])
            sizes.append([])
        doc_words[-1].extend(sentence)
        sizes[-1].append(len(sentence))
    return doc_words, sizes


def split_documents(doc_tags: list[list[str]], sizes: list[list[int]]) -> list[list[str]]:
    """Per-sentence tags from per-document tags and the sentence lengths `group_documents` gave."""
    out = []
    for tags, lengths in zip(doc_tags, sizes, strict=True):
        start = 0
        for n in lengths:
            out.append(tags[start : start + n])
            start += n
    return out


def dataset_facts(data_path: Path, words: Sequence[Sequence[str]]) -> dict[str, Any]:
    """What a result file records of its data: path, sentences, tokens and sha256."""
    return {
        "path": str(data_path),
        "sentences": len(words),
        "tokens": sum(len(w) for w in words),
        "sha256": sha256_file(data_path),
    }


def machine() -> dict[str, Any]:
    """The machine a run was measured on."""
    return {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu": cpu_model(),
        "cpus_available": available_cpus(),
        "os_cpu_count": os.cpu_count(),
    }


def _size_mb(*paths: Path) -> float:
    return round(sum(p.stat().st_size for p in paths) / 1e6, 2)


@dataclass(frozen=True)
class _BenchSentences:
    """The sentences every system sees: words, gold tags, raw texts (words joined by spaces), document ids."""

    words: list[list[str]]
    gold: list[list[str]]
    texts: list[str]
    documents: list[int]

    @classmethod
    def read(cls, path: Path, limit: int | None) -> _BenchSentences:
        """The first `limit` sentences of the CoNLL file `path` (all of them when `limit` is None or 0)."""
        sentences = read_conll(path)
        if limit:
            sentences = sentences[:limit]
        words = [list(s.words) for s in sentences]
        gold = [list(s.tags) for s in sentences]
        return cls(words, gold, [" ".join(w) for w in words], [s.document for s in sentences])


def run_bench(config: BenchConfig) -> BenchResult:
    """Run every system on the data, write `<name>.json`, `.md` and `.png` under `config.out`."""
    from tqdm.auto import tqdm

    data_path = Path(config.data)
    sentences = _BenchSentences.read(data_path, config.sentences)
    bundle, checkpoint = Path(config.bundle), Path(config.checkpoint)
    document_context = BundleManifest.read(bundle).context == "document"
    skipped: dict[str, str] = {}
    say = tqdm.write if config.progress else (lambda _msg: None)
    with tempfile.TemporaryDirectory(prefix="ner-export-bench-") as workdir:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # third-party deprecation noise while loading models and peers
            wanted = config.systems or SYSTEMS
            systems = load_systems(
                bundle, checkpoint, wanted, sentences.texts, config.batch_size, skipped, Path(workdir)
            )
        results: dict[str, dict[str, Any]] = {s.name: {} for s in systems}
        n_latency, paired, paired_sps = _measure_accuracy_and_speed(
            systems, sentences, config, results, say, document_context
        )
        _measure_batch_invariance(systems, sentences.texts, config.batch_size, results, say)
        _measure_cold_starts(systems, bundle, checkpoint, sentences.texts[0], config.cold_start, results, say)

    add_ratios(results)
    settings = {
        "context": "document" if document_context else "none",
        "latency_sentences": n_latency,
        "latency_history": max(0, len(sentences.texts) - n_latency),
        "repeats": config.repeats,
        "batch_size": config.batch_size,
        "warmup": config.warmup,
    }
    data = {
        "dataset": dataset_facts(data_path, sentences.words),
        "machine": machine(),
        "versions": library_versions(),
        "command": config.command,
        "settings": settings,
        "systems": results,
        "paired_overhead": paired,
        "paired_throughput": paired_sps,
        "skipped": skipped,
        "targets": targets(results),
    }
    return write_results(data, Path(config.out), config.name)


def _measure_accuracy_and_speed(
    systems: list[System],
    sentences: _BenchSentences,
    config: BenchConfig,
    results: dict[str, dict[str, Any]],
    say: Any,
    document_context: bool,
) -> tuple[int, dict[str, float] | None, dict[str, float] | None]:
    """Pre-split and raw-text F1, latency, throughput, model size and torch import of every system, into
    `results`; returns the sentences timed for latency and the paired overhead and throughput."""
    words, gold, texts = sentences.words, sentences.gold, sentences.texts
    for system in systems:
        say(f"pre-split F1: {system.name}")
        results[system.name]["f1_presplit"] = entity_scores(gold, system.presplit(words, sentences.documents)).f1
    n_latency = _latency(systems, texts, config, results)
    paired = paired_overhead(systems, texts[:n_latency], config.repeats)
    best = _throughput(systems, texts, words, gold, config, results, say, rawtext=not document_context)
    say("paired throughput: runtime_int8 and runtime_int8_dynamic")
    paired_sps = paired_throughput(systems, texts, config.batch_size, config.repeats)
    if document_context:
        _document_f1(systems, words, gold, sentences.documents, results, say)
    for system in systems:
        results[system.name]["throughput_sps"] = len(texts) / best[system.name]
        results[system.name]["model_mb"] = _size_mb(*system.model_files)
        results[system.name]["imports_torch"] = system.imports_torch
    return n_latency, paired, paired_sps


def _measure_batch_invariance(
    systems: list[System], texts: list[str], batch_size: int, results: dict[str, dict[str, Any]], say: Any
) -> None:
    """Each system's `batch_invariance` count, into `results`."""
    for system in systems:
        say(f"batch invariance: {system.name}")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            results[system.name]["batch_invariance"] = batch_invariance(system, texts, batch_size)


def _measure_cold_starts(
    systems: list[System],
    bundle: Path,
    checkpoint: Path,
    text: str,
    enabled: bool,
    results: dict[str, dict[str, Any]],
    say: Any,
) -> None:
    """Each system's cold start on `text` (`benchmarks.cold_start`), into `results`; None when not
    `enabled` and for the systems without a cold-start script."""
    for system in systems:
        if enabled and system.name in COLD_STARTS:
            say(f"cold start: {system.name}")
            cold = cold_start(system.name, bundle.resolve(), checkpoint.resolve(), text)
            results[system.name].update(
                cold_start_s=cold["cold_start_s"],
                peak_rss_mb=cold["peak_rss_mb"],
                imports_torch=cold["imports_torch"],
            )
        else:
            results[system.name].update(cold_start_s=None, peak_rss_mb=None)


def batch_invariance(system: System, texts: list[str], batch_size: int, seed: int = 0) -> int:
    """How many texts get a different answer alone (batch 1) than in a shuffled run at `batch_size`."""
    import random

    alone = system.answers(texts, 1)
    order = list(range(len(texts)))
    random.Random(seed).shuffle(order)
    shuffled = system.answers([texts[i] for i in order], batch_size)
    together: list[Any] = [None] * len(texts)
    for position, index in enumerate(order):
        together[index] = shuffled[position]
    return sum(a != b for a, b in zip(alone, together, strict=True))


def _latency(systems: list[System], texts: list[str], config: BenchConfig, results: dict[str, dict[str, Any]]) -> int:
    """Single-text latency percentiles of every system, after a warm-up; returns the sentences timed."""
    n_latency = min(config.latency_sentences, len(texts))
    for system in systems:
        system.prime(texts[n_latency:])
    for i in range(min(config.warmup, len(texts))):
        for system in systems:
            system.single(texts[i], i)
    runners = {s.name: (lambda i, s=s: s.single(texts[i], i)) for s in systems}
    resets = {s.name: s.forget for s in systems}
    latency = block_latencies(runners, n_latency, rounds=config.repeats, progress=config.progress, resets=resets)
    for system in systems:
        results[system.name]["latency_ms"] = percentiles(latency[system.name])
    return n_latency


def paired_overhead(systems: list[System], texts: list[str], rounds: int) -> dict[str, float] | None:
    """runtime_int8's single-text p50 against its own session's bare run on the same pre-built input,
    the two taking turns call by call (order alternating): what the runtime adds to the graph, with
    the machine's drift common to both. None without runtime_int8 and session_int8. A third arm, the
    runtime without its token cache on the same session, shows what the cache saves; the cache is put
    back to its primed state (`System.prime`: the texts not timed) before each round, so a timed text's
    chunks are there only when the history or an earlier text of the round had them.

    The block-interleaved p50s compare two systems measured at different moments, on different
    sessions; on this shared machine one system's block medians ranged from 0.75 to 2.96 ms in one run.
    """
    named = {s.name: s for s in systems}
    runtime, session = named.get("runtime_int8"), named.get("session_int8")
    if not isinstance(runtime, RuntimeSystem) or not isinstance(session, BareSystem):
        return None
    arms = ("runtime", "session", "uncached")
    seconds: dict[str, list[float]] = {name: [] for name in arms}
    for _ in range(rounds):
        runtime.forget()
        for i, text in enumerate(texts):
            for name in arms[i % 3 :] + arms[: i % 3]:
                started = time.perf_counter()
                if name == "runtime":
                    runtime.single(text, i)
                elif name == "uncached":
                    runtime.single_uncached(text)
                else:
                    runtime.run_session(session.single_feeds(i))
                seconds[name].append(time.perf_counter() - started)
    p50 = {name: percentiles(seconds[name])["p50"] for name in arms}
    return {
        "runtime_p50_ms": p50["runtime"],
        "session_p50_ms": p50["session"],
        "ratio": p50["runtime"] / p50["session"],
        "uncached_p50_ms": p50["uncached"],
        "uncached_ratio": p50["uncached"] / p50["session"],
    }


def paired_throughput(
    systems: list[System], texts: list[str], batch_size: int, rounds: int, turn: int = 512
) -> dict[str, float] | None:
    """runtime_int8's throughput at `batch_size` against runtime_int8_dynamic's, the two taking turns on
    the same slices of `turn` texts (order alternating), seconds summed over `rounds` passes: the
    batch-dependent graph's speed with the machine's drift in common, where the best-of-rounds
    throughputs compare whole passes run at different moments. None without both systems."""
    named = {s.name: s for s in systems}
    static, dynamic = named.get("runtime_int8"), named.get("runtime_int8_dynamic")
    if not isinstance(static, RuntimeSystem) or not isinstance(dynamic, RuntimeSystem):
        return None
    seconds = {"static": 0.0, "dynamic": 0.0}
    for _ in range(rounds):
        for k, lo in enumerate(range(0, len(texts), turn)):
            for name in ("static", "dynamic") if k % 2 == 0 else ("dynamic", "static"):
                system = static if name == "static" else dynamic
                started = time.perf_counter()
                system.answers(texts[lo : lo + turn], batch_size)
                seconds[name] += time.perf_counter() - started
    passes = rounds * len(texts)
    return {
        "runtime_sps": passes / seconds["static"],
        "dynamic_sps": passes / seconds["dynamic"],
        "ratio": seconds["dynamic"] / seconds["static"],
    }


def _throughput(
    systems: list[System],
    texts: list[str],
    words: list[list[str]],
    gold: list[list[str]],
    config: BenchConfig,
    results: dict[str, dict[str, Any]],
    say: Any,
    rawtext: bool,
) -> dict[str, float]:
    """Seconds of each system's best pass over the whole set at the batch size; with `rawtext`, raw-text
    F1 from the first round's own output, so no prediction is made twice."""
    best: dict[str, float] = {}
    for round_ in range(config.repeats):
        for system in systems:
            say(f"throughput round {round_ + 1}: {system.name}")
            started = time.perf_counter()
            spans = system.batch(texts)
            seconds = time.perf_counter() - started
            best[system.name] = min(best.get(system.name, float("inf")), seconds)
            if round_ == 0 and rawtext:
                if system.name in BARE:
                    results[system.name]["f1_rawtext"] = None
                else:
                    predicted = [entities_to_word_tags(w, s) for w, s in zip(words, spans, strict=True)]
                    results[system.name]["f1_rawtext"] = entity_scores(gold, predicted).f1
    return best


def _document_f1(
    systems: list[System],
    words: list[list[str]],
    gold: list[list[str]],
    documents: list[int],
    results: dict[str, dict[str, Any]],
    say: Any,
) -> None:
    """Raw-text F1 of a model trained with document context: whole documents read as long texts (untimed)."""
    doc_words, doc_sizes = group_documents(words, documents)
    doc_texts = [" ".join(w) for w in doc_words]
    for system in systems:
        if system.name in BARE:
            results[system.name]["f1_rawtext"] = None
            continue
        say(f"raw-text F1 on whole documents: {system.name}")
        spans = system.documents(doc_texts)
        doc_tags = [entities_to_word_tags(w, s) for w, s in zip(doc_words, spans, strict=True)]
        results[system.name]["f1_rawtext"] = entity_scores(gold, split_documents(doc_tags, doc_sizes)).f1


def write_results(
    data: dict[str, Any],
    out: Path,
    name: str,
    render: Callable[[dict[str, Any]], str] = render_markdown,
    draw: Callable[[dict[str, Any], Path], None] = plot,
) -> BenchResult:
    """Write a run's JSON, its Markdown (`render`) and its chart (`draw`) under `out` as NAME.json/.md/.png."""
    markdown = render(data)
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path, png_path = out / f"{name}.json", out / f"{name}.md", out / f"{name}.png"
    json_path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    md_path.write_text(markdown, encoding="utf-8")
    draw(data, png_path)
    return BenchResult(data, markdown, [str(json_path), str(md_path), str(png_path)])
