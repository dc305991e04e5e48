"""The systems fed pre-tokenized batches: a bare onnxruntime session and the peer engines.

`session_int8` is a bare onnxruntime session on the bundle's int8 graph, built with the runtime's
session and padding code so that it and `runtime_int8` differ only in what the runtime adds: it is the
floor the runtime's own overhead is measured against. `openvino_int8` and `ctranslate2_int8` are other
CPU engines (`benchmarks.peers`) on the same model.

Trade-offs: inputs are tokenized once, up front, with the runtime's tokenizer, special tokens and casing
classes, and batches are length-sorted, so only the engine is timed; inputs longer than
`SESSION_MAX_TOKENS` are cut, since these engines have no windowing. They find no entities: accuracy
is measured on pre-split words (each sentence alone, the graph's floor rather than its best F1), and
batch invariance on each text's token labels.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ner_export.runtime.casing import case_ids
from ner_export.runtime.labels import to_iob2
from ner_export.runtime.manifest import BundleManifest
from ner_export.runtime.session import batch_inputs, create_session, load_tokenizer

from .system_interface import Spans, System

__all__ = ["SESSION_MAX_TOKENS", "BareSystem", "CTranslate2PeerSystem", "OpenVinoPeerSystem", "SessionSystem"]

SESSION_MAX_TOKENS = 512  # bare engines cut longer inputs: they have no windowing

TokenRow = tuple[list[int], list[int] | None]  # one text's token ids and casing classes (None without casing)


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
        rows = self._text_rows(texts)
        self._single_feeds = [self.feeds([row]) for row in rows]
        order = sorted(range(len(texts)), key=lambda i: len(rows[i][0]))
        self._batch_feeds = [
            self.feeds([rows[i] for i in order[s : s + batch_size]]) for s in range(0, len(order), batch_size)
        ]

    def run_one(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        raise NotImplementedError

    def run_many(self, batches: list[dict[str, np.ndarray]]) -> list[np.ndarray]:
        return [self.run_one(feeds) for feeds in batches]

    def _text_rows(self, texts: list[str]) -> list[TokenRow]:
        """(ids, casing classes or None) of each text, with special tokens (whose class is 0)."""
        cut = SESSION_MAX_TOKENS
        encodings = self._tokenizer.encode_batch(texts)
        return [
            (e.ids[:cut], case_ids(text, e.offsets[:cut]) if self._casing else None)
            for text, e in zip(texts, encodings, strict=True)
        ]

    def _word_rows(self, words: list[list[str]], cut: int) -> list[TokenRow]:
        """(ids, casing classes or None) of each pre-split sentence, cut to `cut` tokens."""
        encodings = self._tokenizer.encode_batch(words, is_pretokenized=True)
        return [
            (e.ids[:cut], case_ids(w, e.offsets[:cut], e.word_ids[:cut]) if self._casing else None)
            for e, w in zip(encodings, words, strict=True)
        ]

    def feeds(self, rows: list[TokenRow]) -> dict[str, np.ndarray]:
        """Padded input_ids, attention_mask and token_type_ids of (ids, casing classes) rows."""
        types = [t or [] for _, t in rows] if self._casing else None
        return batch_inputs([ids for ids, _ in rows], pad_id=self._pad_id, types=types)

    def presplit(self, words: list[list[str]], documents: list[int]) -> list[list[str]]:
        # sentences alone, whatever the model was trained with: the bare graph's floor, not its best F1
        from ner_export.finetune import first_subword_mask

        cut = SESSION_MAX_TOKENS
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
        return self.run_one(self._single_feeds[index])

    def single_feeds(self, index: int) -> dict[str, np.ndarray]:
        """The pre-built feeds of text `index` alone (what `single` runs)."""
        return self._single_feeds[index]

    def batch(self, texts: list[str]) -> list[Spans]:
        self.run_many(self._batch_feeds)
        return []

    def answers(self, texts: list[str], batch_size: int) -> list[Any]:
        rows = self._text_rows(texts)
        chunks = [rows[s : s + batch_size] for s in range(0, len(rows), batch_size)]
        out: list[Any] = []
        for chunk, logits in zip(chunks, self.run_many([self.feeds(c) for c in chunks]), strict=True):
            out += [tuple(row[: len(ids)].argmax(-1).tolist()) for row, (ids, _) in zip(logits, chunk, strict=True)]
        return out


class SessionSystem(BareSystem):
    """A bare onnxruntime session on the bundle's int8 graph, built with the runtime's session code."""

    def __init__(self, bundle: Path, texts: list[str], batch_size: int) -> None:
        graph = bundle / BundleManifest.read(bundle).graph_for("cpu", "int8").file
        self._session = create_session(graph)
        super().__init__("session_int8", bundle, texts, batch_size, [graph])

    def run_one(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        logits: np.ndarray = self._session.run(None, feeds)[0]
        return logits


class OpenVinoPeerSystem(BareSystem):
    """OpenVINO with NNCF int8 of the bundle's fp32 graph, calibrated on the checkpoint's dev sample."""

    def __init__(self, bundle: Path, checkpoint: Path, texts: list[str], batch_size: int) -> None:
        from .peers import OpenVinoInt8, calibration_words

        manifest = BundleManifest.read(bundle)
        fp32 = bundle / manifest.graph_for("cpu", "fp32").file
        super().__init__("openvino_int8", bundle, texts, batch_size, [fp32])
        rows = self._word_rows(calibration_words(checkpoint), manifest.max_length)
        calibration = [self.feeds([row]) for row in rows]
        self._engine = OpenVinoInt8(fp32, calibration)

    def run_one(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        return self._engine.run_one(feeds)

    def run_many(self, batches: list[dict[str, np.ndarray]]) -> list[np.ndarray]:
        return self._engine.run_many(batches)


class CTranslate2PeerSystem(BareSystem):
    """CTranslate2's int8 conversion of the checkpoint, written under `workdir`."""

    def __init__(self, bundle: Path, checkpoint: Path, texts: list[str], batch_size: int, workdir: Path) -> None:
        from .peers import CTranslate2Int8

        self._engine = CTranslate2Int8(checkpoint, workdir)
        super().__init__("ctranslate2_int8", bundle, texts, batch_size, sorted((workdir / "ctranslate2").glob("*.bin")))

    def run_one(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        return self._engine.run(feeds)
