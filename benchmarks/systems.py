"""The inference stacks the bench compares, behind one small interface, and their cold starts.

Each system answers the same three questions: tags of pre-split words (accuracy), entities of one
text (latency) and of a list of texts (throughput). `pytorch` and `optimum_int8` are transformers'
pipeline on the checkpoint and on the bundle's int8 graph; `runtime_*` are `NerModel` (`runtime_int8_openvino`
on its OpenVINO backend, the bundle's NNCF int8 IR, raw text in like every runtime row); `session_int8`
is a bare onnxruntime session fed pre-tokenized, length-sorted batches, the floor that the runtime's
own overhead is measured against, built with the runtime's session and padding code so that the two
differ only in what the runtime adds. Cold start runs a system's minimal script in a fresh process,
because import and load cost is what a restarted service pays; `session_int8`'s script is the
bare-library version on purpose, so it imports neither ner-export nor anything else.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from ner_export.runtime.casing import case_ids
from ner_export.runtime.errors import BenchMismatchError, ColdStartError
from ner_export.runtime.labels import to_iob2
from ner_export.runtime.manifest import BundleManifest
from ner_export.runtime.session import batch_inputs, create_session, load_tokenizer

from .peers import PEERS, missing_peer

__all__ = [
    "BARE",
    "COLD_STARTS",
    "SYSTEMS",
    "BareSystem",
    "RuntimeSystem",
    "System",
    "cold_start",
    "load_systems",
    "missing_openvino_backend",
]

SYSTEMS = (
    "pytorch",
    "optimum_int8",
    "runtime_fp32",
    "runtime_int8",
    "runtime_int8_dynamic",
    "runtime_int8_openvino",
    "session_int8",
    "openvino_int8",
    "ctranslate2_int8",
)
BARE = ("session_int8", "openvino_int8", "ctranslate2_int8")
"""Engines fed pre-tokenized batches: no tokenizing or decoding is timed, and they find no entities
(their batch-invariance is counted on each text's token labels instead)."""
_SESSION_MAX_TOKENS = 512  # session_int8 cuts longer inputs: it has no windowing
_SAME_MODEL = "bench a bundle against the checkpoint it was exported from"

Spans = list[tuple[str, int, int]]  # (label, start, end) character spans of one text's entities


class System:
    """One inference stack: how it tags pre-split words, one text, and a whole list of texts."""

    name: str
    model_files: list[Path]
    imports_torch: bool

    def presplit(self, words: list[list[str]], documents: list[int]) -> list[list[str]]:
        raise NotImplementedError

    def documents(self, texts: list[str]) -> list[Spans]:
        """Entities of whole documents (long texts), for a model trained with document context."""
        return self.batch(texts)

    def single(self, text: str, index: int) -> Any:
        raise NotImplementedError

    def prime(self, history: list[str]) -> None:
        """Let a system that keeps state across single calls see `history` first (none here)."""

    def forget(self) -> None:
        """Put that state back to what `prime` left (nothing here)."""

    def batch(self, texts: list[str]) -> list[Spans]:
        raise NotImplementedError

    def answers(self, texts: list[str], batch_size: int) -> list[Any]:
        """What the system answers for each text when `texts` go through it `batch_size` at a time, in
        order (entity spans; token labels for a bare engine): compared alone and in batches."""
        raise NotImplementedError


class _PipelineSystem(System):
    def __init__(
        self, name: str, model: Any, tokenizer: Any, files: list[Path], batch_size: int, context: tuple[str, int]
    ) -> None:
        from ner_export.finetune import ner_pipeline

        self.name, self.model_files, self.imports_torch = name, files, True
        self._model, self._tokenizer, self._batch_size = model, tokenizer, batch_size
        self._context, self._window = context
        self._pipe = ner_pipeline(model, tokenizer, aggregation_strategy="first", device="cpu")

    def presplit(self, words: list[list[str]], documents: list[int]) -> list[list[str]]:
        # the model's own word tagging, as in training: each word labelled by its first sub-word
        from ner_export.finetune import tag_words

        return tag_words(self._model, self._tokenizer, words, self._batch_size, self._window, self._context, documents)

    def documents(self, texts: list[str]) -> list[Spans]:
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

    def answers(self, texts: list[str], batch_size: int) -> list[Any]:
        return [
            [(e["entity_group"], int(e["start"]), int(e["end"])) for e in row]
            for row in self._pipe(texts, batch_size=batch_size)
        ]

    def batch(self, texts: list[str]) -> list[Spans]:
        results = self._pipe(texts, batch_size=self._batch_size)
        return [[(e["entity_group"], int(e["start"]), int(e["end"])) for e in row] for row in results]


class RuntimeSystem(System):
    def __init__(self, name: str, bundle: Path, precision: str, batch_size: int, backend: str = "onnxruntime") -> None:
        from ner_export.runtime import NerModel
        from ner_export.runtime.token_cache import ChunkTokenizer

        self.name, self.imports_torch, self.bundle = name, False, bundle
        self._model = NerModel.load(bundle, precision=precision, backend=backend)
        self._uncached = copy.copy(self._model)  # the same session and settings, no token cache
        self._uncached._chunk_tokens = ChunkTokenizer(
            self._model._tokenizer, casing=self._model.manifest.casing, capacity=0
        )
        self._primed: dict[str, Any] = {}
        graph = self._model.manifest.graph_for("cpu", precision, backend)
        self.model_files = [bundle / name for name in (graph.file, graph.weights) if name]
        self._batch_size = batch_size

    def presplit(self, words: list[list[str]], documents: list[int]) -> list[list[str]]:
        return self._model.predict_words(words, batch_size=self._batch_size, documents=documents)

    def single(self, text: str, index: int) -> Any:
        return self._model(text)

    def single_uncached(self, text: str) -> Any:
        """`single` without the token cache (`runtime.chunks`), on the same session."""
        return self._uncached(text)

    def prime(self, history: list[str]) -> None:
        """Fill the model's token cache from `history` (texts that are not timed), as a service that has
        answered them would have it, and keep that cache for `forget`."""
        tokens = self._model._chunk_tokens
        tokens.clear()
        for text in history:
            tokens(text)
        self._primed = tokens.snapshot()

    def forget(self) -> None:
        self._model._chunk_tokens.restore(self._primed)

    def run_session(self, feeds: dict[str, np.ndarray]) -> Any:
        """The model's own session run bare on pre-built feeds (`bench.paired_overhead`)."""
        return self._model._session.run(None, feeds)

    def batch(self, texts: list[str]) -> list[Spans]:
        rows = self._model.predict(texts, batch_size=self._batch_size)
        return [[(e.label, e.start, e.end) for e in row] for row in rows]

    def answers(self, texts: list[str], batch_size: int) -> list[Any]:
        rows = self._model.predict(texts, batch_size=batch_size)
        return [[(e.label, e.start, e.end) for e in row] for row in rows]


class BareSystem(System):
    """An engine fed pre-tokenized input: no tokenization or decoding is timed.

    `run_one(feeds)` and `run_many(list of feeds)` return logits. Inputs are tokenized once, with the
    runtime's tokenizer, special tokens and casing classes; batches are length-sorted.
    """

    def __init__(self, name: str, bundle: Path, texts: list[str], batch_size: int, model_files: list[Path]) -> None:
        self.name, self.imports_torch, self.model_files = name, False, model_files
        manifest = BundleManifest.read(bundle)
        self._tokenizer = load_tokenizer(bundle / manifest.tokenizer_file)
        self._labels = manifest.labels
        self._casing = manifest.casing
        self._pad_id = manifest.pad_token_id
        self._batch_size = batch_size
        rows = self._rows(texts)
        self._single = [self.feeds([row]) for row in rows]
        order = sorted(range(len(texts)), key=lambda i: len(rows[i][0]))
        self._batches = [
            self.feeds([rows[i] for i in order[s : s + batch_size]]) for s in range(0, len(order), batch_size)
        ]

    def run_one(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        raise NotImplementedError

    def run_many(self, batches: list[dict[str, np.ndarray]]) -> list[np.ndarray]:
        return [self.run_one(feeds) for feeds in batches]

    def _rows(self, texts: list[str]) -> list[tuple[list[int], list[int] | None]]:
        """(ids, casing classes or None) of each text, with special tokens (whose class is 0)."""
        cut = _SESSION_MAX_TOKENS
        encodings = self._tokenizer.encode_batch(texts)
        return [
            (e.ids[:cut], case_ids(text, e.offsets[:cut]) if self._casing else None)
            for text, e in zip(texts, encodings, strict=True)
        ]

    def feeds(self, rows: list[tuple[list[int], list[int] | None]]) -> dict[str, np.ndarray]:
        """Padded input_ids, attention_mask and token_type_ids of (ids, casing classes) rows."""
        types = [t or [] for _, t in rows] if self._casing else None
        return batch_inputs([ids for ids, _ in rows], pad_id=self._pad_id, types=types)

    def presplit(self, words: list[list[str]], documents: list[int]) -> list[list[str]]:
        # sentences alone, whatever the model was trained with: the bare graph's floor, not its best F1
        from ner_export.finetune import first_subword_mask

        cut = _SESSION_MAX_TOKENS
        out = []
        for start in range(0, len(words), self._batch_size):
            chunk = words[start : start + self._batch_size]
            encodings = self._tokenizer.encode_batch(chunk, is_pretokenized=True)
            rows = [
                (e.ids[:cut], case_ids(w, e.offsets[:cut], e.word_ids[:cut]) if self._casing else None)
                for e, w in zip(encodings, chunk, strict=True)
            ]
            logits = self.run_one(self.feeds(rows))
            for row, encoding, row_words in zip(logits.argmax(-1), encodings, chunk, strict=True):
                tags = ["O"] * len(row_words)
                word_ids = encoding.word_ids[:cut]
                for token, (word, first) in enumerate(zip(word_ids, first_subword_mask(word_ids), strict=True)):
                    if first:
                        tags[word] = self._labels[int(row[token])]
                out.append(to_iob2(tags))
        return out

    def single(self, text: str, index: int) -> Any:
        return self.run_one(self._single[index])

    def single_feeds(self, index: int) -> dict[str, np.ndarray]:
        """The pre-built feeds of text `index` alone (what `single` runs)."""
        return self._single[index]

    def batch(self, texts: list[str]) -> list[Spans]:
        self.run_many(self._batches)
        return []

    def answers(self, texts: list[str], batch_size: int) -> list[Any]:
        rows = self._rows(texts)
        chunks = [rows[s : s + batch_size] for s in range(0, len(rows), batch_size)]
        out: list[Any] = []
        for chunk, logits in zip(chunks, self.run_many([self.feeds(c) for c in chunks]), strict=True):
            out += [tuple(row[: len(ids)].argmax(-1).tolist()) for row, (ids, _) in zip(logits, chunk, strict=True)]
        return out


class _SessionSystem(BareSystem):
    """A bare onnxruntime session on the bundle's int8 graph, built with the runtime's session code."""

    def __init__(self, bundle: Path, texts: list[str], batch_size: int) -> None:
        graph = bundle / BundleManifest.read(bundle).graph_for("cpu", "int8").file
        self._session = create_session(graph)
        super().__init__("session_int8", bundle, texts, batch_size, [graph])

    def run_one(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        logits: np.ndarray = self._session.run(None, feeds)[0]
        return logits


class _OpenVinoSystem(BareSystem):
    def __init__(self, bundle: Path, checkpoint: Path, texts: list[str], batch_size: int) -> None:
        from .peers import OpenVinoInt8, calibration_words

        manifest = BundleManifest.read(bundle)
        fp32 = bundle / manifest.graph_for("cpu", "fp32").file
        super().__init__("openvino_int8", bundle, texts, batch_size, [fp32])
        rows = self._word_rows(calibration_words(checkpoint), manifest.max_length)
        calibration = [self.feeds([row]) for row in rows]
        self._engine = OpenVinoInt8(fp32, calibration)

    def _word_rows(self, words: list[list[str]], cut: int) -> list[tuple[list[int], list[int] | None]]:
        encodings = self._tokenizer.encode_batch(words, is_pretokenized=True)
        return [
            (e.ids[:cut], case_ids(w, e.offsets[:cut], e.word_ids[:cut]) if self._casing else None)
            for e, w in zip(encodings, words, strict=True)
        ]

    def run_one(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        return self._engine.run_one(feeds)

    def run_many(self, batches: list[dict[str, np.ndarray]]) -> list[np.ndarray]:
        return self._engine.run_many(batches)


class _CTranslate2System(BareSystem):
    def __init__(self, bundle: Path, checkpoint: Path, texts: list[str], batch_size: int, workdir: Path) -> None:
        from .peers import CTranslate2Int8

        self._engine = CTranslate2Int8(checkpoint, workdir)
        super().__init__("ctranslate2_int8", bundle, texts, batch_size, sorted((workdir / "ctranslate2").glob("*.bin")))

    def run_one(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        return self._engine.run(feeds)


def _dynamic_bundle(bundle: Path, workdir: Path) -> Path:
    """A copy of `bundle` whose int8 graph keeps per-batch activation scales (its settings otherwise)."""
    import shutil
    from dataclasses import replace

    from ner_export.export import Int8Config, quantize_graph
    from ner_export.runtime.manifest import GraphSpec, sha256_file

    manifest = BundleManifest.read(bundle)
    fp32 = manifest.graph_for("cpu", "fp32")
    record = manifest.graph_for("cpu", "int8").quantization
    config = Int8Config(
        name="dynamic",
        per_channel=bool(record.get("per_channel", True)),
        reduce_range=bool(record.get("reduce_range", False)),
        activations="dynamic",
        embeddings=str(record.get("embeddings", "per-row")),
        nodes_to_exclude=tuple(record.get("nodes_to_exclude", ())),
    )
    out = workdir / "dynamic-bundle"
    out.mkdir(parents=True)
    for name in (manifest.tokenizer_file, fp32.file, "config.json"):
        if (bundle / name).is_file():
            shutil.copyfile(bundle / name, out / name)
    quantization = quantize_graph(bundle / fp32.file, out / "model_int8.onnx", config)
    files = {name: sha256_file(out / name) for name in sorted(p.name for p in out.iterdir())}
    graphs = (GraphSpec("model_int8.onnx", "cpu", "int8", quantization, batch_invariant=False), fp32)
    replace(manifest, graphs=graphs, files=files).write(out)
    return out


def load_systems(
    bundle: Path,
    checkpoint: Path,
    wanted: tuple[str, ...],
    texts: list[str],
    batch_size: int,
    skipped: dict[str, str],
    workdir: Path,
) -> list[System]:
    """The `wanted` systems, ready to run; those that cannot run here are named in `skipped` with why.

    `workdir` holds what some systems build for themselves (the dynamic int8 graph, converted peers)
    and must outlive them.
    BenchMismatchError when the checkpoint and the bundle are not the same model (labels, casing, context).
    """
    from ner_export.finetune import checkpoint_casing, checkpoint_context, load_checkpoint, load_config

    unknown = sorted(set(wanted) - set(SYSTEMS))
    if unknown:
        raise ValueError(f"unknown system(s) {', '.join(unknown)}; choose from {', '.join(SYSTEMS)}")
    manifest = BundleManifest.read(bundle)
    model, tokenizer = load_checkpoint(str(checkpoint))
    checkpoint_labels = tuple(model.config.id2label[i] for i in range(len(model.config.id2label)))
    if checkpoint_labels != manifest.labels:
        raise BenchMismatchError(
            f"{checkpoint} has labels {list(checkpoint_labels)} but the bundle {bundle} has {list(manifest.labels)}; "
            + _SAME_MODEL
        )
    context = checkpoint_context(model.config)
    casing = checkpoint_casing(model.config)
    if casing != manifest.casing:
        raise BenchMismatchError(
            f"{checkpoint} was trained {'with' if casing else 'without'} casing but the bundle {bundle} "
            f"says casing={manifest.casing}; " + _SAME_MODEL
        )
    if context[0] != manifest.context:
        raise BenchMismatchError(
            f"{checkpoint} was trained with context {context[0]!r} but the bundle {bundle} says "
            f"{manifest.context!r}; " + _SAME_MODEL
        )
    weights = [p for p in (checkpoint / "model.safetensors", checkpoint / "pytorch_model.bin") if p.is_file()]
    systems: list[System] = []
    for name in wanted:
        if name == "pytorch":
            systems.append(_PipelineSystem("pytorch", model, tokenizer, weights, batch_size, context))
        elif name == "optimum_int8":
            try:
                from optimum.onnxruntime import ORTModelForTokenClassification
            except ImportError:
                skipped[name] = "Optimum with ONNX Runtime is not installed (pip install 'ner-export[export]')"
                continue
            graph = manifest.graph_for("cpu", "int8").file
            ort_model = ORTModelForTokenClassification.from_pretrained(
                bundle, config=load_config(bundle), file_name=graph, local_files_only=True
            )  # the config resolved: a casing bundle's config.json is marked so that stock loaders refuse it
            systems.append(_PipelineSystem(name, ort_model, tokenizer, [bundle / graph], batch_size, context))
        elif name == "runtime_fp32":
            if not _has_fp32(manifest):
                skipped[name] = "the bundle has no fp32 graph (exported with --no-fp32)"
                continue
            systems.append(RuntimeSystem(name, bundle, "fp32", batch_size))
        elif name == "runtime_int8":
            systems.append(RuntimeSystem(name, bundle, "int8", batch_size))
        elif name == "runtime_int8_dynamic":
            if not _has_fp32(manifest):
                skipped[name] = "the bundle has no fp32 graph to quantize dynamically (exported with --no-fp32)"
                continue
            systems.append(RuntimeSystem(name, _dynamic_bundle(bundle, workdir), "int8", batch_size))
        elif name == "runtime_int8_openvino":
            why = missing_openvino_backend(manifest)
            if why:
                skipped[name] = why
                continue
            systems.append(RuntimeSystem(name, bundle, "int8", batch_size, backend="openvino"))
        elif name == "session_int8":
            systems.append(_SessionSystem(bundle, texts, batch_size))
        elif name in PEERS:
            why = missing_peer(name) or (None if _has_fp32(manifest) else "the bundle has no fp32 graph")
            if why:
                skipped[name] = why
                continue
            if name == "openvino_int8":
                systems.append(_OpenVinoSystem(bundle, checkpoint, texts, batch_size))
            else:
                systems.append(_CTranslate2System(bundle, checkpoint, texts, batch_size, workdir))
    return systems


def missing_openvino_backend(manifest: BundleManifest) -> str | None:
    """Why `runtime_int8_openvino` cannot run on this bundle here, or None."""
    import importlib.util

    if not any(g.backend == "openvino" for g in manifest.graphs):
        recorded = manifest.validation.get("openvino", {})
        why = f": {recorded['reason']}" if isinstance(recorded, dict) and recorded.get("reason") else ""
        return f"the bundle has no OpenVINO graph{why} (export with ner-export[openvino] installed)"
    if importlib.util.find_spec("openvino") is None:
        return "the Python package 'openvino' is not installed (pip install 'ner-export[openvino]')"
    return None


def _has_fp32(manifest: BundleManifest) -> bool:
    return any(g.device == "cpu" and g.precision == "fp32" for g in manifest.graphs)


COLD_STARTS = {
    "pytorch": (
        "from ner_export.finetune import ner_pipeline\n"
        "p = ner_pipeline({checkpoint!r}, aggregation_strategy='first', device='cpu')\n"
        "p({text!r})\n"
    ),
    "optimum_int8": (
        "from optimum.onnxruntime import ORTModelForTokenClassification\n"
        "from transformers import AutoTokenizer\n"
        "from ner_export.finetune import load_config, ner_pipeline\n"
        "m = ORTModelForTokenClassification.from_pretrained("
        "{bundle!r}, config=load_config({bundle!r}), file_name='model_int8.onnx', local_files_only=True)\n"
        "p = ner_pipeline(m, AutoTokenizer.from_pretrained({checkpoint!r}),"
        " aggregation_strategy='first', device='cpu')\n"
        "p({text!r})\n"
    ),
    "runtime_fp32": "from ner_export.runtime import NerModel\nNerModel.load({bundle!r}, precision='fp32')({text!r})\n",
    "runtime_int8": "from ner_export.runtime import NerModel\nNerModel.load({bundle!r})({text!r})\n",
    "runtime_int8_openvino": (
        "from ner_export.runtime import NerModel\nNerModel.load({bundle!r}, backend='openvino')({text!r})\n"
    ),
    "session_int8": (
        "import numpy as np, onnxruntime as ort\n"
        "from tokenizers import Tokenizer\n"
        "t = Tokenizer.from_file({bundle!r} + '/tokenizer.json')\n"
        "s = ort.InferenceSession({bundle!r} + '/model_int8.onnx', providers=['CPUExecutionProvider'])\n"
        "ids = np.asarray([t.encode({text!r}).ids], dtype=np.int64)\n"
        "s.run(None, {{'input_ids': ids, 'attention_mask': np.ones_like(ids), 'token_type_ids': np.zeros_like(ids)}})\n"
    ),
}
"""The script each system runs in a fresh process: imports, load, and one prediction. Systems without one
(the dynamic variant built in a temporary folder, the peers, whose start includes NNCF quantization or
a conversion) report no cold start."""

# VmHWM, not getrusage: Linux carries ru_maxrss over from the forking parent across exec.
_COLD_START_TAIL = (
    "import sys, json\n"
    "hwm = next(l for l in open('/proc/self/status') if l.startswith('VmHWM:'))\n"
    "print(json.dumps({{'peak_rss_mb': int(hwm.split()[1]) / 1024, 'imports_torch': 'torch' in sys.modules}}))\n"
)


def cold_start(system: str, bundle: Path, checkpoint: Path, text: str) -> dict[str, Any]:
    """Seconds from process start to the first prediction, peak RSS (MB) and whether torch was imported."""
    code = COLD_STARTS[system].format(bundle=str(bundle), checkpoint=str(checkpoint), text=text)
    code += _COLD_START_TAIL.format()
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        why = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else done.returncode
        raise ColdStartError(f"cold start of {system} failed: {why}")
    info = json.loads(done.stdout.strip().splitlines()[-1])
    return {"cold_start_s": seconds, **info}
