"""The token cache: a single text's tokens, casing classes and words, assembled from cached space-separated chunks.

For one sentence the runtime's own work sits next to a ~1.5 ms graph run, and tokenizing was the
largest part of it: right after a run has filled the CPU caches, tokenizers' `encode` of a CoNLL-2003
test sentence took ~90 us, with the casing classes and word spans ~125 us. Words repeat, so the
tokens of each space-separated chunk ("(Reuters)," or "Germany") are kept and a sentence whose chunks
were all seen before is assembled from them in ~35 us. Design choices:

- Only where it cannot change an answer: for a tokenizer whose tokens of a text are its chunks'
  tokens, offsets shifted, one after the other. `chunk_local` reads that from the tokenizer's own
  configuration (a pre-tokenizer that splits on whitespace, per-character normalizers, added tokens
  that neither strip nor hold spaces, no BPE dropout); any other tokenizer, or `capacity=0`, takes
  the plain path on every call. The tests cross-check both paths against `Tokenizer.encode`.
- Chunks are split on the space character only: other whitespace stays inside a chunk and is the
  tokenizer's to handle, so the split never needs to agree with the tokenizer's idea of whitespace.
- A text with one or two unseen chunks encodes them alone; one with more is encoded whole, as without
  a cache, and its unseen chunks are sliced out of that encoding: a miss never costs more than one
  `encode` of the text plus slicing, or two short ones (`FEW_UNSEEN`).
- Bounded and lock-free: at `capacity` chunks the cache is emptied and refills; chunks longer than
  `MAX_CHUNK_CHARS` are never kept. A reader takes every entry it needs before it assembles, so a
  concurrent write or reset can only turn a hit into a miss.
"""

from __future__ import annotations

import json
from bisect import bisect_left
from typing import Any, NamedTuple

from tokenizers import Tokenizer

from .casing import case_ids
from .decoding import text_word_spans

__all__ = ["COUNT_LEARNS_CHARS", "FEW_UNSEEN", "MAX_CHUNK_CHARS", "ChunkTokenizer", "TextTokens", "chunk_local"]

MAX_CHUNK_CHARS = 64
"""Longest chunk the cache keeps: words are short, and a long chunk (a URL, a table row) rarely repeats."""

FEW_UNSEEN = 2
"""Most unseen chunks that are encoded one by one; a text with more is encoded whole. Right after a
graph run the first tokenizer call of a sentence costs ~60 us and each further one ~10 us, against ~90 us
for the whole sentence, after which its chunks are sliced out."""

COUNT_LEARNS_CHARS = 2_000
"""Longest text whose unseen chunks `ChunkTokenizer.count` learns when it has many: a sentence or a
paragraph, which the model may then read from the cache; learning costs Python work per token, where a
longer text is counted by the tokenizer alone."""

# normalizers that map each character on its own and leave the space a space
_LOCAL_NORMALIZERS = {"BertNormalizer", "Lowercase", "NFC", "NFD", "NFKC", "NFKD", "StripAccents"}
# pre-tokenizers that split on whitespace, and those that only split further inside the pieces
_SPLITTING_PRE_TOKENIZERS = {"BertPreTokenizer", "Whitespace", "WhitespaceSplit"}
_REFINING_PRE_TOKENIZERS = {"Punctuation", "Digits", "UnicodeScripts"}


_ChunkEntry = tuple[list[int], list[tuple[int, int]], list[int], list[tuple[int, int]], int, int]
"""A chunk's ids, offsets, casing classes (empty without casing), words, and the character and token
positions its offsets and words count from (the chunk's start in the text it was read from)."""


class TextTokens(NamedTuple):
    """One text's tokens without special tokens: ids, character offsets into the text, casing classes
    (None for a model without casing) and words as (first core token, last core token) pairs
    (`decoding.text_word_spans`)."""

    ids: list[int]
    offsets: list[tuple[int, int]]
    classes: list[int] | None
    words: list[tuple[int, int]]


def _component_config(component: Any) -> dict[str, Any]:
    state: dict[str, Any] = json.loads(component.__getstate__())
    return state


def chunk_local(tokenizer: Tokenizer) -> bool:
    """Whether `tokenizer`'s tokens of any text are its space-separated chunks' tokens, in order, with
    offsets shifted by each chunk's start (module docstring)."""
    try:
        normalizer = _component_config(tokenizer.normalizer) if tokenizer.normalizer is not None else None
        pre_tokenizer = _component_config(tokenizer.pre_tokenizer) if tokenizer.pre_tokenizer is not None else None
    except (AttributeError, TypeError, ValueError):
        return False
    if normalizer is not None:
        parts = normalizer.get("normalizers", []) if normalizer.get("type") == "Sequence" else [normalizer]
        if not all(part.get("type") in _LOCAL_NORMALIZERS for part in parts):
            return False
    if pre_tokenizer is None:
        return False
    if pre_tokenizer.get("type") == "Sequence":
        kinds = [part.get("type") for part in pre_tokenizer.get("pretokenizers", [])]
    else:
        kinds = [pre_tokenizer.get("type")]
    if not any(kind in _SPLITTING_PRE_TOKENIZERS for kind in kinds):
        return False
    if not all(kind in _SPLITTING_PRE_TOKENIZERS | _REFINING_PRE_TOKENIZERS for kind in kinds):
        return False
    if getattr(tokenizer.model, "dropout", None):
        return False
    for token in tokenizer.get_added_tokens_decoder().values():
        if token.lstrip or token.rstrip or not token.content or any(ch.isspace() for ch in token.content):
            return False
    return True


class ChunkTokenizer:
    """`TextTokens` of single texts, from a cache of space-separated chunks where the tokenizer allows it.

    capacity: most chunks kept (0: no cache, every text is encoded whole).
    casing: whether to compute casing classes (`casing.case_ids`), for a model trained with them.
    """

    def __init__(self, tokenizer: Tokenizer, *, casing: bool, capacity: int = 16384) -> None:
        if not isinstance(capacity, int) or capacity < 0:
            raise ValueError(f"capacity={capacity!r} must be a non-negative integer")
        self._tokenizer = tokenizer
        self._casing = casing
        self.capacity = capacity if chunk_local(tokenizer) else 0
        self._chunks: dict[str, _ChunkEntry] = {}

    def __len__(self) -> int:
        return len(self._chunks)

    def clear(self) -> None:
        """Forget every chunk (the next texts take the miss path)."""
        self._chunks.clear()

    def snapshot(self) -> dict[str, _ChunkEntry]:
        """A copy of the cache, for `restore` (a benchmark times texts against the same cache)."""
        return dict(self._chunks)

    def restore(self, snapshot: dict[str, _ChunkEntry]) -> None:
        """Make the cache what it was at `snapshot`."""
        self._chunks = dict(snapshot)

    def __call__(self, text: str) -> TextTokens:
        """`TextTokens` of `text`, the same with or without the cache."""
        if not self.capacity:
            return self._encode(text)
        chunks = text.split(" ")
        get = self._chunks.get
        entries = [get(chunk) if chunk else None for chunk in chunks]
        unseen = [i for i, (chunk, entry) in enumerate(zip(chunks, entries, strict=True)) if chunk and entry is None]
        if len(unseen) > FEW_UNSEEN:
            tokens = self._encode(text)
            self._learn_unseen_chunks(chunks, tokens)
            return tokens
        for i in unseen:
            entries[i] = self._chunk_entry(chunks[i])
        ids: list[int] = []
        classes: list[int] = []
        placed = []  # (entry, character shift, token shift) of each chunk with tokens
        start = 0
        for chunk, entry in zip(chunks, entries, strict=True):
            if entry is not None:
                placed.append((entry, start - entry[4], len(ids) - entry[5]))
                ids += entry[0]
                classes += entry[2]
            start += len(chunk) + 1
        offsets = [(begin + shift, end + shift) for entry, shift, _ in placed for begin, end in entry[1]]
        words = [(first + shift, last + shift) for entry, _, shift in placed for first, last in entry[3]]
        return TextTokens(ids, offsets, classes if self._casing else None, words)

    def count(self, text: str) -> int:
        """How many tokens `text` makes (no special tokens): `len(self(text).ids)`, from the cached chunks
        where it can, learning the unseen ones as `__call__` would, so a text counted first (a server
        costing a request before queueing it) is then assembled from the cache. A text of more than
        `COUNT_LEARNS_CHARS` characters with more than `FEW_UNSEEN` unseen chunks is counted by one plain
        `encode` and teaches the cache nothing: the model reads such a text in windows, without the
        cache, and counting it must not cost more than that `encode`."""
        if not self.capacity:
            return len(self._tokenizer.encode(text, add_special_tokens=False).ids)
        chunks = text.split(" ")
        get = self._chunks.get
        total = 0
        unseen: list[str] = []
        for chunk in chunks:
            if not chunk:
                continue
            entry = get(chunk)
            if entry is not None:
                total += len(entry[0])
                continue
            unseen.append(chunk)
            if len(unseen) > FEW_UNSEEN:
                if len(text) > COUNT_LEARNS_CHARS:
                    return len(self._tokenizer.encode(text, add_special_tokens=False).ids)
                tokens = self._encode(text)
                self._learn_unseen_chunks(chunks, tokens)
                return len(tokens.ids)
        return total + sum(len(self._chunk_entry(chunk)[0]) for chunk in unseen)

    def _encode(self, text: str) -> TextTokens:
        encoding = self._tokenizer.encode(text, add_special_tokens=False)
        offsets = encoding.offsets
        classes = case_ids(text, offsets) if self._casing else None
        return TextTokens(encoding.ids, offsets, classes, text_word_spans(text, offsets))

    def _store(self, chunk: str, entry: _ChunkEntry) -> None:
        if len(chunk) <= MAX_CHUNK_CHARS:
            if len(self._chunks) >= self.capacity:
                self._chunks.clear()
            self._chunks[chunk] = entry

    def _chunk_entry(self, chunk: str) -> _ChunkEntry:
        """One chunk's entry, from an encoding of the chunk alone (kept unless the chunk is long)."""
        tokens = self._encode(chunk)
        entry = (tokens.ids, tokens.offsets, tokens.classes or [], tokens.words, 0, 0)
        self._store(chunk, entry)
        return entry

    def _learn_unseen_chunks(self, chunks: list[str], tokens: TextTokens) -> None:
        """Keep the unseen chunks of a text, sliced out of its whole encoding `tokens`: the slices keep
        the text's offsets and token positions, with the chunk's own as origins."""
        ids, offsets, classes, words = tokens
        token_starts = [begin for begin, _ in offsets]  # non-decreasing: a chunk's tokens are a bisected range
        word_starts = [first for first, _ in words]
        start = 0
        for chunk in chunks:
            end = start + len(chunk)
            if chunk and chunk not in self._chunks:
                lo, hi = bisect_left(token_starts, start), bisect_left(token_starts, end)
                first_word, past_word = bisect_left(word_starts, lo), bisect_left(word_starts, hi)
                chunk_classes = [] if classes is None else classes[lo:hi]
                self._store(chunk, (ids[lo:hi], offsets[lo:hi], chunk_classes, words[first_word:past_word], start, lo))
            start = end + 1
