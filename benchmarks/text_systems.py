"""The systems that take raw text: transformers' pipeline (`pytorch`, `optimum_int8`) and `NerModel`.

`PipelineSystem` runs transformers' token-classification pipeline, on the checkpoint (`pytorch`) or on
the bundle's int8 graph through Optimum (`optimum_int8`); `RuntimeSystem` is the runtime itself
(`runtime_*`, `runtime_int8_openvino` on its OpenVINO backend). Both tokenize, run and decode inside
what is timed, as their users pay for it.

`RuntimeSystem` reaches into the model it wraps (its session, its token cache) on purpose: the bench
times the runtime with the cache primed and reset before every block, runs the same session bare for
the paired overhead, and compares against a copy without the cache, and none of that is public API.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np

from .system_interface import Spans, System

__all__ = ["PipelineSystem", "RuntimeSystem"]


class PipelineSystem(System):
    """transformers' pipeline with `aggregation_strategy="first"` on `model` (PyTorch or Optimum's ORT)."""

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
    """`NerModel` on the bundle's `precision` graph of `backend`, raw text in."""

    def __init__(self, name: str, bundle: Path, precision: str, batch_size: int, backend: str = "onnxruntime") -> None:
        from ner_export.runtime import NerModel
        from ner_export.runtime.token_cache import ChunkTokenizer

        self.name, self.imports_torch, self.bundle = name, False, bundle
        self._model = NerModel.load(bundle, precision=precision, backend=backend)
        self._uncached_model = copy.copy(self._model)  # the same session and settings, no token cache
        self._uncached_model._chunk_tokens = ChunkTokenizer(
            self._model._tokenizer, casing=self._model.manifest.casing, capacity=0
        )
        self._primed_cache: dict[str, Any] = {}
        graph = self._model.manifest.graph_for("cpu", precision, backend)
        self.model_files = [bundle / name for name in (graph.file, graph.weights) if name]
        self._batch_size = batch_size

    def presplit(self, words: list[list[str]], documents: list[int]) -> list[list[str]]:
        return self._model.predict_words(words, batch_size=self._batch_size, documents=documents)

    def single(self, text: str, index: int) -> Any:
        return self._model(text)

    def single_uncached(self, text: str) -> Any:
        """`single` without the token cache (`runtime.token_cache`), on the same session."""
        return self._uncached_model(text)

    def prime(self, history: list[str]) -> None:
        """Fill the model's token cache from `history` (texts that are not timed), as a service that has
        answered them would have it, and keep that cache for `forget`."""
        tokens = self._model._chunk_tokens
        tokens.clear()
        for text in history:
            tokens(text)
        self._primed_cache = tokens.snapshot()

    def forget(self) -> None:
        self._model._chunk_tokens.restore(self._primed_cache)

    def run_session(self, feeds: dict[str, np.ndarray]) -> Any:
        """The model's own session run bare on pre-built feeds (`bench.paired_overhead`)."""
        return self._model._session.run(None, feeds)

    def batch(self, texts: list[str]) -> list[Spans]:
        rows = self._model.predict(texts, batch_size=self._batch_size)
        return [[(e.label, e.start, e.end) for e in row] for row in rows]

    def answers(self, texts: list[str], batch_size: int) -> list[Any]:
        rows = self._model.predict(texts, batch_size=batch_size)
        return [[(e.label, e.start, e.end) for e in row] for row in rows]
