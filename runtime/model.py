"""`NerModel`: a bundle loaded for inference with onnxruntime (or OpenVINO), tokenizers and numpy only.

Design: the tokenizer runs once per call over the whole batch (tokenizers' Rust batch encoder), each
text is cut into overlapping token windows of the bundle's max_length so nothing is truncated, the
windows are sorted by length and packed into padded batches under a size and token budget, and every
token takes its scores from the window where it sits furthest from an edge. Decoding is numpy over
arrays (see `decoding`); offsets come from the tokenizer, so `text[start:end] == entity.text` holds
by construction. No torch, no transformers: a service that embeds this pays only for what it runs.

`NerModel` is the API and the wiring; each job is a collaborator of its own module, built once in the
constructor: `loading` opens a bundle (files verified, sessions built), `encoding.WindowEncoder`
turns texts into token rows and window plans and `encoding.GraphFeeds` rows into graph inputs,
`graph_runner.GraphRunner` batches and runs them (on the session or the streams), and
`entities.EntityDecoder` turns scores into entities or word tags. Composition rather than mixins: each
collaborator holds only the state its job needs and can be read (and tested) on its own, and the
model's methods read as the steps of a call. A loaded model holds no per-call state, and onnxruntime
sessions accept concurrent `run` calls, so one instance can serve many threads. `backend="openvino"`
runs the bundle's OpenVINO IR instead, through an adapter with the same calls (`openvino_backend`).

A single text that fits one window skips the planning of windows and batches
(`_single_window_entities`). When the graph carries the decoding columns (`decoding.DECODED_OUTPUT`),
the default decoding reads each token's argmax label and score from the run instead of computing them
in numpy, on every path alike, and a single text's tokens come from a cache of its space-separated
chunks (`token_cache`): on one sentence the runtime's own work is about 10% of the call
(benchmarks/PERFORMANCE.md), and right after a graph run each small Python or numpy step costs several
times its tight-loop time.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from tokenizers import Encoding, Tokenizer

from .checks import require_positive_int
from .decoding import STRATEGIES, softmax, text_word_spans
from .encoding import GraphFeeds, WindowEncoder, unknown_token_id
from .entities import Entity, EntityDecoder
from .errors import InputError
from .graph_runner import BatchRun, GraphRunner, StreamSessions, auto_streams
from .loading import check_model_options, open_bundle
from .machine import available_cpus
from .manifest import BundleManifest
from .texts import check_texts, check_word_lists, unencodable
from .token_cache import ChunkTokenizer

__all__ = ["Entity", "NerModel", "auto_streams", "available_cpus"]


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
        check_model_options(
            backend=backend,
            io_binding=io_binding,
            streams=streams,
            stream_session=stream_session,
            pad_multiple=pad_multiple,
            aggregation=aggregation,
            token_budget=token_budget,
            word_split=word_split,
        )
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
        self.streams = streams
        self._tokenizer = tokenizer
        # a single text's tokens, casing classes and words, from cached space-separated chunks (token_cache.py)
        self._chunk_tokens = ChunkTokenizer(tokenizer, casing=manifest.casing, capacity=token_cache)
        self._encoder = WindowEncoder(tokenizer, manifest, stride)
        self.stride = self._encoder.stride
        self._decoder = EntityDecoder(
            manifest.labels, decoding=decoding, word_split=word_split, unk_id=unknown_token_id(tokenizer)
        )
        feeds = GraphFeeds(
            pad_id=manifest.pad_token_id,
            max_length=manifest.max_length,
            prefix=self._encoder.prefix,
            suffix=self._encoder.suffix,
            pad_multiple=pad_multiple,
            token_types="token_type_ids" in {i.name for i in session.get_inputs()},
        )
        self._runner = GraphRunner(
            session,
            feeds,
            n_labels=len(manifest.labels),
            device=device,
            backend=backend,
            io_binding=io_binding,
            token_budget=token_budget,
            streams=StreamSessions(streams, stream_session) if streams > 1 and stream_session is not None else None,
        )

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
        shared_arena: bool = False,
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
        shared_arena: all the model's sessions allocate from one CPU arena registered on onnxruntime's
            process-wide environment, grown by what each run asks for (`session.shared_cpu_arena`): for a
            long-lived process such as a server, whose memory then stops growing once it has run its
            largest batch; onnxruntime backend only.
        backend: "onnxruntime" (default) or "openvino": the bundle's NNCF int8 OpenVINO IR, exported when
            the `openvino` extra was installed; CPU only. Same outputs contract, only the logits differ.
            MissingDependencyError without openvino, BundleError when the bundle has no OpenVINO graph.
        verify: check every file the model needs against the manifest's sha256 first.
        token_cache: space-separated chunks whose tokens are kept for single texts (0: none); a lone
            text of known chunks skips the tokenizer, with the same tokens (`token_cache`).
        """
        bundle = open_bundle(
            bundle_dir,
            device,
            threads,
            precision=precision,
            streams=streams,
            session_config=session_config,
            backend=backend,
            verify=verify,
            shared_arena=shared_arena,
        )
        return cls(
            bundle.session,
            bundle.tokenizer,
            bundle.manifest,
            device=device,
            precision=bundle.precision,
            aggregation=aggregation,
            word_split=word_split,
            decoding=decoding,
            stride=stride,
            token_budget=token_budget,
            io_binding=device == "cuda" if io_binding is None else io_binding,
            pad_multiple=(16 if device == "cuda" else 1) if pad_multiple is None else pad_multiple,
            streams=bundle.streams,
            stream_session=bundle.stream_session,
            backend=backend,
            token_cache=token_cache,
        )

    @property
    def labels(self) -> tuple[str, ...]:
        return self.manifest.labels

    @property
    def batch_invariant(self) -> bool:
        """True when a text's entities never depend on the texts sharing its batch (docs/runtime.md).

        See "Batch invariance" there: the calibrated int8 and the fp32 graphs are; dynamic int8 is not."""
        return self._graph.batch_invariant

    @property
    def entity_types(self) -> tuple[str, ...]:
        return tuple(k for k in self._decoder.space.kinds if k != "O")

    @property
    def _session(self) -> Any:
        """The main session (benchmarks time it bare on the model's own feeds)."""
        return self._runner.session

    @property
    def _streams(self) -> StreamSessions | None:
        """The streams, or None for a model of one stream."""
        return self._runner.streams

    def __repr__(self) -> str:
        backend = f", backend={self.backend!r}" if self.backend != "onnxruntime" else ""
        return f"NerModel(device={self.device!r}, precision={self.precision!r}{backend}, labels={len(self.labels)})"

    # ------------------------------------------------------------------ texts
    def __call__(self, text: str) -> list[Entity]:
        """Entities of one text."""
        if not isinstance(text, str):
            raise TypeError(f"NerModel() takes a str, got {type(text).__name__}")
        problem = unencodable(text)
        if problem:
            raise InputError(f"NerModel(): text 0 has {problem}")
        return self._predict([text], 32, self._checked_strategy(None), stream=False)[0]

    def predict(
        self, texts: Sequence[str], batch_size: int = 32, aggregation: str | None = None, *, stream: bool = False
    ) -> list[list[Entity]]:
        """Entities for each text, in input order.

        stream: run this call's batches one after the other on a single stream (the calling thread, with
            the threads of one stream) instead of the whole model. For callers that make up to `streams`
            calls at once from threads of their own (a server's batch workers), so that each call uses
            its share of the CPUs; results are the same either way. With one stream it changes nothing.
        """
        check_texts(texts, "predict")
        require_positive_int("batch_size", batch_size)
        return self._predict(texts, batch_size, self._checked_strategy(aggregation), stream=stream)

    def _predict(self, texts: Sequence[str], batch_size: int, strategy: str, *, stream: bool) -> list[list[Entity]]:
        """`predict` of checked arguments."""
        if len(texts) == 1 and not stream:
            single = self._single_window_entities(texts[0], strategy)
            if single is not None:
                return [single]
        encodings = self._encode(list(texts))
        types = self._encoder.text_types(texts, encodings)
        first_of_words = self._decoder.is_first_of_text_words(strategy)
        decoded = self._runner.has_decoding_columns and first_of_words
        run = self._runner.one_stream(decoded) if stream else None
        token_logits = self._token_logits(encodings, batch_size, types, run, decoded)
        if not first_of_words:
            return [
                self._decoder.entities(text, enc, logits, strategy)
                for text, enc, logits in zip(texts, encodings, token_logits, strict=True)
            ]
        return [
            self._decoder.text_word_entities(text, enc.offsets, text_word_spans(text, enc.offsets), logits)
            for text, enc, logits in zip(texts, encodings, token_logits, strict=True)
        ]

    def _single_window_entities(self, text: str, strategy: str) -> list[Entity] | None:
        """Entities of one text that fits a single window, or None to take the general path.

        The same batch (one row) and decoding as `predict([text])`, without its planning of windows and
        batches: a single-text call is where the runtime's own work shows next to the graph's, and
        after a run has filled the caches every Python step costs several times its tight-loop cost.
        """
        head = len(self._encoder.prefix)
        if not self._decoder.is_first_of_text_words(strategy):
            enc = self._tokenizer.encode(text, add_special_tokens=False)
            ids = enc.ids
            if not ids or len(ids) > self._encoder.window:
                return None
            types = self._encoder.text_types([text], [enc])
            width = self._runner.feeds.special + len(ids)
            logits = self._runner.run([ids], width, types)[0, head : head + len(ids)]
            return self._decoder.entities(text, enc, logits, strategy)
        tokens = self._chunk_tokens(text)
        ids = tokens.ids
        if not ids or len(ids) > self._encoder.window:
            return None
        feeds = self._runner.feeds.single(ids, tokens.classes)
        scores = self._runner.run_feeds(feeds, decoded=self._runner.has_decoding_columns)[0, head : head + len(ids)]
        return self._decoder.text_word_entities(text, tokens.offsets, tokens.words, scores)

    @property
    def special_tokens(self) -> int:
        """Tokens the model adds around each window's text (BERT's [CLS] and [SEP]: 2)."""
        return self._runner.feeds.special

    def count_tokens(self, text: str) -> int:
        """How many tokens the bundle's tokenizer makes of `text`, special tokens not included. Read from
        the token cache, and fills it: a caller that sizes a text before predicting it (a server costing
        a request before queueing it) does not make `predict` tokenize it again. Safe from any thread."""
        return self._chunk_tokens.count(text)

    # ------------------------------------------------------------------ pre-split words
    def warm_up(self, batch_size: int = 32) -> None:
        """Run the largest batch `predict(..., batch_size)` can make (`batch_size` full-width windows, within
        the token budget) twice on the model's session and on every stream at once: onnxruntime allocates
        for a shape on its first two runs, so a long-lived process (a server) calls this before its first
        request rather than letting the first requests that need that memory pay for it and grow it."""
        require_positive_int("batch_size", batch_size)
        self._runner.run_largest_batch(batch_size)

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
        check_word_lists(word_lists)
        strategy = self._checked_strategy(aggregation)
        if strategy == "simple":
            strategy = "first"  # a word needs one label; "simple" has no word notion
        words = [list(w) for w in word_lists]
        encodings, token_scores = self._word_scores(words, batch_size, documents)
        return [
            self._decoder.word_tags(len(w), enc, s, strategy)
            for w, enc, s in zip(words, encodings, token_scores, strict=True)
        ]

    def graph_inputs(
        self, word_lists: Sequence[Sequence[str]], documents: Sequence[int] | None = None
    ) -> list[dict[str, np.ndarray]]:
        """The graph inputs `predict_words(word_lists, batch_size=1, documents=documents)` runs, one
        window per entry and so without padding.

        What the model sees, exactly (special tokens, casing, document context, long-sentence
        windows): the export calibrates static int8 activation scales on it.
        """
        check_word_lists(word_lists)
        feeds: list[dict[str, np.ndarray]] = []

        def record(rows: list[np.ndarray], width: int, types: list[np.ndarray] | None) -> np.ndarray:
            feeds.append(self._runner.feeds.batch(rows, width, types))
            return np.zeros((len(rows), width, len(self.labels)), dtype=np.float32)

        self._word_scores([list(w) for w in word_lists], 1, documents, run=record)
        return feeds

    def _word_scores(
        self, words: list[list[str]], batch_size: int, documents: Sequence[int] | None, run: BatchRun | None = None
    ) -> tuple[list[Encoding], list[np.ndarray]]:
        """(encoding, token probabilities) of each pre-split sentence, read as `predict_words` reads it."""
        if documents is not None and len(documents) != len(words):
            raise ValueError(f"predict_words: {len(words)} sentences but {len(documents)} document ids")
        encodings = self._encode(words, is_pretokenized=True)
        types = self._encoder.word_types(words, encodings)
        if self.manifest.context != "document":
            return encodings, [softmax(rows) for rows in self._token_logits(encodings, batch_size, types, run)]
        # each sentence read inside its document's neighbours (runtime.context)
        rows, spans = self._encoder.context_rows(encodings, documents, types)
        logits = self._runner.windows_logits(rows, batch_size, run)
        return encodings, [softmax(row[a:b]) for row, (a, b) in zip(logits, spans, strict=True)]

    # ------------------------------------------------------------------ shared steps
    def _encode(self, inputs: list[Any], is_pretokenized: bool = False) -> list[Encoding]:
        """Encodings of texts (or word lists) without special tokens (`WindowEncoder.encode`)."""
        return self._encoder.encode(inputs, is_pretokenized)

    def _checked_strategy(self, aggregation: str | None) -> str:
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
        run: BatchRun | None = None,
        decoded: bool = False,
    ) -> list[np.ndarray]:
        """Each encoding's token logits, read on its own in overlapping windows (`GraphRunner.windows_logits`)."""
        return self._runner.windows_logits(self._encoder.token_rows(encodings, types), batch_size, run, decoded)

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
        return self._runner.shares_batch(narrow, wide)
