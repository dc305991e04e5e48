"""Entities from token scores: the `Entity` record, and `EntityDecoder`, which turns one text's token
scores into entities, or one pre-split sentence's into a tag per word.

Design: the decoder holds only what the label set and the decoding options fix (the label space, the
IOB2 transitions, the same-type matrix, which decoding column holds a word's score), so it is built
once per model and shared by every call and thread; the arrays come in per call. The numpy work is
`decoding`'s; this module maps its word labels back to character offsets, so `text[start:end] ==
entity.text` holds by construction. The default case (whitespace words, `first`) has a path of its
own with a handful of numpy calls (`text_word_entities`): a single sentence's decoding is dominated by
per-call overhead, and every default call takes that path. It gives the general path's answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from tokenizers import Encoding

from .decoding import (
    DECODED_COLUMNS,
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
    text_words,
)
from .labels import is_iob_label_set, to_iob2

__all__ = ["Entity", "EntityDecoder"]


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


class EntityDecoder:
    """Entities and word tags of one bundle's label set, under one decoding and word split.

    decoding: "constrained" or "argmax" (`decoding.decoding_transitions`). word_split: "text" or
    "pipeline". unk_id: the tokenizer's unknown token (-1 for none), which the pipeline's word split
    treats as a word of its own.
    """

    def __init__(self, labels: tuple[str, ...], *, decoding: str, word_split: str, unk_id: int) -> None:
        self.labels = labels
        self.word_split = word_split
        self.unk_id = unk_id
        self.space = LabelSpace.from_labels(labels)
        self.iob2 = is_iob_label_set(labels)
        self.allowed = decoding_transitions(labels, decoding)
        # constrained decoding scores a word by its entity type, not its possibly repaired label (decoding.py)
        self.same_kind = same_kind_matrix(self.space) if self.allowed is not None else None
        self.allowed_rows: list[list[bool]] = [] if self.allowed is None else self.allowed.tolist()
        # which column after the logits holds a word's score: its entity type's probability or its label's
        self.chance_column = DECODED_COLUMNS.index("kind_chance" if self.same_kind is not None else "label_chance")

    def is_first_of_text_words(self, strategy: str) -> bool:
        """Whether `text_word_entities` decodes a call: the default case (whitespace words, `first`)."""
        return strategy == "first" and self.word_split == "text"

    def text_word_entities(
        self, text: str, offsets: Sequence[tuple[int, int]], words: list[tuple[int, int]], logits: np.ndarray
    ) -> list[Entity]:
        """`entities` for the default case (text words, `first`) with a handful of numpy calls.

        Same result as the general path. `logits` may carry the graph's decoding columns after the
        logits (`DECODED_OUTPUT`): then each word's label and score are read from them, unless IOB2
        forbids that label sequence and the search over the logits runs.
        """
        if logits.shape[0] == 0 or not words:
            return []
        firsts = [first for first, _ in words]
        n_labels = len(self.labels)
        if logits.shape[1] > n_labels:
            decoded = logits[:, n_labels:].tolist()
            label_ids = [int(decoded[i][0]) for i in firsts]
            if self.allowed is None or sequence_allowed(label_ids, self.allowed_rows):
                scores = [decoded[i][self.chance_column] for i in firsts]
                return self._group_entities(text, offsets, words, label_ids, scores)
            logits = logits[:, :n_labels]
        rows = logits[firsts]
        label_ids = rows.argmax(axis=1).tolist()
        peak = rows.max(axis=1, keepdims=True)
        exp = np.exp(rows - peak)
        totals = exp.sum(axis=1, keepdims=True)
        if self.allowed is not None and not sequence_allowed(label_ids, self.allowed_rows):
            label_ids = constrained_labels(rows - peak - np.log(totals), self.allowed).tolist()
        # each label's probability, or with constrained decoding its entity type's (B-X + I-X)
        mass = exp if self.same_kind is None else exp @ self.same_kind
        chances = (mass / totals).tolist()
        word_scores = [row[label] for row, label in zip(chances, label_ids, strict=True)]
        return self._group_entities(text, offsets, words, label_ids, word_scores)

    def _group_entities(
        self,
        text: str,
        offsets: Sequence[tuple[int, int]],
        words: list[tuple[int, int]],
        label_ids: list[int],
        word_scores: list[float],
    ) -> list[Entity]:
        """Entities of text words (`text_word_spans`) from each word's label and score."""
        entities = []
        for first_word, last_word, kind, score in group_words(label_ids, word_scores, self.space):
            begin = offsets[words[first_word][0]][0]
            end = extend_initial(text, offsets[words[last_word][1]][1])
            entities.append(Entity(text[begin:end], self.space.kinds[kind], begin, end, score))
        return entities

    def entities(self, text: str, enc: Encoding, logits: np.ndarray, strategy: str) -> list[Entity]:
        """Entities of `text` from its encoding's token logits, under any aggregation `strategy`."""
        if logits.shape[0] == 0:
            return []
        scores = softmax(logits)
        offsets = np.asarray(enc.offsets, dtype=np.int64).reshape(-1, 2)
        text_mode = self.word_split == "text"
        if text_mode:
            starts, voting = text_words(text, offsets)
        else:
            unknown = np.asarray(enc.ids) == self.unk_id
            starts = pipeline_word_starts(text, offsets, enc.tokens, unknown)
            voting = np.ones(len(starts), dtype=bool)
        tokens = np.flatnonzero(voting)
        label_ids, word_scores, first = aggregate_words(
            scores[tokens], starts[tokens], strategy, self.allowed, self.same_kind
        )
        first_token = tokens[first]
        last_token = tokens[np.append(first[1:], len(tokens)) - 1]
        entities = []
        for first_word, last_word, kind, score in group_words(label_ids, word_scores, self.space):
            begin = int(offsets[first_token[first_word], 0])
            end = int(offsets[last_token[last_word], 1])
            if text_mode:
                end = extend_initial(text, end)
            entities.append(Entity(text[begin:end], self.space.kinds[kind], begin, end, score))
        return entities

    def word_tags(self, n_words: int, enc: Encoding, scores: np.ndarray, strategy: str) -> list[str]:
        """One tag per word of a pre-split sentence from its token probabilities (IOB2 for an IOB label set)."""
        tags = ["O"] * n_words
        if scores.shape[0] == 0:
            return tags
        word_ids = np.asarray([-1 if w is None else w for w in enc.word_ids], dtype=np.int64)
        starts = np.ones(len(word_ids), dtype=bool)
        starts[1:] = word_ids[1:] != word_ids[:-1]
        label_ids, _, first_token = aggregate_words(scores, starts, strategy, self.allowed)
        for word, label in zip(word_ids[first_token].tolist(), label_ids.tolist(), strict=True):
            if word >= 0:
                tags[word] = self.labels[label]
        return to_iob2(tags) if self.iob2 else tags
