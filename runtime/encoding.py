"""From texts to what the graph reads: encodings, casing classes, the windows of each text, and feeds.

`WindowEncoder` is the tokenizer's side of a model: it encodes texts (or pre-split words) without
special tokens, computes their casing classes for a model trained with them, and plans the windows of
the bundle's max_length each text is read in, so nothing is truncated (`context.plan_windows`; a model
trained with document context reads each sentence inside its neighbours, `context.pack_with_context`).
`GraphFeeds` turns token rows into the graph's padded inputs, with the special tokens around each row.

Design: both are plain objects built once per model from its tokenizer and manifest, holding no
per-call state, so one model serves many threads. They return numbers and plans, never run the graph:
the batching and running are `graph_runner`'s, and a test can check a plan without a session. The
special tokens are read from the tokenizer's own post-processor (`special_tokens`) rather than from a
list of known models, so any tokenizer a bundle ships works.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
from tokenizers import Encoding, Tokenizer

from .casing import case_ids
from .context import default_stride, pack_with_context, plan_windows
from .errors import BundleError
from .manifest import BundleManifest
from .session import Row, batch_inputs, one_row_inputs

__all__ = ["ContextRows", "GraphFeeds", "TokenRows", "Window", "WindowEncoder", "special_tokens", "unknown_token_id"]

Window = tuple[int, int, int, int]
"""A window of a token row: (start, end, owned_start, owned_end), as `context.plan_windows` plans them."""


def special_tokens(tokenizer: Tokenizer) -> tuple[list[int], list[int]]:
    """The ids the tokenizer's post-processor puts before and after a single sequence."""
    bare = tokenizer.encode("a", add_special_tokens=False).ids
    full = tokenizer.encode("a", add_special_tokens=True).ids
    for k in range(len(full) - len(bare) + 1):
        if full[k : k + len(bare)] == bare:
            return full[:k], full[k + len(bare) :]
    return [], []


def unknown_token_id(tokenizer: Tokenizer) -> int:
    """The id of the tokenizer's unknown token, or -1 when it has none."""
    unk_token = getattr(tokenizer.model, "unk_token", None) or "[UNK]"
    unk_id = tokenizer.token_to_id(unk_token)
    return -1 if unk_id is None else int(unk_id)


class TokenRows(NamedTuple):
    """Token rows ready for `GraphRunner.windows_logits`: ids, token types (None without casing) and
    the windows each row is read in."""

    ids: list[np.ndarray]
    types: list[np.ndarray] | None
    plans: list[list[Window]]


class ContextRows(NamedTuple):
    """`TokenRows` of sentences read inside their document, and where each sentence lies in its row."""

    rows: TokenRows
    spans: list[tuple[int, int]]


class WindowEncoder:
    """Encodings, casing classes and window plans for one bundle's tokenizer.

    stride: tokens shared by neighbouring windows of a long text (default `context.default_stride`).
    """

    def __init__(self, tokenizer: Tokenizer, manifest: BundleManifest, stride: int | None = None) -> None:
        self.tokenizer = tokenizer
        self.casing = manifest.casing
        self.prefix, self.suffix = special_tokens(tokenizer)
        self.window = manifest.max_length - len(self.prefix) - len(self.suffix)  # text tokens per window
        if self.window < 2:
            raise BundleError(f"max_length {manifest.max_length} leaves no room for text between special tokens")
        self.stride = default_stride(self.window, manifest.context) if stride is None else stride
        if not 0 <= self.stride <= self.window // 2:
            raise ValueError(f"stride={stride} must be between 0 and {self.window // 2} (half a window)")

    def encode(self, inputs: list[Any], is_pretokenized: bool = False) -> list[Encoding]:
        """Encodings of texts (or, `is_pretokenized`, of word lists) without special tokens."""
        # a single input skips the batch encoder's thread pool, whose wake-up costs more than the work
        if len(inputs) == 1:
            return [self.tokenizer.encode(inputs[0], is_pretokenized=is_pretokenized, add_special_tokens=False)]
        return (
            self.tokenizer.encode_batch(inputs, is_pretokenized=is_pretokenized, add_special_tokens=False)
            if inputs
            else []
        )

    def text_types(self, texts: Sequence[str], encodings: Sequence[Encoding]) -> list[list[int]] | None:
        """Each text's casing classes (`casing.case_ids`), or None for a model trained without casing."""
        if not self.casing:
            return None
        return [case_ids(text, enc.offsets) for text, enc in zip(texts, encodings, strict=True)]

    def word_types(self, words: Sequence[Sequence[str]], encodings: Sequence[Encoding]) -> list[list[int]] | None:
        """`text_types` of pre-split sentences."""
        if not self.casing:
            return None
        return [case_ids(w, enc.offsets, enc.word_ids) for w, enc in zip(words, encodings, strict=True)]

    def token_rows(self, encodings: Sequence[Encoding], types: Sequence[Sequence[int]] | None) -> TokenRows:
        """Each encoding read on its own, in overlapping windows when it is longer than one."""
        ids = [np.asarray(enc.ids, dtype=np.int64) for enc in encodings]
        type_rows = [np.asarray(t, dtype=np.int64) for t in types] if self.casing and types is not None else None
        plans = [plan_windows(len(row), self.window, self.stride) for row in ids]
        return TokenRows(ids, type_rows, plans)

    def context_rows(
        self,
        encodings: Sequence[Encoding],
        documents: Sequence[int] | None,
        types: Sequence[Sequence[int]] | None = None,
    ) -> ContextRows:
        """Each sentence inside its document's neighbours (`context.pack_with_context`); `documents`
        None is one document.

        A sentence longer than a window has no room for context; it is read in overlapping windows of
        its own, like a long text.
        """
        sentence_ids = [enc.ids for enc in encodings]
        document_ids = documents if documents is not None else [0] * len(encodings)
        windows = pack_with_context(sentence_ids, document_ids, self.window)
        # token types are cut like the ids
        type_windows = pack_with_context(types, document_ids, self.window) if types is not None else None
        rows: list[np.ndarray] = []
        type_rows: list[np.ndarray] = []
        plans: list[list[Window]] = []
        spans: list[tuple[int, int]] = []
        for k, (own, window) in enumerate(zip(sentence_ids, windows, strict=True)):
            long = len(own) > self.window  # no room for context: read in windows of its own
            rows.append(np.asarray(own if long else window.ids, dtype=np.int64))
            if types is not None and type_windows is not None:
                type_rows.append(np.asarray(types[k] if long else type_windows[k].ids, dtype=np.int64))
            if long:
                plans.append(plan_windows(len(own), self.window, self.stride))
                spans.append((0, len(own)))
            else:
                plans.append([(0, len(window.ids), window.target_start, window.target_end)] if own else [])
                spans.append((window.target_start, window.target_end))
        return ContextRows(TokenRows(rows, type_rows if type_windows is not None else None, plans), spans)


class GraphFeeds:
    """The graph's padded inputs of token rows, with the special tokens around each row.

    pad_multiple: pad batch widths up to a multiple of this (never past max_length), so a GPU sees few
        distinct shapes.
    token_types: whether the graph takes `token_type_ids`.
    """

    def __init__(
        self,
        *,
        pad_id: int,
        max_length: int,
        prefix: Sequence[int],
        suffix: Sequence[int],
        pad_multiple: int,
        token_types: bool,
    ) -> None:
        self.pad_id = pad_id
        self.max_length = max_length
        self.prefix = prefix
        self.suffix = suffix
        self.pad_multiple = pad_multiple
        self.token_types = token_types

    @property
    def special(self) -> int:
        """How many special tokens surround each row."""
        return len(self.prefix) + len(self.suffix)

    def batch(self, rows: Sequence[Row], width: int, types: Sequence[Row] | None = None) -> dict[str, np.ndarray]:
        """Feeds of rows padded to `width` (rounded up to `pad_multiple`); `types` under their tokens."""
        if self.pad_multiple > 1:
            width = max(width, min(-(-width // self.pad_multiple) * self.pad_multiple, self.max_length))
        return batch_inputs(
            rows,
            pad_id=self.pad_id,
            width=width,
            prefix=self.prefix,
            suffix=self.suffix,
            types=types,
            token_types=self.token_types,
        )

    def single(self, ids: list[int], classes: list[int] | None) -> dict[str, np.ndarray]:
        """Feeds of one row, the same as `batch([ids], ...)` at its own width, built in one array call
        when no padding applies (`session.one_row_inputs`)."""
        if self.pad_multiple == 1:
            return one_row_inputs(ids, self.prefix, self.suffix, classes, self.token_types)
        types = None if classes is None else [classes]
        return self.batch([ids], self.special + len(ids), types)
