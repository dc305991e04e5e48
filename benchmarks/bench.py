"""`ner-export bench`: accuracy and speed of a bundle against PyTorch and Optimum, in one run.

Five systems see the same sentences: transformers' pipeline on the checkpoint (`pytorch`, the baseline
every ratio is against), Optimum's ORTModel + pipeline on the bundle's int8 graph (`optimum_int8`),
this project's runtime on the fp32 and int8 graphs, and a bare onnxruntime session on the int8 graph
fed pre-tokenized, length-sorted batches (`session_int8`), the floor the runtime's overhead is
measured against.

Trade-offs: latency is measured one sentence at a time, the systems taking turns on blocks of 50
sentences in rotated order, so drift on a shared machine hits all of them alike while no system pays
for another's idle spinning threads (per-sentence interleaving made every system 3-8x slower here); throughput gives each
system its own best batching at batch 32; cold start runs each system in a fresh process, because
import and load cost is what a restarted service pays. Raw-text F1 is computed from the throughput
run's own output (text joined with spaces, entities mapped back to words by character overlap), so
no prediction is done twice.

A model trained with document context is scored as it is served: pre-split F1 reads each sentence with
its document's neighbours (the PyTorch side through the training code's own tagging), and raw-text F1
comes from an extra, untimed pass over whole documents (sentences joined with spaces; the pipeline gets
its own long-text mode with windows of the training length). Latency and throughput stay per sentence,
what a service answering independent requests sees. `session_int8` always reads sentences alone: it
is the speed floor, and its F1 is informational.

Decoding: the pre-split rows of every system go through the project's word tagging (`tag_words` for
the PyTorch and Optimum models, `predict_words` for the runtime), so all decode alike, with the
default constrained IOB2 decoding. Raw-text rows are each system's own output: the runtime decodes
with constraints, the transformers and Optimum pipelines as the pipeline does (each word's best label).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ner_export.export.exporter import library_versions
from ner_export.runtime.errors import NerExportError
from ner_export.runtime.labels import entity_scores
from ner_export.runtime.manifest import BundleManifest

__all__ = ["BenchConfig", "BenchResult", "run_bench", "SYSTEMS", "entities_to_word_tags"]

SYSTEMS = ("pytorch", "optimum_int8", "runtime_fp32", "runtime_int8", "session_int8")
TARGETS_DOC = "issue #3 targets for runtime_int8"


@dataclass(frozen=True)
class BenchConfig:
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
    data: dict[str, Any]
    markdown: str
    files: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- helpers
def entities_to_word_tags(words: Sequence[str], spans: Sequence[tuple[str, int, int]]) -> list[str]:
    """IOB2 word tags of `" ".join(words)` from (label, start, end) character spans.

    A word belongs to the first entity that overlaps it; the first word of an entity gets B-.
    """
    tags = ["O"] * len(words)
    starts, position = [], 0
    for word in words:
        starts.append(position)
        position += len(word) + 1
    ends = [s + len(w) for s, w in zip(starts, words)]
    for label, begin, end in sorted(spans, key=lambda s: s[1]):
        first = True
        for i, (ws, we) in enumerate(zip(starts, ends)):
            if ws < end and begin < we and tags[i] == "O":
                tags[i] = ("B-" if first else "I-") + label
                first = False
    return tags


def _group_documents(words: list[list[str]], documents: list[int]) -> tuple[list[list[str]], list[list[int]]]:
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


def _split_documents(doc_tags: list[list[str]], sizes: list[list[int]]) -> list[list[str]]:
    out = []
    for tags, lengths in zip(doc_tags, sizes):
        start = 0
        for n in lengths:
            out.append(tags[start : start + n])
            start += n
    return out


def block_latencies(
    runners: dict[str, Callable[[int], Any]], n: int, block: int = 50, rounds: int = 1, progress: bool = False
) -> dict[str, list[float]]:
    """Seconds per call of each runner on items 0..n-1, the runners taking turns on blocks of items.

    The order of runners rotates from block to block, and each block starts with three untimed calls,
    so another stack's idle spinning threads are not billed to this one and drift hits all alike.
    """
    from tqdm.auto import tqdm

    names = list(runners)
    seconds: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(rounds):
        for turn, lo in enumerate(tqdm(range(0, n, block), desc="latency", disable=not progress)):
            k = turn % len(names)
            for name in names[k:] + names[:k]:
                run = runners[name]
                for i in range(lo, min(lo + 3, n)):
                    run(i)
                for i in range(lo, min(lo + block, n)):
                    started = time.perf_counter()
                    run(i)
                    seconds[name].append(time.perf_counter() - started)
    return seconds


def _percentiles(seconds: Sequence[float]) -> dict[str, float]:
    ms = np.asarray(seconds) * 1000
    return {"p50": float(np.percentile(ms, 50)), "p95": float(np.percentile(ms, 95)), "p99": float(np.percentile(ms, 99))}


def _size_mb(*paths: Path) -> float:
    return round(sum(p.stat().st_size for p in paths) / 1e6, 2)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _machine() -> dict[str, Any]:
    from ner_export.runtime import available_cpus

    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"platform": platform.platform(), "python": platform.python_version(), "cpu": cpu, "cpus_available": available_cpus(), "os_cpu_count": os.cpu_count()}


# --------------------------------------------------------------------------- systems
class _System:
    """One inference stack: how it tags pre-split words, one text, and a whole list of texts."""

    name: str
    model_files: list[Path]
    imports_torch: bool

    def presplit(self, words: list[list[str]], documents: list[int]) -> list[list[str]]:
        raise NotImplementedError

    def documents(self, texts: list[str]) -> list[list[tuple[str, int, int]]]:
        """Entities of whole documents (long texts), for a model trained with document context."""
        return self.batch(texts)

    def single(self, text: str, index: int) -> Any:
        raise NotImplementedError

    def batch(self, texts: list[str]) -> list[list[tuple[str, int, int]]]:
        raise NotImplementedError


class _PipelineSystem(_System):
    def __init__(self, name: str, model: Any, tokenizer: Any, files: list[Path], batch_size: int, context: tuple[str, int]) -> None:
        from ner_export.finetune.pipeline import ner_pipeline

        self.name, self.model_files, self.imports_torch = name, files, True
        self._model, self._tokenizer, self._batch_size = model, tokenizer, batch_size
        self._context, self._window = context
        self._pipe = ner_pipeline(model, tokenizer, aggregation_strategy="first", device="cpu")

    def presplit(self, words: list[list[str]], documents: list[int]) -> list[list[str]]:
        # the model's own word tagging, as in training: each word labelled by its first sub-word
        from ner_export.finetune.train import tag_words

        return tag_words(self._model, self._tokenizer, words, self._batch_size, self._window, self._context, documents)

    def documents(self, texts: list[str]) -> list[list[tuple[str, int, int]]]:
        # the pipeline's own long-text mode: windows of the training length overlapping by half
        saved = self._tokenizer.model_max_length
        self._tokenizer.model_max_length = self._window
        try:
            results = self._pipe(texts, batch_size=self._batch_size, stride=(self._window - 2) // 2)
        finally:
            self._tokenizer.model_max_length = saved
        return [[(e["entity_group"], int(e["start"]), int(e["end"])) for e in row] for row in results]

    def single(self, text: str, index: int) -> Any:
        return self._pipe(text)

    def batch(self, texts: list[str]) -> list[list[tuple[str, int, int]]]:
        results = self._pipe(texts, batch_size=self._batch_size)
        return [[(e["entity_group"], int(e["start"]), int(e["end"])) for e in row] for row in results]


class _RuntimeSystem(_System):
    def __init__(self, name: str, bundle: Path, precision: str, batch_size: int) -> None:
        from ner_export.runtime import NerModel

        self.name, self.imports_torch = name, False
        self._model = NerModel.load(bundle, precision=precision)
        self.model_files = [bundle / self._model.manifest.graph_for("cpu", precision).file]
        self._batch_size = batch_size

    def presplit(self, words: list[list[str]], documents: list[int]) -> list[list[str]]:
        return self._model.predict_words(words, batch_size=self._batch_size, documents=documents)

    def single(self, text: str, index: int) -> Any:
        return self._model(text)

    def batch(self, texts: list[str]) -> list[list[tuple[str, int, int]]]:
        return [[(e.label, e.start, e.end) for e in row] for row in self._model.predict(texts, batch_size=self._batch_size)]


class _SessionSystem(_System):
    """A bare InferenceSession fed pre-tokenized input: no tokenization or decoding is timed."""

    def __init__(self, bundle: Path, texts: list[str], batch_size: int) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        from ner_export.runtime import available_cpus

        self.name, self.imports_torch = "session_int8", False
        manifest = BundleManifest.read(bundle)
        graph = bundle / manifest.graph_for("cpu", "int8").file
        self.model_files = [graph]
        options = ort.SessionOptions()
        options.intra_op_num_threads = available_cpus()
        options.inter_op_num_threads = 1
        self._session = ort.InferenceSession(str(graph), sess_options=options, providers=["CPUExecutionProvider"])
        self._inputs = {i.name for i in self._session.get_inputs()}
        self._tokenizer = Tokenizer.from_file(str(bundle / manifest.tokenizer_file))
        self._tokenizer.no_truncation()
        self._tokenizer.no_padding()
        self._labels = manifest.labels
        self._casing = manifest.casing
        self._batch_size = batch_size
        rows = self._rows(texts)
        self._single = [self._feeds([row]) for row in rows]
        order = sorted(range(len(texts)), key=lambda i: len(rows[i][0]))
        self._batches = [self._feeds([rows[i] for i in order[s : s + batch_size]]) for s in range(0, len(order), batch_size)]

    def _rows(self, texts: list[str]) -> list[tuple[list[int], list[int] | None]]:
        """(ids, casing classes or None) of each text, with special tokens (whose class is 0)."""
        from ner_export.runtime.casing import case_ids

        encodings = self._tokenizer.encode_batch(texts)
        return [(e.ids[:512], case_ids(text, e.offsets[:512]) if self._casing else None) for text, e in zip(texts, encodings)]

    def _feeds(self, rows: list[tuple[list[int], list[int] | None]]) -> dict[str, np.ndarray]:
        width = max(len(r) for r, _ in rows)
        ids = np.zeros((len(rows), width), dtype=np.int64)
        mask = np.zeros_like(ids)
        token_types = np.zeros_like(ids)
        for j, (row, types) in enumerate(rows):
            ids[j, : len(row)] = row
            mask[j, : len(row)] = 1
            if types is not None:
                token_types[j, : len(types)] = types
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feeds["token_type_ids"] = token_types
        return feeds

    def presplit(self, words: list[list[str]], documents: list[int]) -> list[list[str]]:
        # sentences alone, whatever the model was trained with: the bare graph's floor, not its best F1
        from ner_export.finetune.train import first_subword_mask
        from ner_export.runtime.casing import case_ids
        from ner_export.runtime.labels import to_iob2

        out = []
        for start in range(0, len(words), self._batch_size):
            chunk = words[start : start + self._batch_size]
            encodings = self._tokenizer.encode_batch(chunk, is_pretokenized=True)
            rows = [(e.ids[:512], case_ids(w, e.offsets[:512], e.word_ids[:512]) if self._casing else None) for e, w in zip(encodings, chunk)]
            logits = self._session.run(None, self._feeds(rows))[0]
            for row, encoding, row_words in zip(logits.argmax(-1), encodings, chunk):
                tags = ["O"] * len(row_words)
                word_ids = encoding.word_ids[:512]
                for token, (word, first) in enumerate(zip(word_ids, first_subword_mask(word_ids))):
                    if first:
                        tags[word] = self._labels[int(row[token])]
                out.append(to_iob2(tags))
        return out

    def single(self, text: str, index: int) -> Any:
        return self._session.run(None, self._single[index])

    def batch(self, texts: list[str]) -> list[list[tuple[str, int, int]]]:
        for feeds in self._batches:
            self._session.run(None, feeds)
        return []


# --------------------------------------------------------------------------- cold start
_COLD_START = {
    "pytorch": (
        "from ner_export.finetune.pipeline import ner_pipeline\n"
        "p = ner_pipeline({checkpoint!r}, aggregation_strategy='first', device='cpu')\n"
        "p({text!r})\n"
    ),
    "optimum_int8": (
        "from optimum.onnxruntime import ORTModelForTokenClassification\n"
        "from transformers import AutoTokenizer\n"
        "from ner_export.finetune.pipeline import ner_pipeline\n"
        "m = ORTModelForTokenClassification.from_pretrained({bundle!r}, file_name='model_int8.onnx', local_files_only=True)\n"
        "p = ner_pipeline(m, AutoTokenizer.from_pretrained({checkpoint!r}), aggregation_strategy='first', device='cpu')\n"
        "p({text!r})\n"
    ),
    "runtime_fp32": "from ner_export.runtime import NerModel\nNerModel.load({bundle!r}, precision='fp32')({text!r})\n",
    "runtime_int8": "from ner_export.runtime import NerModel\nNerModel.load({bundle!r})({text!r})\n",
    "session_int8": (
        "import numpy as np, onnxruntime as ort\n"
        "from tokenizers import Tokenizer\n"
        "t = Tokenizer.from_file({bundle!r} + '/tokenizer.json')\n"
        "s = ort.InferenceSession({bundle!r} + '/model_int8.onnx', providers=['CPUExecutionProvider'])\n"
        "ids = np.asarray([t.encode({text!r}).ids], dtype=np.int64)\n"
        "s.run(None, {{'input_ids': ids, 'attention_mask': np.ones_like(ids), 'token_type_ids': np.zeros_like(ids)}})\n"
    ),
}
# VmHWM, not getrusage: Linux carries ru_maxrss over from the forking parent across exec.
_COLD_START_TAIL = (
    "import sys, json\n"
    "hwm = next(l for l in open('/proc/self/status') if l.startswith('VmHWM:'))\n"
    "print(json.dumps({{'peak_rss_mb': int(hwm.split()[1]) / 1024, 'imports_torch': 'torch' in sys.modules}}))\n"
)


def _cold_start(system: str, bundle: Path, checkpoint: Path, text: str) -> dict[str, Any]:
    code = _COLD_START[system].format(bundle=str(bundle), checkpoint=str(checkpoint), text=text) + _COLD_START_TAIL.format()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise NerExportError(f"cold start of {system} failed: {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else done.returncode}")
    info = json.loads(done.stdout.strip().splitlines()[-1])
    return {"cold_start_s": seconds, **info}


# --------------------------------------------------------------------------- the run
def _load_systems(config: BenchConfig, texts: list[str], skipped: dict[str, str]) -> list[_System]:
    from ner_export.finetune.train import checkpoint_casing, checkpoint_context, load_checkpoint

    bundle, checkpoint = Path(config.bundle), Path(config.checkpoint)
    wanted = config.systems or SYSTEMS
    unknown = sorted(set(wanted) - set(SYSTEMS))
    if unknown:
        raise ValueError(f"unknown system(s) {', '.join(unknown)}; choose from {', '.join(SYSTEMS)}")
    manifest = BundleManifest.read(bundle)
    systems: list[_System] = []
    model, tokenizer = load_checkpoint(str(checkpoint))
    checkpoint_labels = tuple(model.config.id2label[i] for i in range(len(model.config.id2label)))
    if checkpoint_labels != manifest.labels:
        raise NerExportError(
            f"{checkpoint} has labels {list(checkpoint_labels)} but the bundle {bundle} has {list(manifest.labels)}; "
            "bench a bundle against the checkpoint it was exported from"
        )
    context = checkpoint_context(model.config)
    if checkpoint_casing(model.config) != manifest.casing:
        raise NerExportError(
            f"{checkpoint} was trained {'with' if checkpoint_casing(model.config) else 'without'} casing but the bundle {bundle} "
            f"says casing={manifest.casing}; bench a bundle against the checkpoint it was exported from"
        )
    if context[0] != manifest.context:
        raise NerExportError(
            f"{checkpoint} was trained with context {context[0]!r} but the bundle {bundle} says {manifest.context!r}; "
            "bench a bundle against the checkpoint it was exported from"
        )
    weights = [p for p in (checkpoint / "model.safetensors", checkpoint / "pytorch_model.bin") if p.is_file()]
    for name in wanted:
        if name == "pytorch":
            systems.append(_PipelineSystem("pytorch", model, tokenizer, weights, config.batch_size, context))
        elif name == "optimum_int8":
            try:
                from optimum.onnxruntime import ORTModelForTokenClassification
            except ImportError:
                skipped[name] = "Optimum with ONNX Runtime is not installed (pip install 'ner-export[export]')"
                continue
            graph = manifest.graph_for("cpu", "int8").file
            ort_model = ORTModelForTokenClassification.from_pretrained(bundle, file_name=graph, local_files_only=True)
            systems.append(_PipelineSystem("optimum_int8", ort_model, tokenizer, [bundle / graph], config.batch_size, context))
        elif name == "runtime_fp32":
            try:
                manifest.graph_for("cpu", "fp32")
            except NerExportError:
                skipped[name] = "the bundle has no fp32 graph (exported with --no-fp32)"
                continue
            systems.append(_RuntimeSystem("runtime_fp32", bundle, "fp32", config.batch_size))
        elif name == "runtime_int8":
            systems.append(_RuntimeSystem("runtime_int8", bundle, "int8", config.batch_size))
        elif name == "session_int8":
            systems.append(_SessionSystem(bundle, texts, config.batch_size))
    return systems


def run_bench(config: BenchConfig) -> BenchResult:
    """Run every system on the data, write `<name>.json`, `.md` and `.png` under `config.out`."""
    import warnings

    from tqdm.auto import tqdm

    from ner_export.finetune.conll import read_conll

    data_path = Path(config.data)
    if not data_path.is_file():
        raise NerExportError(f"{data_path}: no such data file")
    sentences = read_conll(data_path)
    if config.sentences:
        sentences = sentences[: config.sentences]
    words = [list(s.words) for s in sentences]
    gold = [list(s.tags) for s in sentences]
    texts = [" ".join(w) for w in words]
    documents = [s.document for s in sentences]
    document_context = BundleManifest.read(Path(config.bundle)).context == "document"
    skipped: dict[str, str] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # third-party deprecation noise while loading models
        systems = _load_systems(config, texts, skipped)
    results: dict[str, dict[str, Any]] = {s.name: {} for s in systems}
    say = tqdm.write if config.progress else (lambda _msg: None)

    # accuracy from pre-split words
    for system in systems:
        say(f"pre-split F1: {system.name}")
        tags = system.presplit(words, documents)
        results[system.name]["f1_presplit"] = entity_scores(gold, tags).f1

    # single-text latency
    n_latency = min(config.latency_sentences, len(texts))
    for i in range(min(config.warmup, len(texts))):
        for system in systems:
            system.single(texts[i], i)
    runners = {s.name: (lambda i, s=s: s.single(texts[i], i)) for s in systems}
    latency = block_latencies(runners, n_latency, rounds=config.repeats, progress=config.progress)
    for system in systems:
        results[system.name]["latency_ms"] = _percentiles(latency[system.name])

    # throughput at batch 32 over the whole set; raw-text F1 from the same output
    best: dict[str, float] = {}
    for round_ in range(config.repeats):
        for system in systems:
            say(f"throughput round {round_ + 1}: {system.name}")
            started = time.perf_counter()
            spans = system.batch(texts)
            seconds = time.perf_counter() - started
            best[system.name] = min(best.get(system.name, float("inf")), seconds)
            if round_ == 0 and not document_context:
                if system.name == "session_int8":
                    results[system.name]["f1_rawtext"] = None
                else:
                    predicted = [entities_to_word_tags(w, s) for w, s in zip(words, spans)]
                    results[system.name]["f1_rawtext"] = entity_scores(gold, predicted).f1
    if document_context:
        # a model trained with document context reads raw text as whole documents (untimed pass)
        doc_words, doc_sizes = _group_documents(words, documents)
        doc_texts = [" ".join(w) for w in doc_words]
        for system in systems:
            if system.name == "session_int8":
                results[system.name]["f1_rawtext"] = None
                continue
            say(f"raw-text F1 on whole documents: {system.name}")
            doc_tags = [entities_to_word_tags(w, s) for w, s in zip(doc_words, system.documents(doc_texts))]
            results[system.name]["f1_rawtext"] = entity_scores(gold, _split_documents(doc_tags, doc_sizes)).f1
    for system in systems:
        results[system.name]["throughput_sps"] = len(texts) / best[system.name]
        results[system.name]["model_mb"] = _size_mb(*system.model_files)
        results[system.name]["imports_torch"] = system.imports_torch

    # cold start in fresh processes
    for system in systems:
        if config.cold_start:
            say(f"cold start: {system.name}")
            cold = _cold_start(system.name, Path(config.bundle).resolve(), Path(config.checkpoint).resolve(), texts[0])
            results[system.name].update(cold_start_s=cold["cold_start_s"], peak_rss_mb=cold["peak_rss_mb"], imports_torch=cold["imports_torch"])
        else:
            results[system.name].update(cold_start_s=None, peak_rss_mb=None)

    _add_ratios(results)
    data = {
        "dataset": {"path": str(data_path), "sentences": len(sentences), "tokens": sum(len(w) for w in words), "sha256": _sha256(data_path)},
        "machine": _machine(),
        "versions": library_versions(),
        "command": config.command,
        "settings": {"context": "document" if document_context else "none", "latency_sentences": n_latency, "repeats": config.repeats, "batch_size": config.batch_size, "warmup": config.warmup},
        "systems": results,
        "skipped": skipped,
        "targets": _targets(results, Path(config.bundle)),
    }
    markdown = render_markdown(data)
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    json_path, md_path, png_path = out / f"{config.name}.json", out / f"{config.name}.md", out / f"{config.name}.png"
    json_path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    md_path.write_text(markdown, encoding="utf-8")
    plot(data, png_path)
    return BenchResult(data, markdown, [str(json_path), str(md_path), str(png_path)])


def _ratio(value: float | None, reference: float | None) -> float | None:
    if value is None or reference is None or reference == 0:
        return None
    return value / reference


def _add_ratios(results: dict[str, dict[str, Any]]) -> None:
    base = results.get("pytorch")
    for metrics in results.values():
        if base is None:
            metrics["ratios_vs_pytorch"] = None
            continue
        metrics["ratios_vs_pytorch"] = {
            **{f"latency_{p}": _ratio(metrics["latency_ms"][p], base["latency_ms"][p]) for p in ("p50", "p95", "p99")},
            "throughput": _ratio(metrics["throughput_sps"], base["throughput_sps"]),
            "cold_start": _ratio(metrics.get("cold_start_s"), base.get("cold_start_s")),
            "peak_rss": _ratio(metrics.get("peak_rss_mb"), base.get("peak_rss_mb")),
            "model_size": _ratio(metrics["model_mb"], base["model_mb"]),
        }


def _targets(results: dict[str, dict[str, Any]], bundle: Path) -> list[dict[str, Any]]:
    """The issue's targets for runtime_int8, each with the measured value and whether it holds."""
    run, base, session = results.get("runtime_int8"), results.get("pytorch"), results.get("session_int8")
    if run is None or base is None:
        return []
    rows: list[tuple[str, float | None, float, str]] = []

    def add(name: str, value: float | None, limit: float, kind: str) -> None:
        rows.append((name, value, limit, kind))

    add("F1 pre-split: pytorch - runtime_int8 (points)", 100 * (base["f1_presplit"] - run["f1_presplit"]), 0.3, "max")
    if base.get("f1_rawtext") is not None:
        add("F1 raw text: pytorch - runtime_int8 (points)", 100 * (base["f1_rawtext"] - run["f1_rawtext"]), 0.3, "max")
    add("F1 runtime_int8: pre-split - raw text (points)", 100 * (run["f1_presplit"] - run["f1_rawtext"]), 0.1, "max")
    add("p50 latency / pytorch", run["ratios_vs_pytorch"]["latency_p50"], 1 / 5, "max")
    if session is not None:
        add("p50 latency / session_int8", _ratio(run["latency_ms"]["p50"], session["latency_ms"]["p50"]), 1.15, "max")
    add("throughput / pytorch", run["ratios_vs_pytorch"]["throughput"], 4.0, "min")
    if run.get("cold_start_s") is not None:
        add("cold start (s)", run["cold_start_s"], 0.5, "max")
        add("cold start / pytorch", run["ratios_vs_pytorch"]["cold_start"], 1 / 8, "max")
        add("peak RSS / pytorch", run["ratios_vs_pytorch"]["peak_rss"], 1 / 3, "max")
    fp32 = results.get("runtime_fp32")
    if fp32 is not None:
        add("int8 graph / fp32 graph size", _ratio(run["model_mb"], fp32["model_mb"]), 0.30, "max")
    out = []
    for name, value, limit, kind in rows:
        met = None if value is None else (value <= limit if kind == "max" else value >= limit)
        out.append({"target": name, "value": value, "limit": limit, "kind": kind, "met": met})
    return out


def _fmt(value: Any, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def render_markdown(data: dict[str, Any]) -> str:
    """A human-readable report of a bench run: the systems table, ratios, and the targets."""
    systems = data["systems"]
    lines = [
        f"# ner-export bench: {Path(data['dataset']['path']).name}",
        "",
        f"Command: `{data['command']}`  ",
        f"Data: {data['dataset']['sentences']} sentences, {data['dataset']['tokens']} words (sha256 {data['dataset']['sha256'][:12]}…)  ",
        f"Machine: {data['machine']['cpu']}, {data['machine']['cpus_available']} CPUs available; Python {data['machine']['python']}  ",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in data["versions"].items()),
        "",
        "| system | F1 pre-split | F1 raw text | p50 ms | p95 ms | p99 ms | sent/s @32 | cold start s | peak RSS MB | model MB | torch |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, m in systems.items():
        lat = m["latency_ms"]
        lines.append(
            f"| {name} | {_fmt(m['f1_presplit'], '.4f')} | {_fmt(m['f1_rawtext'], '.4f')} | {lat['p50']:.2f} | {lat['p95']:.2f} | {lat['p99']:.2f} "
            f"| {m['throughput_sps']:.0f} | {_fmt(m.get('cold_start_s'), '.2f')} | {_fmt(m.get('peak_rss_mb'), '.0f')} | {m['model_mb']:.1f} | {'yes' if m['imports_torch'] else 'no'} |"
        )
    if "pytorch" in systems:
        lines += ["", "Ratios to `pytorch` from the same run (latency, cold start, RSS, size: lower is better; throughput: higher is better):", ""]
        lines += ["| system | p50 | p95 | p99 | throughput | cold start | peak RSS | model size |", "|---|---|---|---|---|---|---|---|"]
        for name, m in systems.items():
            r = m["ratios_vs_pytorch"]
            lines.append(
                f"| {name} | {_fmt(r['latency_p50'], '.3f')} | {_fmt(r['latency_p95'], '.3f')} | {_fmt(r['latency_p99'], '.3f')} | {_fmt(r['throughput'], '.2f')}x "
                f"| {_fmt(r['cold_start'], '.3f')} | {_fmt(r['peak_rss'], '.3f')} | {_fmt(r['model_size'], '.3f')} |"
            )
    if data.get("skipped"):
        lines += ["", "Skipped systems:", ""] + [f"- `{k}`: {v}" for k, v in data["skipped"].items()]
    if data.get("targets"):
        lines += ["", f"Targets ({TARGETS_DOC}):", "", "| target | measured | limit | met |", "|---|---|---|---|"]
        for t in data["targets"]:
            sign = "<=" if t["kind"] == "max" else ">="
            met = "n/a" if t["met"] is None else ("yes" if t["met"] else "**no**")
            lines.append(f"| {t['target']} | {_fmt(t['value'], '.3f')} | {sign} {t['limit']:.3f} | {met} |")
    session = systems.get("session_int8")
    if session is not None:
        lines += ["", "`session_int8` is a bare onnxruntime session fed pre-tokenized, length-sorted batches: its raw-text F1 is n/a (it does no decoding) and its F1 is the graph's own, from first sub-words of sentences read alone."]
    if data.get("settings", {}).get("context") == "document":
        lines += ["", "The model was trained with document context: pre-split F1 reads every sentence with its document's neighbours, raw-text F1 reads whole documents (sentences joined with spaces); latency and throughput are per sentence."]
    return "\n".join(lines) + "\n"


def plot(data: dict[str, Any], path: Path) -> None:
    """Bar charts of p50 latency and throughput per system, F1 written on the bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    systems = data["systems"]
    names = list(systems)
    colors = ["#7f7f7f" if n == "pytorch" else "#1f77b4" if n.startswith("runtime") else "#ff7f0e" if n.startswith("optimum") else "#2ca02c" for n in names]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    p50 = [systems[n]["latency_ms"]["p50"] for n in names]
    sps = [systems[n]["throughput_sps"] for n in names]
    for axis, values, title, unit in ((left, p50, "single-sentence latency p50 (lower is better)", "ms"), (right, sps, "throughput at batch 32 (higher is better)", "sentences/s")):
        bars = axis.bar(names, values, color=colors)
        axis.set_title(title)
        axis.set_ylabel(unit)
        axis.tick_params(axis="x", rotation=20)
        for bar, name, value in zip(bars, names, values):
            f1 = systems[name]["f1_presplit"]
            label = f"{value:.1f}\nF1 {f1:.3f}" if f1 is not None else f"{value:.1f}"
            axis.annotate(label, (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", va="bottom", fontsize=8)
        axis.set_ylim(0, max(values) * 1.3)
    fig.suptitle(f"ner-export bench on {Path(data['dataset']['path']).name} ({data['dataset']['sentences']} sentences, {data['machine']['cpus_available']} CPUs)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
