"""PyTorch tagging: IOB2 tags per word from a checkpoint, read the way the runtime reads a bundle.

Dev scoring during training, export validation, `ner-export eval` on a checkpoint and the bench's
PyTorch rows all tag through here, so a checkpoint and its bundle are compared on equal terms: the
same windows and document context (`_encoding`), each word's scores from its first sub-word, and the
runtime's decoding (`runtime.decoding`: constrained IOB2 by default). Examples are sorted by length
before batching, which keeps padding small without changing any result.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ner_export.runtime.decoding import constrained_labels, decoding_transitions
from ner_export.runtime.labels import is_iob_label_set, to_iob2

from ._batching import collate
from ._checkpoint import checkpoint_casing, import_torch
from ._encoding import encode_examples


def tag_words(
    model: Any,
    tokenizer: Any,
    sentences: Sequence[Sequence[str]],
    batch_size: int = 32,
    max_length: int = 512,
    context: str = "none",
    documents: Sequence[int] | None = None,
    decoding: str = "constrained",
) -> list[list[str]]:
    """IOB2 tags per word from a PyTorch checkpoint, each word labelled by its first sub-word.

    `decoding` is the runtime's: "constrained" picks the most probable sequence IOB2 allows, "argmax"
    each word's best label (see `ner_export.runtime.decoding`).

    With `context="document"` each sentence is read inside its document's neighbours (`documents`
    gives each sentence's document id; None means one document). A sentence longer than max_length
    is read in overlapping windows, like the runtime reads it; nothing is cut off.
    """
    labels = [model.config.id2label[k] for k in range(len(model.config.id2label))]
    allowed = decoding_transitions(labels, decoding)
    iob = is_iob_label_set(labels)
    torch = import_torch()
    casing = checkpoint_casing(model.config)
    examples = encode_examples(tokenizer, sentences, max_length, context, documents, split_long=True, casing=casing)
    pad_id = tokenizer.pad_token_id or 0
    order = sorted(range(len(examples)), key=lambda k: len(examples[k][1]))
    word_scores = [np.zeros((len(words), len(labels)), dtype=np.float32) for words in sentences]
    covered = [np.zeros(len(words), dtype=bool) for words in sentences]  # a word without tokens stays O
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            chunk = [examples[k] for k in order[start : start + batch_size]]
            batch = collate(torch, [(ids, [0] * len(ids), types) for _, ids, types, _ in chunk], pad_id)
            batch.pop("labels")
            log_probs = torch.log_softmax(model(**batch).logits.float(), dim=-1).numpy()
            for (i, _, _, positions), rows in zip(chunk, log_probs, strict=True):
                for token, word in enumerate(positions):
                    if word is not None:
                        word_scores[i][word] = rows[token]
                        covered[i][word] = True
    tags: list[list[str]] = []
    for scores, mask in zip(word_scores, covered, strict=True):
        sentence_tags = ["O"] * len(mask)
        words = np.flatnonzero(mask)
        chosen = scores[words].argmax(axis=1) if allowed is None else constrained_labels(scores[words], allowed)
        for word, label in zip(words.tolist(), chosen.tolist(), strict=True):
            sentence_tags[word] = labels[label]
        tags.append(to_iob2(sentence_tags) if iob else sentence_tags)
    return tags
