"""`ner-export bench TEACHER_BUNDLE --compare STUDENT_BUNDLE ...`: bundles on the speed/accuracy frontier.

Where `run_bench` races one bundle against other stacks, this measures several bundles (a teacher and
its distilled students, typically) through the same stack, the runtime on each int8 graph, on the same
sentences in one run, so that only the models differ. Per bundle: entity F1 on the pre-split words and
on the raw text (the sentences joined with spaces; whole documents for a model trained with document
context, as `run_bench` does), single-sentence p50 latency, throughput at batch 32 on all the CPUs this
process may use and on one thread, the bundle's size and its layer count, and what it was distilled
from when its config.json (or manifest) says.

The bundles take turns everywhere, so drift on a shared machine hits all alike: latency in rotating
blocks (`timing.block_latencies`, the token cache primed and reset as in `run_bench`), throughput in
rounds over all bundles, best of `repeats`. The first bundle is the reference its ratios are to.
The report and the chart are `frontier_report`'s.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ner_export.runtime.conll import read_conll
from ner_export.runtime.errors import BundleError
from ner_export.runtime.files import read_json
from ner_export.runtime.labels import entity_scores
from ner_export.runtime.machine import library_versions
from ner_export.runtime.manifest import MANIFEST_NAME, BundleManifest

from .bench import (
    BenchResult,
    dataset_facts,
    entities_to_word_tags,
    group_documents,
    machine,
    split_documents,
    write_results,
)
from .frontier_report import plot_frontier, render_frontier_markdown
from .frontier_targets import frontier_targets
from .text_systems import RuntimeSystem
from .timing import block_latencies, percentiles

__all__ = ["FrontierConfig", "run_frontier"]

_DEPTH_KEYS = ("num_hidden_layers", "n_layers", "num_layers")  # config.json entries that give the layer count
_DISTILLATION_KEY = "ner_export_distillation"


@dataclass(frozen=True)
class FrontierConfig:
    """Which bundles to measure (the first is the reference), on which CoNLL file, and how."""

    bundles: tuple[str, ...]
    data: str
    out: str = "bench-results"
    name: str = "frontier"
    sentences: int | None = None
    latency_sentences: int = 500
    repeats: int = 1
    batch_size: int = 32
    warmup: int = 20
    progress: bool = True
    command: str = ""
    notes: str = ""  # Markdown the report appends under "Notes": what was tried, what the run left out

    def __post_init__(self) -> None:
        if isinstance(self.bundles, str) or not self.bundles:
            raise ValueError("bundles must be a non-empty tuple of bundle directories")
        object.__setattr__(self, "bundles", tuple(str(b) for b in self.bundles))
        resolved = [str(Path(b).resolve()) for b in self.bundles]
        if len(set(resolved)) != len(resolved):
            raise ValueError(f"each bundle must be measured once, got {list(self.bundles)}")
        for name in ("latency_sentences", "repeats", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.sentences is not None and self.sentences < 1:
            raise ValueError(f"sentences must be at least 1 when given, got {self.sentences}")
        if self.warmup < 0:
            raise ValueError(f"warmup must be 0 or more, got {self.warmup}")


@dataclass(frozen=True)
class _Sentences:
    words: list[list[str]]
    gold: list[list[str]]
    texts: list[str]
    documents: list[int]


@dataclass(frozen=True)
class _Point:
    """One bundle under test: its runtime on all CPUs and on one thread, and its manifest."""

    name: str
    path: Path
    manifest: BundleManifest
    system: RuntimeSystem
    one_thread: Any  # NerModel with threads=1


def run_frontier(config: FrontierConfig) -> BenchResult:
    """Measure every bundle of `config` and write `<name>.json`, `.md` and `.png` under `config.out`."""
    from tqdm.auto import tqdm

    data_path = Path(config.data)
    sentences = _read_sentences(data_path, config.sentences)
    for bundle in config.bundles:
        BundleManifest.read(Path(bundle))  # a BundleError now, before anything is loaded
    points = _load_points(config)
    say = tqdm.write if config.progress else (lambda _msg: None)
    results: dict[str, dict[str, Any]] = {point.name: _describe(point) for point in points}
    for point in points:
        say(f"pre-split F1: {point.name}")
        tags = point.system.presplit(sentences.words, sentences.documents)
        results[point.name]["f1_presplit"] = entity_scores(sentences.gold, tags).f1
    n_latency = _latency(points, sentences.texts, config, results)
    _throughput(points, sentences, config, results, say)
    _add_ratios(results, points[0].name)
    data = {
        "dataset": dataset_facts(data_path, sentences.words),
        "machine": machine(),
        "versions": library_versions(),
        "command": config.command,
        "settings": {
            "latency_sentences": n_latency,
            "repeats": config.repeats,
            "batch_size": config.batch_size,
            "warmup": config.warmup,
            "precision": "int8",
        },
        "reference": points[0].name,
        "bundles": results,
    }
    data["targets"] = frontier_targets(data)
    data["notes"] = config.notes
    return _write(data, Path(config.out), config.name)


def _read_sentences(path: Path, limit: int | None) -> _Sentences:
    sentences = read_conll(path)
    if limit:
        sentences = sentences[:limit]
    words = [list(s.words) for s in sentences]
    return _Sentences(
        words, [list(s.tags) for s in sentences], [" ".join(w) for w in words], [s.document for s in sentences]
    )


def _load_points(config: FrontierConfig) -> list[_Point]:
    """Each bundle's int8 runtime on all CPUs and on one thread, named by its folder (its parent's too
    when two folders share a name)."""
    from ner_export.runtime import NerModel

    paths = [Path(b) for b in config.bundles]
    names = [p.name or str(p) for p in paths]
    if len(set(names)) < len(names):
        names = [f"{p.resolve().parent.name}/{p.resolve().name}" for p in paths]
    if len(set(names)) < len(names):
        names = [str(p) for p in paths]
    return [
        _Point(
            name,
            path,
            BundleManifest.read(path),
            RuntimeSystem(name, path, "int8", config.batch_size),
            NerModel.load(path, threads=1, precision="int8"),
        )
        for name, path in zip(names, paths, strict=True)
    ]


def _describe(point: _Point) -> dict[str, Any]:
    """What a bundle is: path, layers, context, size, and what it was distilled from (None if not)."""
    config_file = point.path / "config.json"
    config = read_json(config_file, BundleError) if config_file.is_file() else {}
    config = config if isinstance(config, dict) else {}
    layers = next((config[key] for key in _DEPTH_KEYS if isinstance(config.get(key), int)), None)
    listed = [point.path / name for name in point.manifest.files] + [point.path / MANIFEST_NAME]
    distilled = point.manifest.source.get("distillation") or config.get(_DISTILLATION_KEY)
    return {
        "path": str(point.path),
        "layers": layers,
        "context": point.manifest.context,
        "bundle_mb": round(sum(p.stat().st_size for p in listed if p.is_file()) / 1e6, 2),
        "int8_graph_mb": round(sum(p.stat().st_size for p in point.system.model_files) / 1e6, 2),
        "distilled_from": _distillation_summary(distilled) if isinstance(distilled, dict) else None,
        "training": _training(point.manifest.source.get("checkpoint")),
    }


def _training(checkpoint: Any) -> dict[str, Any] | None:
    """Seconds and epochs from the checkpoint's metrics.json, when the manifest names a checkpoint that
    is still there (a bundle moved to another machine has none: None)."""
    metrics_file = Path(str(checkpoint)) / "metrics.json" if checkpoint else None
    if metrics_file is None or not metrics_file.is_file():
        return None
    try:
        metrics = read_json(metrics_file, BundleError)
    except BundleError:
        return None
    if not isinstance(metrics, dict):
        return None
    epochs = metrics.get("epochs")
    return {
        "checkpoint": str(checkpoint),
        "train_seconds": metrics.get("train_seconds"),
        "teacher_seconds": metrics.get("teacher_seconds"),
        "epochs": len(epochs) if isinstance(epochs, list) else None,
        "best_dev_f1": metrics.get("best_dev_f1"),
    }


def _distillation_summary(record: dict[str, Any]) -> dict[str, Any]:
    """The part of a student's distillation record a frontier report shows."""
    teachers = record.get("teachers") or []
    data = record.get("data")
    unlabeled = data.get("unlabeled") if isinstance(data, dict) else None
    return {
        "teachers": [t.get("path") for t in teachers if isinstance(t, dict)],
        "layers_kept": record.get("layers_kept"),
        "temperature": record.get("temperature"),
        "soft_weight": record.get("soft_weight"),
        "unlabeled_texts": unlabeled.get("texts") if isinstance(unlabeled, dict) else None,
    }


def _latency(points: list[_Point], texts: list[str], config: FrontierConfig, results: dict[str, dict[str, Any]]) -> int:
    """Single-sentence latency percentiles of every bundle, in rotating blocks; returns the sentences timed."""
    n_latency = min(config.latency_sentences, len(texts))
    for point in points:
        point.system.prime(texts[n_latency:])
    for i in range(min(config.warmup, len(texts))):
        for point in points:
            point.system.single(texts[i], i)
    runners = {p.name: (lambda i, s=p.system: s.single(texts[i], i)) for p in points}
    resets = {p.name: p.system.forget for p in points}
    latency = block_latencies(runners, n_latency, rounds=config.repeats, progress=config.progress, resets=resets)
    for point in points:
        results[point.name]["latency_ms"] = percentiles(latency[point.name])
    return n_latency


def _throughput(
    points: list[_Point], sentences: _Sentences, config: FrontierConfig, results: dict[str, dict[str, Any]], say: Any
) -> None:
    """Throughput at the batch size on all CPUs and on one thread (best of the rounds, bundles taking
    turns), and raw-text F1 from the first all-CPU round (whole documents, untimed, with context)."""
    texts = sentences.texts
    best: dict[tuple[str, str], float] = {}
    for round_ in range(config.repeats):
        for point in points:
            say(f"throughput round {round_ + 1}: {point.name}")
            started = time.perf_counter()
            spans = point.system.batch(texts)
            seconds = time.perf_counter() - started
            best[point.name, "all"] = min(best.get((point.name, "all"), float("inf")), seconds)
            started = time.perf_counter()
            point.one_thread.predict(texts, batch_size=config.batch_size)
            seconds = time.perf_counter() - started
            best[point.name, "one"] = min(best.get((point.name, "one"), float("inf")), seconds)
            if round_ == 0 and point.manifest.context != "document":
                predicted = [entities_to_word_tags(w, s) for w, s in zip(sentences.words, spans, strict=True)]
                results[point.name]["f1_rawtext"] = entity_scores(sentences.gold, predicted).f1
    for point in points:
        results[point.name]["throughput_sps"] = len(texts) / best[point.name, "all"]
        results[point.name]["throughput_sps_1thread"] = len(texts) / best[point.name, "one"]
        if point.manifest.context == "document":
            say(f"raw-text F1 on whole documents: {point.name}")
            doc_words, sizes = group_documents(sentences.words, sentences.documents)
            spans = point.system.documents([" ".join(w) for w in doc_words])
            doc_tags = [entities_to_word_tags(w, s) for w, s in zip(doc_words, spans, strict=True)]
            results[point.name]["f1_rawtext"] = entity_scores(sentences.gold, split_documents(doc_tags, sizes)).f1


def _add_ratios(results: dict[str, dict[str, Any]], reference: str) -> None:
    """Each bundle against the reference: F1 difference in points, speed and size ratios."""
    base = results[reference]
    for row in results.values():
        row["vs_reference"] = {
            "f1_presplit_points": round(100 * (row["f1_presplit"] - base["f1_presplit"]), 4),
            "f1_rawtext_points": round(100 * (row["f1_rawtext"] - base["f1_rawtext"]), 4),
            "latency_p50": row["latency_ms"]["p50"] / base["latency_ms"]["p50"],
            "throughput": row["throughput_sps"] / base["throughput_sps"],
            "throughput_1thread": row["throughput_sps_1thread"] / base["throughput_sps_1thread"],
            "bundle_size": row["bundle_mb"] / base["bundle_mb"] if base["bundle_mb"] else None,
        }


def _write(data: dict[str, Any], out: Path, name: str) -> BenchResult:
    """Write the run's JSON, Markdown and chart under `out`."""
    return write_results(data, out, name, render_frontier_markdown, plot_frontier)
