"""Encoding: words to token-id examples, with the label or word each token stands for.

Training and PyTorch tagging read sentences the same way the runtime does, so that a checkpoint's
dev F1, its export validation and the bundle's predictions agree: the first sub-word of a word
carries the word (later pieces and special tokens carry nothing), document context and long-sentence
windows come from `runtime.context`, casing classes from `runtime.casing`. The tokenizer runs once
over all sentences (the fast tokenizer's batch encoder), and everything after works on id lists.

The first sub-word is also what the runtime reads for a pre-split word (`NerModel.predict_words`),
while raw text is read by each whitespace chunk's first token that holds a letter or digit
(`runtime.decoding.text_words`). The two differ only for a word whose first token is punctuation and
a later one is not (`'s`, `(Paris),`): 451 of CoNLL-2003 test's 46,435 words. Training stays on the
first sub-word so that a checkpoint and its bundle read pre-split words alike; docs/span-data.md
("Which token carries a word") gives the measurement.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ner_export.runtime.casing import case_ids
from ner_export.runtime.conll import Sentence
from ner_export.runtime.context import CONTEXT_MODES, default_stride, pack_with_context, plan_windows

Example = tuple[int, list[int], list[int] | None, list[int | None]]
"""(sentence index, input ids, token types or None, word index at each word's first token or None)."""

Feature = tuple[list[int], list[int], list[int] | None]
"""(input ids, label id per token (-100: not trained on), token types or None): one training row."""


def special_tokens(tokenizer: Any) -> tuple[list[int], list[int]]:
    """The ids a tokenizer puts before and after a sequence ([CLS] and [SEP] for BERT)."""
    built = tokenizer.build_inputs_with_special_tokens([-1])
    at = built.index(-1)
    return built[:at], built[at + 1 :]


def first_subword_mask(word_ids: Sequence[int | None]) -> list[bool]:
    """True at the first token of each word (special tokens and continuation pieces are False)."""
    previous = None
    mask = []
    for word in word_ids:
        mask.append(word is not None and word != previous)
        previous = word
    return mask


def encode_examples(
    tokenizer: Any,
    words: Sequence[Sequence[str]],
    max_length: int,
    context: str = "none",
    documents: Sequence[int] | None = None,
    split_long: bool = False,
    casing: bool = False,
) -> list[Example]:
    """(sentence index, input ids, token types, word per token) examples, with document context if asked.

    Token types are the casing class of every token (`ner_export.runtime.casing`) when `casing`, else None.

    The word entry is the word's index at the first sub-word of each of the target sentence's words
    and None everywhere else (special tokens, continuation pieces, context), so exactly the target's
    words are labelled or read (`ner_export.runtime.context` describes the window scheme). A sentence
    longer than the window is cut to it, unless `split_long`: then it is read in overlapping windows
    of its own (a half-window overlap with context, a quarter without), as the runtime reads it, and
    yields one example per window.
    """
    prefix, suffix = special_tokens(tokenizer)
    budget = max_length - len(prefix) - len(suffix)
    if budget < 1:
        raise ValueError(f"max_length={max_length} leaves no room between the special tokens")
    if context not in CONTEXT_MODES:
        raise ValueError(f"context must be one of {', '.join(CONTEXT_MODES)}, got {context!r}")
    if not words:
        return []
    encoded = tokenizer(
        [list(w) for w in words], is_split_into_words=True, add_special_tokens=False, return_offsets_mapping=casing
    )
    ids = [encoded["input_ids"][i] for i in range(len(words))]
    word_ids = [encoded.word_ids(i) for i in range(len(words))]
    types = None
    if casing:
        types = [case_ids(words[i], encoded["offset_mapping"][i], word_ids[i]) for i in range(len(words))]
    firsts = [[w if first else None for w, first in zip(row, first_subword_mask(row), strict=True)] for row in word_ids]

    def pack(rows: list[list[int]]) -> list[Any]:
        # cuts depend only on lengths and documents, so ids and types are cut alike
        if context == "document":
            return pack_with_context(rows, documents if documents is not None else [0] * len(words), budget)
        return [pack_with_context([row], [0], budget)[0] for row in rows]

    windows = pack(ids)
    type_windows = pack(types) if types is not None else None
    stride = default_stride(budget, context)
    edge = [0] * len(prefix), [0] * len(suffix)
    examples: list[Example] = []
    for i, window in enumerate(windows):
        if split_long and len(ids[i]) > budget:
            for a, b, own_a, own_b in plan_windows(len(ids[i]), budget, stride):
                owned = [None] * (own_a - a) + firsts[i][own_a:own_b] + [None] * (b - own_b)
                row_types = edge[0] + types[i][a:b] + edge[1] if types is not None else None
                positions = [None] * len(prefix) + owned + [None] * len(suffix)
                examples.append((i, prefix + ids[i][a:b] + suffix, row_types, positions))
            continue
        kept = firsts[i][: window.target_end - window.target_start]
        positions = [None] * (len(prefix) + window.target_start) + kept
        positions += [None] * (len(window.ids) - window.target_end + len(suffix))
        row_types = edge[0] + list(type_windows[i].ids) + edge[1] if type_windows is not None else None
        examples.append((i, prefix + list(window.ids) + suffix, row_types, positions))
    return examples


def group_sentences(token_counts: Sequence[int], documents: Sequence[int], target_tokens: int) -> list[list[int]]:
    """Runs of consecutive sentences of one document holding at most `target_tokens` tokens together.

    A sentence longer than `target_tokens` is a group of its own; sentence order is kept.
    """
    groups: list[list[int]] = []
    current: list[int] = []
    size = 0
    for i, count in enumerate(token_counts):
        if current and (documents[i] != documents[current[-1]] or size + count > target_tokens):
            groups.append(current)
            current, size = [], 0
        current.append(i)
        size += count
    if current:
        groups.append(current)
    return groups


def training_features(
    tokenizer: Any,
    sentences: Sequence[Sentence],
    label2id: dict[str, int],
    max_length: int,
    context: str = "none",
    target_tokens: int = 0,
    casing: bool = False,
) -> list[Feature]:
    """(input ids, label per token, token types or None) training rows.

    With `target_tokens`, consecutive sentences of a document are packed into one target of up to that
    many tokens, all of whose words are labelled, and the rest of the window is their context: the same
    context on both sides as one-sentence targets get, for a fraction of the windows (each window labels
    several sentences instead of one). Inference still reads one sentence per window.

    A word that tokenizes to no sub-word (a lone zero-width character) has no token to carry its label:
    it is left out of training, and every other word keeps its own label; a row left without any
    labelled token is dropped.
    """
    words = [list(s.words) for s in sentences]
    tags = [list(s.tags) for s in sentences]
    documents = [s.document for s in sentences]
    if target_tokens and sentences:
        encoded = tokenizer(words, is_split_into_words=True, add_special_tokens=False)
        groups = group_sentences([len(row) for row in encoded["input_ids"]], documents, target_tokens)
        words = [[w for i in group for w in words[i]] for group in groups]
        tags = [[t for i in group for t in tags[i]] for group in groups]
        documents = [documents[group[0]] for group in groups]
    examples = encode_examples(tokenizer, words, max_length, context, documents, casing=casing)
    features = [
        (ids, [-100 if w is None else label2id[tags[i][w]] for w in positions], types)
        for i, ids, types, positions in examples
    ]
    # a sentence whose words all tokenize to nothing (zero-width characters) has no label to learn, and
    # a batch of such rows alone would make the loss 0/0; it still serves as context for its neighbours
    return [feature for feature in features if any(label != -100 for label in feature[1])]
