"""Distillation rows: the training windows a student learns from, with or without gold labels, and
their batches with the teacher's probabilities.

A labelled row is finetune's training row (`_encoding.training_features`: the same windows, context
and casing classes), its gold label on the first sub-word of each word. An unlabeled text is read the
way the runtime reads raw text: tokenized whole, cut into overlapping windows of the training length
(`runtime.context.plan_windows`, the runtime's stride), and each word is the whitespace chunk the
runtime's default word split sees, carried by its first core token (`runtime.decoding.text_words`).
Either way, the tokens that carry a word are where the teacher's probabilities are learned; other
tokens (continuation pieces, context, special tokens) carry nothing, as in training and inference.

Rows hold plain id lists, so the teacher runs once over them (`_teacher.teacher_probabilities`) and
every epoch reuses its answers; `collate_soft` puts those answers beside finetune's padded batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

from ner_export.runtime.casing import case_ids
from ner_export.runtime.conll import Sentence
from ner_export.runtime.context import default_stride, plan_windows
from ner_export.runtime.decoding import text_words

from ._batching import collate
from ._encoding import special_tokens, training_features

IGNORED = -100  # the label of a token the gold loss skips


class DistillRow(NamedTuple):
    """One training window: ids, gold label per token (IGNORED where none), token types or None, and
    the tokens that carry a word (where the teacher's probabilities are learned)."""

    ids: list[int]
    labels: list[int]
    types: list[int] | None
    positions: list[int]


@dataclass(frozen=True)
class UnlabeledRows:
    """The rows of an unlabeled file and what was read: texts used, their tokens, records skipped."""

    rows: list[DistillRow]
    texts: int
    tokens: int
    skipped_records: int


def labelled_rows(
    tokenizer: Any,
    sentences: Sequence[Sentence],
    label2id: dict[str, int],
    max_length: int,
    context: str,
    casing: bool,
) -> list[DistillRow]:
    """finetune's training rows of `sentences`, each word's first sub-word carrying its gold label."""
    features = training_features(tokenizer, sentences, label2id, max_length, context, 0, casing)
    return [
        DistillRow(ids, labels, types, [k for k, label in enumerate(labels) if label != IGNORED])
        for ids, labels, types in features
    ]


def unlabeled_rows(
    tokenizer: Any,
    path: str,
    max_length: int,
    context: str,
    casing: bool,
    *,
    fmt: str = "auto",
    text_field: str = "text",
    limit: int | None = None,
) -> UnlabeledRows:
    """Rows of the raw texts in `path` (text, JSONL, JSON or Parquet, read by `inputs.read_records`), in
    the runtime's windows; bad records and blank texts are skipped and counted. `limit`: texts to use."""
    from ner_export.inputs import read_records

    prefix, suffix = special_tokens(tokenizer)
    budget = max_length - len(prefix) - len(suffix)
    stride = default_stride(budget, context)
    rows: list[DistillRow] = []
    texts = tokens = skipped = 0
    for record in read_records(path, fmt, text_field):
        if limit is not None and texts >= limit:
            break
        if not record.ok or not record.text or not record.text.strip():
            skipped += 1
            continue
        encoded = tokenizer(record.text, add_special_tokens=False, return_offsets_mapping=True)
        ids, offsets = encoded["input_ids"], encoded["offset_mapping"]
        if not ids:
            skipped += 1
            continue
        texts += 1
        tokens += len(ids)
        starts, _ = text_words(record.text, np.asarray(offsets, dtype=np.int64).reshape(-1, 2))
        types = case_ids(record.text, offsets) if casing else None
        rows.extend(_text_windows(ids, types, starts.tolist(), budget, stride, prefix, suffix))
    return UnlabeledRows(rows, texts, tokens, skipped)


def _text_windows(
    ids: list[int],
    types: list[int] | None,
    starts: list[bool],
    budget: int,
    stride: int,
    prefix: list[int],
    suffix: list[int],
) -> list[DistillRow]:
    """The windows of one text's tokens, each owning the word starts in its owned range."""
    rows = []
    for a, b, own_a, own_b in plan_windows(len(ids), budget, stride):
        positions = [len(prefix) + t - a for t in range(own_a, own_b) if starts[t]]
        if not positions:
            continue
        window = prefix + ids[a:b] + suffix
        row_types = [0] * len(prefix) + types[a:b] + [0] * len(suffix) if types is not None else None
        rows.append(DistillRow(window, [IGNORED] * len(window), row_types, positions))
    return rows


def collate_soft(
    torch: Any, rows: Sequence[DistillRow], soft: Sequence[np.ndarray] | None, pad_id: int
) -> dict[str, Any]:
    """finetune's padded batch of `rows`, plus (when `soft` is given, one array per row of the teacher's
    probabilities at its positions) `soft_targets` (batch, width, labels) and `soft_mask` (batch, width)."""
    batch = collate(torch, [(row.ids, row.labels, row.types) for row in rows], pad_id)
    if soft is None:
        return batch
    width = batch["input_ids"].shape[1]
    labels = soft[0].shape[1]
    targets = np.zeros((len(rows), width, labels), dtype=np.float32)
    mask = np.zeros((len(rows), width), dtype=bool)
    for k, (row, probabilities) in enumerate(zip(rows, soft, strict=True)):
        targets[k, row.positions] = probabilities
        mask[k, row.positions] = True
    batch["soft_targets"] = torch.from_numpy(targets)
    batch["soft_mask"] = torch.from_numpy(mask)
    return batch
