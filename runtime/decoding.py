"""From per-token scores to words, tags and entities, with numpy and no model code.

The aggregation strategies mean what they mean in transformers' TokenClassificationPipeline, so a
user who moves from the pipeline gets the same entities: `simple` labels every token on its own;
`first`, `average` and `max` first give every word one label (from its first token, from the mean of
its tokens' scores, or from its most confident token) and then join neighbouring words of the same
type, where a `B-` label starts a new entity.

How a word's label is picked from its scores is the `decoding`. `argmax` takes each word's best label
on its own, as the pipeline does; it can produce sequences IOB2 forbids (`O I-ORG`, `B-ORG I-LOC`),
which evaluation and grouping then read as extra entities. `constrained` (the default for IOB2 label
sets) picks the most probable sequence IOB2 allows (Viterbi over log-probabilities, a transition
either allowed or not): an `I-X` only after `B-X` or `I-X`. When the per-word argmax is already a valid
sequence it is the answer and no search runs, so the common case costs one check. No transition
weights are learned: there is nothing to train or ship, and a checkpoint from anywhere gains it (what
it gains on CoNLL-2003 is in benchmarks/PERFORMANCE.md).

What a *word* is matters more than the strategy. The pipeline calls every piece its pre-tokenizer
splits off a word, so `U.S.` is four words and `Jean-Pierre` three, while CoNLL-style training data
(and therefore the model) treats each as one word labelled by its first sub-token. The default
`word_split="text"` follows the training data: a word is a whitespace-delimited chunk, labelled by its
first token that holds a letter or digit; punctuation at the chunk's edges neither votes nor becomes
part of an entity (`Paris,` gives `Paris`), except the period of an initial or a dotted abbreviation
(`B.`, `U.S.`). `word_split="pipeline"` reproduces the pipeline's
words exactly, for parity checks.

An entity's *score* is the mean over its words of a per-word score. Under `argmax` a word's score is
the probability of its chosen label, as the pipeline reports it. Under `constrained` a word's label
may be a repair (`I-ORG` read as `B-ORG` at an entity's start), and the probability of the repaired
label alone says little: a word at 0.58 `I-ORG` and 0.20 `B-ORG` is an ORG word at 0.78, yet would
score 0.20. So there a word's score is the probability of the entity's type, `P(B-X) + P(I-X)`
(`same_kind_matrix`), which measures the model's confidence that the word belongs to an `X` entity
whichever position label won.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .labels import is_iob_label_set

__all__ = [
    "DECODED_COLUMNS",
    "DECODED_OUTPUT",
    "DECODINGS",
    "STRATEGIES",
    "WORD_SPLITS",
    "allowed_transitions",
    "constrained_labels",
    "decoding_transitions",
    "LabelSpace",
    "softmax",
    "text_words",
    "text_word_spans",
    "extend_initial",
    "pipeline_word_starts",
    "aggregate_words",
    "group_words",
    "same_kind_matrix",
    "sequence_allowed",
]

STRATEGIES = ("first", "average", "max", "simple")
WORD_SPLITS = ("text", "pipeline")
DECODINGS = ("constrained", "argmax")
DECODED_OUTPUT = "decoded"
"""A graph's second output, added at export (export/decoding_outputs.py): per token the logits, then
`DECODED_COLUMNS`. A graph without it is decoded from its logits in numpy, with the same answers."""
DECODED_COLUMNS = ("label_id", "label_chance", "kind_chance")
"""The columns after the logits in `DECODED_OUTPUT`: the argmax label (as a float), its probability, and
the probability of its entity type (`B-X + I-X`; the label's own for label sets that are not IOB2)."""


@dataclass(frozen=True)
class LabelSpace:
    """Labels split into entity kind and begin flag, indexed by label id."""

    labels: tuple[str, ...]
    kinds: tuple[str, ...]  # entity type of each label ("O" for outside)
    kind_ids: tuple[int, ...]  # label id -> kind id
    begins: tuple[bool, ...]  # label id -> starts a new entity
    outside_kind: int

    @classmethod
    def from_labels(cls, labels: Sequence[str]) -> LabelSpace:
        kinds: list[str] = []
        kind_ids, begins = [], []
        for label in labels:
            # Same reading as the pipeline's get_tag: labels without a B-/I- prefix continue.
            if label.startswith(("B-", "I-")):
                kind, begin = label[2:], label.startswith("B-")
            else:
                kind, begin = label, False
            if kind not in kinds:
                kinds.append(kind)
            kind_ids.append(kinds.index(kind))
            begins.append(begin)
        if "O" not in kinds:
            kinds.append("O")
        return cls(
            labels=tuple(labels),
            kinds=tuple(kinds),
            kind_ids=tuple(kind_ids),
            begins=tuple(begins),
            outside_kind=kinds.index("O"),
        )


def allowed_transitions(space: LabelSpace) -> np.ndarray:
    """IOB2's allowed transitions: `allowed[a, b]` says label b may follow label a; row `len(labels)` is the start.

    Only a continuation (`I-X`) is ever forbidden: it needs a `B-X` or `I-X` before it.
    """
    n = len(space.labels)
    allowed = np.ones((n + 1, n), dtype=bool)
    for b in range(n):
        if space.begins[b] or space.kind_ids[b] == space.outside_kind:
            continue
        allowed[n, b] = False
        for a in range(n):
            allowed[a, b] = space.kind_ids[a] == space.kind_ids[b]
    return allowed


def decoding_transitions(labels: Sequence[str], decoding: str) -> np.ndarray | None:
    """The `allowed` table that `decoding` asks for over `labels`, or None for argmax.

    Only an IOB2 label set has transitions to respect; any other decodes by argmax.
    """
    if decoding not in DECODINGS:
        raise ValueError(f"decoding={decoding!r} is not one of {', '.join(DECODINGS)}")
    if decoding != "constrained" or not is_iob_label_set(labels):
        return None
    return allowed_transitions(LabelSpace.from_labels(labels))


def same_kind_matrix(space: LabelSpace) -> np.ndarray:
    """`same[a, b]` is 1.0 when labels a and b have the same entity type (`B-X`, `I-X`), else 0.0.

    `(probabilities * same[label_ids]).sum(axis=1)` is then each word's probability of its label's type.
    """
    kinds = np.asarray(space.kind_ids)
    same: np.ndarray = (kinds[:, None] == kinds[None, :]).astype(np.float32)
    return same


def constrained_labels(log_scores: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """The label sequence with the highest total log-score among those `allowed` permits (Viterbi).

    `log_scores` is words x labels. The per-word argmax is returned as is when it is allowed, since
    it is then the best sequence; otherwise a search over all sequences runs.
    """
    best: np.ndarray = log_scores.argmax(axis=1)
    n, start = len(best), allowed.shape[0] - 1
    if n == 0 or allowed[np.append(start, best[:-1]), best].all():
        return best
    penalty = np.where(allowed, 0.0, -1e9)  # finite, so -inf log-scores cannot make NaN
    scores = np.maximum(log_scores.astype(np.float64), -1e4)
    total = penalty[start] + scores[0]
    back = np.empty((n, scores.shape[1]), dtype=np.int64)
    for k in range(1, n):
        candidates = total[:, None] + penalty[:start]
        back[k] = candidates.argmax(axis=0)
        total = candidates[back[k], np.arange(scores.shape[1])] + scores[k]
    path = np.empty(n, dtype=np.int64)
    path[-1] = total.argmax()
    for k in range(n - 1, 0, -1):
        path[k - 1] = back[k, path[k]]
    return path


def sequence_allowed(label_ids: Sequence[int], allowed_rows: Sequence[Sequence[bool]]) -> bool:
    """Whether `allowed_rows` (`allowed_transitions(...).tolist()`) permits `label_ids` as they stand,
    in which case they are `constrained_labels`' answer: the check in plain Python, for a sentence's
    labels already in a list."""
    previous = len(allowed_rows) - 1
    for label in label_ids:
        if not allowed_rows[previous][label]:
            return False
        previous = label
    return True


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax over the last axis, stable for large logits."""
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    scores: np.ndarray = shifted / shifted.sum(axis=-1, keepdims=True)
    return scores


def text_words(text: str, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Words as whitespace chunks: (first core token of each word, which tokens are core).

    A chunk's core runs from its first to its last token that holds a letter or digit; only core tokens
    vote on the word's label and only the core is part of an entity, so `(Reuters),` is the word
    `Reuters`. A chunk of punctuation only is one word per token (see `text_word_spans`).
    """
    n = len(offsets)
    starts = np.zeros(n, dtype=bool)
    core = np.zeros(n, dtype=bool)
    for first, last in text_word_spans(text, offsets.tolist()):
        starts[first] = True
        core[first : last + 1] = True
    return starts, core


def text_word_spans(text: str, offsets: Sequence[Sequence[int]]) -> list[tuple[int, int]]:
    """Words as (first core token, last core token) pairs: one pass in plain Python, which for
    sentence-sized inputs is several times faster than the equivalent numpy calls."""
    words: list[tuple[int, int]] = []

    def close(lo: int, hi: int, first: int, last: int) -> None:
        if first < 0:
            words.extend((i, i) for i in range(lo, hi))
        else:
            words.append((first, last))

    lo, first, last, previous_end = 0, -1, -1, 0
    for i, (begin, end) in enumerate(offsets):
        if i and begin > previous_end:
            gap = text[previous_end:begin]
            if gap.isspace() or any(ch.isspace() for ch in gap):
                close(lo, i, first, last)
                lo, first, last = i, -1, -1
        span = text[begin:end]
        if span.isalnum() or any(ch.isalnum() for ch in span):
            if first < 0:
                first = i
            last = i
        previous_end = end
    if offsets:
        close(lo, len(offsets), first, last)
    return words


def extend_initial(text: str, end: int) -> int:
    """Keep the period of an initial or dotted abbreviation (`B.`, `U.S.`) that ends an entity."""
    if (
        end < len(text)
        and text[end] == "."
        and end >= 1
        and text[end - 1].isalpha()
        and (end == 1 or not text[end - 2].isalnum())
    ):
        return end + 1
    return end


def pipeline_word_starts(text: str, offsets: np.ndarray, tokens: Sequence[str], unknown: np.ndarray) -> np.ndarray:
    """Which tokens start a word by the pipeline's rule for word-aware (WordPiece/BPE) tokenizers."""
    n = len(offsets)
    starts = np.fromiter(
        (len(tok) == len(text[b:e]) for tok, (b, e) in zip(tokens, offsets.tolist(), strict=True)), dtype=bool, count=n
    )
    starts |= unknown
    if n:
        starts[0] = True
    return starts


def aggregate_words(
    scores: np.ndarray,
    starts: np.ndarray,
    strategy: str,
    allowed: np.ndarray | None = None,
    same_kind: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One label per word: returns (label id, score, index of the word's first token) per word.

    `scores` are per-token probabilities (tokens x labels); `starts` marks each word's first token.
    With `allowed` (from `allowed_transitions`) the labels are decoded as a constrained sequence,
    otherwise each word takes its best label. A word's score is its chosen label's probability, or
    with `same_kind` (from `same_kind_matrix`) the probability of that label's entity type.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"aggregation strategy {strategy!r} is not one of {', '.join(STRATEGIES)}")
    if strategy == "simple":
        starts = np.ones(len(scores), dtype=bool)
    first = np.flatnonzero(starts)
    if first.size == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, np.zeros(0, dtype=scores.dtype), empty
    if strategy in ("first", "simple"):
        word_scores = scores[first]
    elif strategy == "average":
        counts = np.diff(np.append(first, len(scores)))
        word_scores = np.add.reduceat(scores, first, axis=0) / counts[:, None].astype(scores.dtype)
    else:  # max: the scores of the word's single most confident token (the first one on ties)
        counts = np.diff(np.append(first, len(scores)))
        token_max = scores.max(axis=1)
        word_max = np.maximum.reduceat(token_max, first)
        segment = np.repeat(np.arange(first.size), counts)
        hits = np.flatnonzero(token_max == word_max[segment])
        _, first_hit = np.unique(segment[hits], return_index=True)
        word_scores = scores[hits[first_hit]]
    if allowed is None:
        label_ids = word_scores.argmax(axis=1)
    else:
        label_ids = constrained_labels(np.log(np.maximum(word_scores, 1e-30)), allowed)
    if same_kind is not None:
        return label_ids, (word_scores * same_kind[label_ids]).sum(axis=1), first
    return label_ids, word_scores[np.arange(first.size), label_ids], first


def group_words(
    label_ids: np.ndarray | Sequence[int], word_scores: np.ndarray | Sequence[float], space: LabelSpace
) -> list[tuple[int, int, int, float]]:
    """Join neighbouring words into entities: (first word, last word inclusive, kind id, mean score).

    A word continues the previous group when it has the same kind and its label is not `B-`; groups of
    kind `O` are dropped. A plain loop over words: sentences have tens of them, where numpy's per-call
    cost would dominate.
    """
    kinds, begins, outside = space.kind_ids, space.begins, space.outside_kind
    labels = label_ids.tolist() if isinstance(label_ids, np.ndarray) else label_ids
    scores = word_scores.tolist() if isinstance(word_scores, np.ndarray) else word_scores
    groups: list[tuple[int, int, int, float]] = []
    current, first, total = -1, 0, 0.0
    for w, (label, score) in enumerate(zip(labels, scores, strict=True)):
        kind = kinds[label]
        if w == 0 or kind != current or begins[label]:
            if w and current != outside:
                groups.append((first, w - 1, current, total / (w - first)))
            current, first, total = kind, w, 0.0
        total += score
    if labels and current != outside:
        groups.append((first, len(labels) - 1, current, total / (len(labels) - first)))
    return groups
