"""Batching: which training rows go together, and padded tensors of a batch.

Padding is the runtime's (`runtime.session.batch_inputs`), turned into torch tensors without a copy,
so training, PyTorch tagging and the ONNX runtime build their inputs alike. Batches are padded to
their own longest row; grouping rows by length (`--group-by-length`) cuts the padding further at
some cost in accuracy, so it is opt-in.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from ner_export.runtime.session import batch_inputs, pad_rows

from ._encoding import Feature

_GROUP_BLOCK = 50  # batches per block sorted by length when grouping


def shuffled_batches(
    lengths: Sequence[int], batch_size: int, shuffler: random.Random, group_by_length: bool
) -> list[list[int]]:
    """Shuffled batches of row indices; grouped by length, each is drawn from a block of similar lengths.

    Grouping shuffles, cuts the order into blocks of 50 batches, sorts each block by length and shuffles
    the batches, so padding (most of the cost at random order) nearly vanishes while each epoch still
    sees a new mix.
    """
    order = list(range(len(lengths)))
    shuffler.shuffle(order)
    if not group_by_length:
        return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    block = batch_size * _GROUP_BLOCK
    batches = []
    for start in range(0, len(order), block):
        chunk = sorted(order[start : start + block], key=lambda i: lengths[i], reverse=True)
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    shuffler.shuffle(batches)
    return batches


def collate(torch: Any, rows: Sequence[Feature], pad_id: int) -> dict[str, Any]:
    """Padded tensors of (ids, labels, token types or None) rows; token_type_ids only when rows have types."""
    with_types = rows[0][2] is not None
    arrays = batch_inputs(
        [ids for ids, _, _ in rows],
        pad_id=pad_id,
        types=[types or [] for _, _, types in rows] if with_types else None,
        token_types=with_types,
    )
    arrays["labels"] = pad_rows([labels for _, labels, _ in rows], fill=-100)
    return {name: torch.from_numpy(array) for name, array in arrays.items()}
