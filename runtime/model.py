"""`NerModel`: a bundle loaded for inference with onnxruntime (or OpenVINO), tokenizers and numpy only.

Design: the tokenizer runs once per call over the whole batch (tokenizers' Rust batch encoder), each
text is cut into overlapping token windows of the bundle's max_length so nothing is truncated, the
windows are sorted by length and packed into padded batches under a size and token budget, and every
token takes its scores from the window where it sits furthest from an edge. Decoding is numpy over
arrays (see `decoding`); offsets come from the tokenizer, so `text[start:end] == entity.text` holds
by construction. No torch, no transformers: a service that embeds this pays only for what it runs.

A lone text that fits one window skips that planning (`_lone`). When the graph carries the decoding
columns (`decoding.DECODED_OUTPUT`), the default decoding reads each token's argmax label and score
from the run instead of computing them in numpy, on every path alike, and a lone text's tokens come
from a cache of its space-separated chunks (`token_cache`): on one sentence the runtime's own work is about
10% of the call (benchmarks/PERFORMANCE.md), and right after a graph run each small Python or numpy
step costs several times its tight-loop time.

A loaded model holds no per-call state, and onnxruntime sessions accept concurrent `run` calls, so
one instance can serve many threads. `backend="openvino"` runs the bundle's OpenVINO IR instead,
through an adapter with the same calls (`openvino_backend`): everything else is this module's code.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from tokenizers import Encoding, Tokenizer

from .casing import case_ids
from .context import default_stride, pack_with_context, plan_windows
from .decoding import (
    DECODED_COLUMNS,
    DECODED_OUTPUT,
    STRATEGIES,
    WORD_SPLITS,
    LabelSpace,
    aggregate_words,
    constrained_labels,
    decoding_transitions,
    extend_initial,
    group_words,
    pipeline_word_starts,
    same_kind_matrix,
    sequence_allowed,
    softmax,
    text_word_spans,
    text_words,
)
from .errors import BundleError, InputError
from .labels import is_iob_label_set, to_iob2
from .machine import available_cpus
from .manifest import BACKENDS, DEVICES, BundleManifest
from .session import Row, batch_inputs, check_graph, create_session, load_tokenizer, one_row_inputs
from .texts import lone_surrogate
from .token_cache import ChunkTokenizer

__all__ = ["Entity", "NerModel", "auto_streams", "available_cpus"]

_Runner = Callable[[list[np.ndarray], int, "list[np.ndarray] | None"], np.ndarray]
"""Runs one padded batch (token id rows, width, token type rows) and returns its logits."""


@dataclass(frozen=True)
class Entity:
    """One entity found in a text; `text == source[start:end]` (character offsets)."""

    text: str
    label: str
    start: int
    end: int
    score: float

    def to_dict(self) -> dict[str, Any]:
        return {"text": self.text, "label": self.label, "start": self.start, "end": self.end, "score": self.score}


def _unencodable(text: str) -> str | None:
    """What makes `text` impossible to tokenize (a lone surrogate), or None when it is fine."""
    at = lone_surrogate(text)
    if at is None:
        return None
    return (
        f"a lone surrogate U+{ord(text[at]):04X} at character {at}, which is not text and cannot "
        "be encoded (bytes that were not valid UTF-8, decoded with errors='surrogateescape', look like this)"
    )


def _check_texts(texts: Any, what: str) -> None:
    if isinstance(texts, (str, bytes)) or not isinstance(texts, Sequence):
        raise TypeError(f"{what} takes a list of texts, got {type(texts).__name__}; for a single text call model(text)")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"{what}: item {i} is {type(text).__name__}, expected str")
        problem = _unencodable(text)
        if problem:
            raise InputError(f"{what}: text {i} has {problem}")


def _check_batch_size(batch_size: Any) -> None:
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r} must be a positive integer")


def _check_word_lists(word_lists: Any) -> None:
    if isinstance(word_lists, (str, bytes)) or not isinstance(word_lists, Sequence):
        raise TypeError(f"predict_words takes a list of word lists, got {type(word_lists).__name__}")
    for i, words in enumerate(word_lists):
        if isinstance(words, (str, bytes)) or not isinstance(words, Sequence):
            raise TypeError(f"predict_words: item {i} is {type(words).__name__}, expected a list of str")
        for j, word in enumerate(words):
            if not isinstance(word, str):
                raise TypeError(f"predict_words: item {i}, word {j} is {type(word).__name__}, expected str")
            problem = _unencodable(word)
            if problem:
                raise InputError(f"predict_words: item {i}, word {j} has {problem}")


class _Streams:
    """`count` concurrent runs of one graph: one extra session, made on first use, whose small intra-op
    pool each run uses alone (OpenVINO: a model compiled with `count` streams), and the threads that
    call it (onnxruntime and OpenVINO release the GIL)."""

    def __init__(self, count: int, make_session: Callable[[], Any]) -> None:
        self.count = count
        self._make_session = make_session
        self._session: Any = None
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    @property
    def session(self) -> Any:
        if self._session is None:
            with self._lock:
                if self._session is None:
                    self._session = self._make_session()
        return self._session

    def pool(self) -> ThreadPoolExecutor:
        self.session  # noqa: B018 - build the session before the threads race for it
        if self._executor is None:
            with self._lock:
                if self._executor is None:
                    self._executor = ThreadPoolExecutor(self.count, thread_name_prefix="ner-export-stream")
        return self._executor


def auto_streams(threads: int, device: str = "cpu") -> int:
    """How many streams `NerModel.load(streams=None)` runs large inputs on: one per thread on CPU
    (measured fastest on 2 cores; benchmarks/PERFORMANCE.md), one on CUDA."""
    return max(1, threads) if device == "cpu" else 1


class NerModel:
    """A bundle ready for inference. Build it with `NerModel.load(bundle_dir)`."""

    def __init__(
        self,
        session: Any,
        tokenizer: Tokenizer,
        manifest: BundleManifest,
        *,
        device: str,
        precision: str,
        aggregation: str = "first",
        word_split: str = "text",
        decoding: str = "constrained",
        stride: int | None = None,
        token_budget: int = 16384,
        io_binding: bool = False,
        pad_multiple: int = 1,
        streams: int = 1,
        stream_session: Callable[[], Any] | None = None,
        backend: str = "onnxruntime",
        token_cache: int = 16384,
    ) -> None:
        if backend not in BACKENDS:
            raise ValueError(f"backend={backend!r} is not one of {', '.join(BACKENDS)}")
        if backend == "openvino" and io_binding:
            raise ValueError("io_binding is onnxruntime's; the openvino backend has none")
        if not isinstance(streams, int) or streams < 1:
            raise ValueError(f"streams={streams!r} must be a positive integer")
        if streams > 1 and stream_session is None:
            raise ValueError("streams > 1 needs stream_session, a function that builds the streams' session")
        if not isinstance(pad_multiple, int) or pad_multiple < 1:
            raise ValueError(f"pad_multiple={pad_multiple!r} must be a positive integer")
        if aggregation not in STRATEGIES:
            raise ValueError(f"aggregation={aggregation!r} is not one of {', '.join(STRATEGIES)}")
        if not isinstance(token_budget, int) or token_budget < 1:
            raise ValueError(f"token_budget={token_budget!r} must be a positive integer")
        if word_split not in WORD_SPLITS:
            raise ValueError(f"word_split={word_split!r} is not one of {', '.join(WORD_SPLITS)}")
        self.manifest = manifest
        self._graph = manifest.graph_for(device, precision, backend)
        self.backend = backend
        self.device = device
        self.precision = precision
        self.aggregation = aggregation
        self.word_split = word_split
        self.decoding = decoding
        self.token_budget = token_budget
        self.io_binding = io_binding
        self.pad_multiple = pad_multiple
        self._session = session
        self._streams = _Streams(streams, stream_session) if streams > 1 and stream_session is not None else None
        self.streams = streams
        self._tokenizer = tokenizer
        # a lone text's tokens, casing classes and words, from cached space-separated chunks (token_cache.py)
        self._chunk_tokens = ChunkTokenizer(tokenizer, casing=manifest.casing, capacity=token_cache)
        self._space = LabelSpace.from_labels(manifest.labels)
        self._input_names = {i.name for i in session.get_inputs()}
        self._token_types = "token_type_ids" in self._input_names
        self._output_name = session.get_outputs()[0].name
        unk_token = getattr(tokenizer.model, "unk_token", None) or "[UNK]"
        unk_id = tokenizer.token_to_id(unk_token)
        self._unk_id = -1 if unk_id is None else unk_id
        self._prefix, self._suffix = self._special_tokens(tokenizer)
        self._window = manifest.max_length - len(self._prefix) - len(self._suffix)
        if self._window < 2:
            raise BundleError(f"max_length {manifest.max_length} leaves no room for text between special tokens")
        self.stride = default_stride(self._window, manifest.context) if stride is None else stride
        if not 0 <= self.stride <= self._window // 2:
            raise ValueError(f"stride={stride} must be between 0 and {self._window // 2} (half a window)")
        self._iob2 = is_iob_label_set(manifest.labels)
        self._allowed = decoding_transitions(manifest.labels, decoding)
        # constrained decoding scores a word by its entity type, not its possibly repaired label (decoding.py)
        self._same_kind = same_kind_matrix(self._space) if self._allowed is not None else None
        self._allowed_rows: list[list[bool]] = [] if self._allowed is None else self._allowed.tolist()
        # the graph's own decoding columns after the logits (export/decoding_outputs.py), on plain runs
        self._decoded = (
            backend == "onnxruntime" and not io_binding and any(o.name == DECODED_OUTPUT for o in session.get_outputs())
        )
        # which column after the logits holds a word's score: its entity type's probability or its label's
        self._chance_column = DECODED_COLUMNS.index("kind_chance" if self._same_kind is not None else "label_chance")

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(
        cls,
        bundle_dir: str | os.PathLike[str],
        device: str = "cpu",
        threads: int | None = None,
        *,
        precision: str | None = None,
        aggregation: str = "first",
        word_split: str = "text",
        decoding: str = "constrained",
        stride: int | None = None,
        token_budget: int = 16384,
        io_binding: bool | None = None,
        pad_multiple: int | None = None,
        streams: int | None = None,
        session_config: Mapping[str, str] | None = None,
        backend: str = "onnxruntime",
        verify: bool = True,
        token_cache: int = 16384,
    ) -> NerModel:
        """Load a bundle directory.

        device: "cpu" (int8 graph by default) or "cuda" (needs onnxruntime-gpu; never falls back).
        threads: intra-op threads; default the CPUs this process may use. In a multi-worker server,
            give each worker `available_cpus() // workers`.
        precision: pick a graph other than the device's default (e.g. "fp32" on cpu).
        aggregation: "first" (default), "average", "max" or "simple", as in transformers' pipeline.
        word_split: "text" (whitespace chunks, default) or "pipeline" (transformers' word boundaries).
        decoding: "constrained" (default: the most probable label sequence IOB2 allows) or "argmax"
            (each word's best label on its own, as transformers' pipeline does).
        stride: tokens shared by neighbouring windows of a long text (default: a quarter window, half
            a window for a model trained with document context).
        token_budget: most padded tokens in one batch sent to onnxruntime.
        io_binding: run through onnxruntime's IO binding, the output left on the device until copied
            once (default: on for cuda, off for cpu, where it only adds calls).
        pad_multiple: pad batch widths up to a multiple of this, so a GPU sees few distinct shapes and
            reuses its kernels and allocations (default: 16 on cuda, 1 on cpu).
        streams: for inputs of many batches, run this many batches at once, each on `threads // streams`
            threads (default `auto_streams`: one per thread on CPU); results are the same as with 1.
            A single text or batch always takes the plain path, on all `threads`.
        session_config: onnxruntime session configuration entries for every session of the model, e.g.
            `{"session.force_spinning_stop": "1"}` where other work shares the CPUs (a server's event
            loop): pool threads spin inside a run and sleep once it returns, instead of spinning on.
        backend: "onnxruntime" (default) or "openvino": the bundle's NNCF int8 OpenVINO IR, exported when
            the `openvino` extra was installed; CPU only. Same outputs contract, only the logits differ.
            MissingDependencyError without openvino, BundleError when the bundle has no OpenVINO graph.
        verify: check every file the model needs against the manifest's sha256 first.
        token_cache: space-separated chunks whose tokens are kept for single texts (0: none); a lone
            text of known chunks skips the tokenizer, with the same tokens (`token_cache`).
        """
        if device not in DEVICES:
            raise ValueError(f"device={device!r} is not one of {', '.join(DEVICES)}")
        if threads is not None and (not isinstance(threads, int) or threads < 1):
            raise ValueError(f"threads={threads!r} must be a positive integer or None")
        if streams is not None and (not isinstance(streams, int) or streams < 1):
            raise ValueError(f"streams={streams!r} must be a positive integer or None")
        if backend not in BACKENDS:
            raise ValueError(f"backend={backend!r} is not one of {', '.join(BACKENDS)}")
        if backend == "openvino" and device != "cpu":
            raise ValueError(f"backend='openvino' runs on cpu only, not device={device!r}")
        if backend == "openvino" and session_config:
            raise ValueError("session_config holds onnxruntime session entries; the openvino backend takes none")
        bundle = Path(bundle_dir)
        manifest = BundleManifest.read(bundle)
        graph = manifest.graph_for(device, precision, backend)
        check = manifest.verify_file if verify else (lambda d, name: Path(d) / name)
        graph_path = check(bundle, graph.file)
        tokenizer = load_tokenizer(check(bundle, manifest.tokenizer_file), manifest.vocab_size)
        cpus = threads or available_cpus()
        count = auto_streams(cpus, device) if streams is None else streams
        per_stream = max(1, cpus // count)
        make_stream_session: Callable[[], Any]
        if backend == "openvino":
            from .openvino_backend import create_openvino_session, import_openvino

            import_openvino()  # a missing extra is named before the graph files are hashed
            weights = check(bundle, graph.weights)
            recorded = graph.quantization.get("inference_precision")
            session = create_openvino_session(graph_path, weights, threads=threads, precision=recorded)

            def make_stream_session() -> Any:
                return create_openvino_session(graph_path, weights, threads=cpus, streams=count, precision=recorded)

        else:
            session = create_session(graph_path, device=device, threads=threads, config_entries=session_config)

            def make_stream_session() -> Any:
                return create_session(graph_path, device=device, threads=per_stream, config_entries=session_config)

        check_graph(session, manifest, graph_path)
        return cls(
            session,
            tokenizer,
            manifest,
            device=device,
            precision=graph.precision,
            aggregation=aggregation,
            word_split=word_split,
            decoding=decoding,
            stride=stride,
            token_budget=token_budget,
            io_binding=device == "cuda" if io_binding is None else io_binding,
            pad_multiple=(16 if device == "cuda" else 1) if pad_multiple is None else pad_multiple,
            streams=count,
            stream_session=make_stream_session,
            backend=backend,
            token_cache=token_cache,
        )

    @staticmethod
    def _special_tokens(tokenizer: Tokenizer) -> tuple[list[int], list[int]]:
        """The ids the tokenizer's post-processor puts before and after a single sequence."""
        bare = tokenizer.encode("a", add_special_tokens=False).ids
        full = tokenizer.encode("a", add_special_tokens=True).ids
        for k in range(len(full) - len(bare) + 1):
            if full[k : k + len(bare)] == bare:
                return full[:k], full[k + len(bare) :]
        return [], []

    @property
    def labels(self) -> tuple[str, ...]:
        return self.manifest.labels

    @property
    def batch_invariant(self) -> bool:
        """True when a text's entities never depend on the other texts sharing its batch (see README)."""
        return self._graph.batch_invariant

    @property
    def entity_types(self) -> tuple[str, ...]:
        return tuple(k for k in self._space.kinds if k != "O")

    def __repr__(self) -> str:
        backend = f", backend={self.backend!r}" if self.backend != "onnxruntime" else ""
        return f"NerModel(device={self.device!r}, precision={self.precision!r}{backend}, labels={len(self.labels)})"

    # ------------------------------------------------------------------ inference
    def __call__(self, text: str) -> list[Entity]:
        """Entities of one text."""
        if not isinstance(text, str):
            raise TypeError(f"NerModel() takes a str, got {type(text).__name__}")
        problem = _unencodable(text)
        if problem:
            raise InputError(f"NerModel(): text 0 has {problem}")
        return self._predict([text], 32, self._strategy(None), stream=False)[0]

    def predict(
        self, texts: Sequence[str], batch_size: int = 32, aggregation: str | None = None, *, stream: bool = False
    ) -> list[list[Entity]]:
        """Entities for each text, in input order.

        stream: run this call's batches one after the other on a single stream (the calling thread, with
            the threads of one stream) instead of the whole model. For callers that make up to `streams`
            calls at once from threads of their own (a server's batch workers), so that each call uses
            its share of the CPUs; results are the same either way. With one stream it changes nothing.
        """
        _check_texts(texts, "predict")
        _check_batch_size(batch_size)
        return self._predict(texts, batch_size, self._strategy(aggregation), stream=stream)

    def _predict(self, texts: Sequence[str], batch_size: int, strategy: str, *, stream: bool) -> list[list[Entity]]:
        """`predict` of checked arguments."""
        if len(texts) == 1 and not stream:
            lone = self._lone(texts[0], strategy)
            if lone is not None:
                return [lone]
        encodings = self._encode(list(texts))
        types = (
            [case_ids(text, enc.offsets) for text, enc in zip(texts, encodings, strict=True)]
            if self.manifest.casing
            else None
        )
        first_of_words = self._first_of_text_words(strategy)
        decoded = self._decoded and first_of_words
        run = partial(self._run_stream, decoded=decoded) if stream and self._streams is not None else None
        token_logits = self._token_logits(encodings, batch_size, types, run, decoded)
        if not first_of_words:
            return [
                self._entities(text, enc, logits, strategy)
                for text, enc, logits in zip(texts, encodings, token_logits, strict=True)
            ]
        return [
            self._entities_first(text, enc.offsets, text_word_spans(text, enc.offsets), logits)
            for text, enc, logits in zip(texts, encodings, token_logits, strict=True)
        ]

    def _lone(self, text: str, strategy: str) -> list[Entity] | None:
        """Entities of one text that fits a single window, or None to take the general path.

        The same batch (`_run` on one row) and decoding as `predict([text])`, without its planning of
        windows and batches: a lone call is where the runtime's own work shows next to the graph's, and
        after a run has filled the caches every Python step costs several times its tight-loop cost.
        """
        if not self._first_of_text_words(strategy):
            enc = self._tokenizer.encode(text, add_special_tokens=False)
            ids = enc.ids
            if not ids or len(ids) > self._window:
                return None
            types = [case_ids(text, enc.offsets)] if self.manifest.casing else None
            width = len(self._prefix) + len(ids) + len(self._suffix)
            logits = self._run([ids], width, types)[0, len(self._prefix) : len(self._prefix) + len(ids)]
            return self._entities(text, enc, logits, strategy)
        tokens = self._chunk_tokens(text)
        ids = tokens.ids
        if not ids or len(ids) > self._window:
            return None
        if self.pad_multiple == 1:
            feeds = one_row_inputs(ids, self._prefix, self._suffix, tokens.classes, self._token_types)
        else:
            types = None if tokens.classes is None else [tokens.classes]
            feeds = self._feeds([ids], len(self._prefix) + len(ids) + len(self._suffix), types)
        head = len(self._prefix)
        scores = self._run_feeds(feeds, decoded=self._decoded)[0, head : head + len(ids)]
        return self._entities_first(text, tokens.offsets, tokens.words, scores)

    def predict_words(
        self,
        word_lists: Sequence[Sequence[str]],
        batch_size: int = 32,
        aggregation: str | None = None,
        documents: Sequence[int] | None = None,
    ) -> list[list[str]]:
        """One IOB2 tag per input word (for evaluation on pre-split data), in input order.

        A bundle trained with document context (`manifest.context == "document"`) reads each sentence
        together with its neighbours, as in training: `documents` gives each sentence's document id
        (sentences of one document consecutive); None treats the whole list as one document. A bundle
        trained without context reads every sentence alone and ignores `documents`.
        """
        _check_word_lists(word_lists)
        strategy = self._strategy(aggregation)
        if strategy == "simple":
            strategy = "first"  # a word needs one label; "simple" has no word notion
        words = [list(w) for w in word_lists]
        encodings, token_scores = self._word_scores(words, batch_size, documents)
        return [
            self._word_tags(len(w), enc, s, strategy) for w, enc, s in zip(words, encodings, token_scores, strict=True)
        ]

    def graph_inputs(
        self, word_lists: Sequence[Sequence[str]], documents: Sequence[int] | None = None
    ) -> list[dict[str, np.ndarray]]:
        """The graph inputs `predict_words(word_lists, batch_size=1, documents=documents)` runs, one
        window per entry and so without padding.

        What the model sees, exactly (special tokens, casing, document context, long-sentence
        windows): the export calibrates static int8 activation scales on it.
        """
        _check_word_lists(word_lists)
        feeds: list[dict[str, np.ndarray]] = []

        def record(rows: list[np.ndarray], width: int, types: list[np.ndarray] | None) -> np.ndarray:
            feeds.append(self._feeds(rows, width, types))
            return np.zeros((len(rows), width, len(self.labels)), dtype=np.float32)

        self._word_scores([list(w) for w in word_lists], 1, documents, run=record)
        return feeds

    def _word_scores(
        self, words: list[list[str]], batch_size: int, documents: Sequence[int] | None, run: _Runner | None = None
    ) -> tuple[list[Encoding], list[np.ndarray]]:
        """(encoding, token probabilities) of each pre-split sentence, read as `predict_words` reads it."""
        if documents is not None and len(documents) != len(words):
            raise ValueError(f"predict_words: {len(words)} sentences but {len(documents)} document ids")
        encodings = self._encode(words, is_pretokenized=True)
        types = (
            [case_ids(w, enc.offsets, enc.word_ids) for w, enc in zip(words, encodings, strict=True)]
            if self.manifest.casing
            else None
        )
        if self.manifest.context == "document":
            return encodings, self._context_scores(encodings, documents, batch_size, types, run)
        return encodings, [softmax(rows) for rows in self._token_logits(encodings, batch_size, types, run)]

    def _encode(self, inputs: list[Any], is_pretokenized: bool = False) -> list[Encoding]:
        # a single input skips the batch encoder's thread pool, whose wake-up costs more than the work
        if len(inputs) == 1:
            return [self._tokenizer.encode(inputs[0], is_pretokenized=is_pretokenized, add_special_tokens=False)]
        return (
            self._tokenizer.encode_batch(inputs, is_pretokenized=is_pretokenized, add_special_tokens=False)
            if inputs
            else []
        )

    def _strategy(self, aggregation: str | None) -> str:
        strategy = self.aggregation if aggregation is None else aggregation
        if strategy not in STRATEGIES:
            raise ValueError(f"aggregation={strategy!r} is not one of {', '.join(STRATEGIES)}")
        return strategy

    def logits(
        self, encodings: Sequence[Encoding], batch_size: int = 32, types: Sequence[Sequence[int]] | None = None
    ) -> list[np.ndarray]:
        """Raw per-token logits (tokens x labels) of encodings made without special tokens.

        A bundle trained with casing (`manifest.casing`) needs each encoding's token types, its
        `ner_export.runtime.casing.case_ids`; they cannot be recovered from the encoding alone.
        """
        if self.manifest.casing and types is None:
            raise ValueError(
                "this bundle was trained with casing: pass types=[case_ids(text, enc.offsets), ...] "
                "(ner_export.runtime.casing)"
            )
        return self._token_logits(encodings, batch_size, types)

    def _token_logits(
        self,
        encodings: Sequence[Encoding],
        batch_size: int,
        types: Sequence[Sequence[int]] | None,
        run: _Runner | None = None,
        decoded: bool = False,
    ) -> list[np.ndarray]:
        ids = [np.asarray(enc.ids, dtype=np.int64) for enc in encodings]
        type_rows = (
            [np.asarray(t, dtype=np.int64) for t in types] if self.manifest.casing and types is not None else None
        )
        plans = [plan_windows(len(row), self._window, self.stride) for row in ids]
        return self._windows_logits(ids, plans, batch_size, type_rows, run, decoded)

    def _windows_logits(
        self,
        ids: list[np.ndarray],
        plans: list[list[tuple[int, int, int, int]]],
        batch_size: int,
        types: list[np.ndarray] | None = None,
        run: _Runner | None = None,
        decoded: bool = False,
    ) -> list[np.ndarray]:
        """Logits of each token row from its planned windows (start, end, owned_start, owned_end).

        `types` are the rows' token types (casing), cut like the ids. Rows outside every owned range
        are left unset. With `decoded` each row also carries the graph's decoding columns after the
        logits (`DECODED_OUTPUT`), and `run`, when given, must return them. Windows are sorted by
        length and batched under `batch_size` and the token budget,
        and a window that would pad badly with its batch's longest (`shares_batch`) starts the next batch:
        a few random-length texts (a server's micro-batch) then cost about their own tokens, not the
        longest one's times their count. Batches run one after the other, or on the model's streams when
        there are enough of them (`streams`); either way each batch's rows land in the same places.
        """
        _check_batch_size(batch_size)
        pieces = [(i, *w) for i, plan in enumerate(plans) for w in plan]
        pieces.sort(key=lambda p: p[2] - p[1], reverse=True)
        columns = len(self.labels) + (len(DECODED_COLUMNS) if decoded else 0)
        outputs: list[np.ndarray] = [np.empty((len(row), columns), dtype=np.float32) for row in ids]
        n_special = len(self._prefix) + len(self._suffix)
        batches = []
        start = 0
        while start < len(pieces):
            longest = pieces[start][2] - pieces[start][1] + n_special
            count = max(1, min(batch_size, self.token_budget // longest))
            end = start + 1
            while end < min(len(pieces), start + count) and self.shares_batch(
                pieces[end][2] - pieces[end][1] + n_special, longest
            ):
                end += 1
            batches.append((pieces[start:end], longest))
            start = end
        offset = len(self._prefix)

        def one(batch: list[tuple[int, int, int, int, int]], width: int, runner: _Runner) -> None:
            type_rows = [types[i][a:b] for i, a, b, _, _ in batch] if types is not None else None
            logits = runner([ids[i][a:b] for i, a, b, _, _ in batch], width, type_rows)
            for row, (i, a, _, own_a, own_b) in zip(logits, batch, strict=True):
                outputs[i][own_a:own_b] = row[offset + own_a - a : offset + own_b - a]

        pool = self._stream_pool(len(batches)) if run is None else None
        if pool is None:
            for batch, width in batches:
                one(batch, width, run or partial(self._run, decoded=decoded))
        else:
            stream = partial(self._run_stream, decoded=decoded)
            for future in [pool.submit(one, batch, width, stream) for batch, width in batches]:
                future.result()
        return outputs

    def _context_scores(
        self,
        encodings: Sequence[Encoding],
        documents: Sequence[int] | None,
        batch_size: int,
        types: Sequence[Sequence[int]] | None = None,
        run: _Runner | None = None,
    ) -> list[np.ndarray]:
        """Token scores of each sentence read inside its document's neighbours (`runtime.context`).

        A sentence longer than a window has no room for context; it is read in overlapping windows of
        its own, like a long text.
        """
        sentence_ids = [enc.ids for enc in encodings]
        document_ids = documents if documents is not None else [0] * len(encodings)
        windows = pack_with_context(sentence_ids, document_ids, self._window)
        # token types are cut like the ids
        type_windows = pack_with_context(types, document_ids, self._window) if types is not None else None
        rows, type_rows, plans, spans = [], [], [], []
        for k, (own, window) in enumerate(zip(sentence_ids, windows, strict=True)):
            long = len(own) > self._window  # no room for context: read in windows of its own
            rows.append(np.asarray(own if long else window.ids, dtype=np.int64))
            if types is not None and type_windows is not None:
                type_rows.append(np.asarray(types[k] if long else type_windows[k].ids, dtype=np.int64))
            if long:
                plans.append(plan_windows(len(own), self._window, self.stride))
                spans.append((0, len(own)))
            else:
                plans.append([(0, len(window.ids), window.target_start, window.target_end)] if own else [])
                spans.append((window.target_start, window.target_end))
        logits = self._windows_logits(rows, plans, batch_size, type_rows if type_windows is not None else None, run)
        return [softmax(row[a:b]) for row, (a, b) in zip(logits, spans, strict=True)]

    def _feeds(self, rows: Sequence[Row], width: int, types: Sequence[Row] | None = None) -> dict[str, np.ndarray]:
        if self.pad_multiple > 1:
            width = max(width, min(-(-width // self.pad_multiple) * self.pad_multiple, self.manifest.max_length))
        return batch_inputs(
            rows,
            pad_id=self.manifest.pad_token_id,
            width=width,
            prefix=self._prefix,
            suffix=self._suffix,
            types=types,
            token_types=self._token_types,
        )

    def shares_batch(self, narrow: int, wide: int) -> bool:
        """Whether a window `narrow` tokens wide runs in one batch with (padded to) one `wide` tokens wide.

        The rule by engine, for the runtime's batches and for a server's micro-batches alike. On
        onnxruntime's CPU kernels the work is per token, padding included, and a batch saves little per row
        over runs of its own (random CoNLL-2003 test sentences on two streams: 16 per call did 0.90-0.92x
        the sentences/s of lone calls with up to 2x padding, 1.07-1.19x with at most 1/4; 4 per call
        0.85-0.93x against 0.97-1.03x), so a window must fill at least 3/4 of the width. On CUDA, where a
        batch costs little more than its widest row, half (not measured here). On OpenVINO never padded:
        its fused int8 attention lets a padded row's padding move the row's logits (up to 0.09 on the
        CoNLL-2003 model), which would make answers depend on the batch.
        """
        if self.backend == "openvino":
            return narrow >= wide
        if self.device == "cpu":
            return 4 * narrow >= 3 * wide
        return 2 * narrow > wide

    def _run(
        self, rows: Sequence[Row], width: int, types: Sequence[Row] | None = None, decoded: bool = False
    ) -> np.ndarray:
        """The logits of one padded batch, or with `decoded` the graph's `DECODED_OUTPUT` (logits first)."""
        return self._run_feeds(self._feeds(rows, width, types), decoded)

    def _run_feeds(self, feeds: dict[str, np.ndarray], decoded: bool = False) -> np.ndarray:
        """`_run` of built feeds."""
        if not self.io_binding:
            logits: np.ndarray = self._session.run([DECODED_OUTPUT if decoded else self._output_name], feeds)[0]
            return logits
        binding = self._session.io_binding()
        for name, array in feeds.items():
            binding.bind_cpu_input(name, array)
        binding.bind_output(self._output_name, self.device)
        self._session.run_with_iobinding(binding)
        bound: np.ndarray = binding.copy_outputs_to_cpu()[0]
        return bound

    def _run_stream(
        self, rows: Sequence[Row], width: int, types: Sequence[Row] | None = None, decoded: bool = False
    ) -> np.ndarray:
        assert self._streams is not None  # only called through the stream pool
        output = DECODED_OUTPUT if decoded else self._output_name
        logits: np.ndarray = self._streams.session.run([output], self._feeds(rows, width, types))[0]
        return logits

    def _stream_pool(self, n_batches: int) -> ThreadPoolExecutor | None:
        """The stream pool when `n_batches` batches are worth spreading over it, else None."""
        if self._streams is None or n_batches < 2 * self._streams.count:
            return None
        return self._streams.pool()

    # ------------------------------------------------------------------ decoding
    def _first_of_text_words(self, strategy: str) -> bool:
        """Whether `_entities_first` decodes this call: the default case (whitespace words, `first`)."""
        return strategy == "first" and self.word_split == "text"

    def _entities_first(
        self, text: str, offsets: Sequence[tuple[int, int]], words: list[tuple[int, int]], logits: np.ndarray
    ) -> list[Entity]:
        """`_entities` for the default case (text words, `first`) with a handful of numpy calls.

        Same result as the general path; it exists because a single sentence's decoding is dominated by
        per-call overhead, and this is the path every default call takes. `logits` may carry the graph's
        decoding columns after the logits (`DECODED_OUTPUT`): then each word's label and score are read
        from them, unless IOB2 forbids that label sequence and the search over the logits runs.
        """
        if logits.shape[0] == 0 or not words:
            return []
        firsts = [first for first, _ in words]
        n_labels = len(self.labels)
        if logits.shape[1] > n_labels:
            decoded = logits[:, n_labels:].tolist()
            label_ids = [int(decoded[i][0]) for i in firsts]
            if self._allowed is None or sequence_allowed(label_ids, self._allowed_rows):
                scores = [decoded[i][self._chance_column] for i in firsts]
                return self._grouped(text, offsets, words, label_ids, scores)
            logits = logits[:, :n_labels]
        rows = logits[firsts]
        label_ids = rows.argmax(axis=1).tolist()
        peak = rows.max(axis=1, keepdims=True)
        exp = np.exp(rows - peak)
        totals = exp.sum(axis=1, keepdims=True)
        if self._allowed is not None and not sequence_allowed(label_ids, self._allowed_rows):
            label_ids = constrained_labels(rows - peak - np.log(totals), self._allowed).tolist()
        # each label's probability, or with constrained decoding its entity type's (B-X + I-X)
        mass = exp if self._same_kind is None else exp @ self._same_kind
        chances = (mass / totals).tolist()
        word_scores = [row[label] for row, label in zip(chances, label_ids, strict=True)]
        return self._grouped(text, offsets, words, label_ids, word_scores)

    def _grouped(
        self,
        text: str,
        offsets: Sequence[tuple[int, int]],
        words: list[tuple[int, int]],
        label_ids: list[int],
        word_scores: list[float],
    ) -> list[Entity]:
        """Entities of text words (`text_word_spans`) from each word's label and score."""
        entities = []
        for first_word, last_word, kind, score in group_words(label_ids, word_scores, self._space):
            begin = offsets[words[first_word][0]][0]
            end = extend_initial(text, offsets[words[last_word][1]][1])
            entities.append(Entity(text[begin:end], self._space.kinds[kind], begin, end, score))
        return entities

    def _entities(self, text: str, enc: Encoding, logits: np.ndarray, strategy: str) -> list[Entity]:
        if logits.shape[0] == 0:
            return []
        scores = softmax(logits)
        offsets = np.asarray(enc.offsets, dtype=np.int64).reshape(-1, 2)
        text_mode = self.word_split == "text"
        if text_mode:
            starts, voting = text_words(text, offsets)
        else:
            unknown = np.asarray(enc.ids) == self._unk_id
            starts = pipeline_word_starts(text, offsets, enc.tokens, unknown)
            voting = np.ones(len(starts), dtype=bool)
        tokens = np.flatnonzero(voting)
        label_ids, word_scores, first = aggregate_words(
            scores[tokens], starts[tokens], strategy, self._allowed, self._same_kind
        )
        first_token = tokens[first]
        last_token = tokens[np.append(first[1:], len(tokens)) - 1]
        entities = []
        for first_word, last_word, kind, score in group_words(label_ids, word_scores, self._space):
            begin = int(offsets[first_token[first_word], 0])
            end = int(offsets[last_token[last_word], 1])
            if text_mode:
                end = extend_initial(text, end)
            entities.append(Entity(text[begin:end], self._space.kinds[kind], begin, end, score))
        return entities

    def _word_tags(self, n_words: int, enc: Encoding, scores: np.ndarray, strategy: str) -> list[str]:
        tags = ["O"] * n_words
        if scores.shape[0] == 0:
            return tags
        word_ids = np.asarray([-1 if w is None else w for w in enc.word_ids], dtype=np.int64)
        starts = np.ones(len(word_ids), dtype=bool)
        starts[1:] = word_ids[1:] != word_ids[:-1]
        label_ids, _, first_token = aggregate_words(scores, starts, strategy, self._allowed)
        for word, label in zip(word_ids[first_token].tolist(), label_ids.tolist(), strict=True):
            if word >= 0:
                tags[word] = self.labels[label]
        return to_iob2(tags) if self._iob2 else tags
