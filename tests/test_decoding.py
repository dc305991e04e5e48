"""Decoding on hand-made score arrays: each aggregation strategy, constrained decoding, the entity grouping."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from ner_export.runtime.decoding import (
    LabelSpace,
    aggregate_words,
    allowed_transitions,
    constrained_labels,
    group_words,
    sequence_allowed,
    softmax,
)

LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
SPACE = LabelSpace.from_labels(LABELS)


def _one_hot(label: str, confidence: float = 0.9) -> np.ndarray:
    row = np.full(len(LABELS), (1 - confidence) / (len(LABELS) - 1), dtype=np.float32)
    row[LABELS.index(label)] = confidence
    return row


def test_softmax_rows_sum_to_one_and_survive_large_logits() -> None:
    probs = softmax(np.array([[1000.0, 0.0], [0.0, 0.0]], dtype=np.float32))
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    assert probs[0, 0] == 1.0


def test_strategies_pick_word_labels() -> None:
    # word 0 = tokens 0,1 ; word 1 = tokens 2,3,4
    scores = np.stack(
        [
            _one_hot("B-PER", 0.6),
            _one_hot("O", 0.9),
            _one_hot("O", 0.5),
            _one_hot("B-LOC", 0.95),
            _one_hot("B-LOC", 0.6),
        ]
    )
    starts = np.array([True, False, True, False, False])
    labels, word_scores, first = aggregate_words(scores, starts, "first")
    assert [LABELS[i] for i in labels] == ["B-PER", "O"] and first.tolist() == [0, 2]
    labels, _, _ = aggregate_words(scores, starts, "max")
    assert [LABELS[i] for i in labels] == ["O", "B-LOC"]
    labels, word_scores, _ = aggregate_words(scores, starts, "average")
    assert [LABELS[i] for i in labels] == ["O", "B-LOC"]
    np.testing.assert_allclose(word_scores[1], (0.125 + 0.95 + 0.6) / 3, rtol=1e-6)
    labels, _, first = aggregate_words(scores, starts, "simple")
    assert len(labels) == 5 and first.tolist() == [0, 1, 2, 3, 4]


def test_grouping_follows_b_and_i_tags() -> None:
    labels = np.array([LABELS.index(t) for t in ["B-PER", "I-PER", "B-PER", "O", "I-LOC", "I-LOC", "B-LOC", "I-PER"]])
    scores = np.array([0.9, 0.7, 0.8, 0.99, 0.6, 0.4, 0.5, 0.3])
    groups = group_words(labels, scores, SPACE)
    kinds = [SPACE.kinds[k] for _, _, k, _ in groups]
    assert [(a, b) for a, b, _, _ in groups] == [(0, 1), (2, 2), (4, 5), (6, 6), (7, 7)]
    assert kinds == ["PER", "PER", "LOC", "LOC", "PER"]
    np.testing.assert_allclose([s for *_, s in groups], [0.8, 0.8, 0.5, 0.5, 0.3])


def test_empty_input() -> None:
    labels, scores, first = aggregate_words(np.zeros((0, 5), dtype=np.float32), np.zeros(0, dtype=bool), "first")
    assert labels.size == 0 and group_words(labels, scores, SPACE) == []


def _valid_iob2(tags: list[str]) -> bool:
    previous = "O"
    for tag in tags:
        if tag.startswith("I-") and previous[2:] != tag[2:]:
            return False
        previous = tag
    return True


def test_allowed_transitions_forbid_only_continuations_without_their_entity() -> None:
    allowed = allowed_transitions(SPACE)
    start = len(LABELS)
    for b, label in enumerate(LABELS):
        assert allowed[start, b] == (not label.startswith("I-"))
        for a, previous in enumerate(LABELS):
            assert allowed[a, b] == (not label.startswith("I-") or previous[2:] == label[2:]), (previous, label)


def test_constrained_decoding_keeps_a_valid_argmax() -> None:
    rows = np.log(np.stack([_one_hot(t) for t in ["B-PER", "I-PER", "O", "B-LOC", "I-LOC"]]))
    assert constrained_labels(rows, allowed_transitions(SPACE)).tolist() == rows.argmax(axis=1).tolist()


def test_constrained_decoding_repairs_what_argmax_gets_wrong() -> None:
    # argmax says B-PER I-LOC: the second word is nearly as likely I-PER, which makes a valid sequence
    first = _one_hot("B-PER", 0.9)
    second = np.array([0.02, 0.02, 0.45, 0.02, 0.49], dtype=np.float32)
    labels = constrained_labels(np.log(np.stack([first, second])), allowed_transitions(SPACE))
    assert [LABELS[i] for i in labels] == ["B-PER", "I-PER"]
    # a sentence opening with I-LOC becomes B-LOC when that is the next best start
    opening = np.array([0.05, 0.05, 0.05, 0.35, 0.5], dtype=np.float32)
    assert [LABELS[i] for i in constrained_labels(np.log(opening[None]), allowed_transitions(SPACE))] == ["B-LOC"]


@pytest.mark.parametrize("seed", range(20))
def test_constrained_decoding_equals_brute_force_over_valid_sequences(seed: int) -> None:
    """Cross-check against the definition: the best-scoring valid sequence, found by enumeration."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 6))
    log_scores = np.log(softmax(rng.normal(scale=2.0, size=(n, len(LABELS)))))
    best, best_score = None, -np.inf
    for sequence in itertools.product(range(len(LABELS)), repeat=n):
        if _valid_iob2([LABELS[i] for i in sequence]):
            score = sum(log_scores[k, label] for k, label in enumerate(sequence))
            if score > best_score:
                best, best_score = list(sequence), score
    assert constrained_labels(log_scores, allowed_transitions(SPACE)).tolist() == best


@pytest.mark.parametrize("seed", range(5))
def test_sequence_allowed_agrees_with_the_transition_table(seed: int) -> None:
    allowed = allowed_transitions(SPACE)
    rows, start = allowed.tolist(), len(LABELS)
    verdicts = []
    for labels in np.random.default_rng(seed).integers(0, len(LABELS), size=(50, 4)).tolist():
        expected = bool(allowed[[start, *labels[:-1]], labels].all())
        assert sequence_allowed(labels, rows) == expected, labels
        verdicts.append(expected)
    assert any(verdicts) and not all(verdicts)
    assert sequence_allowed([], rows)


def test_aggregate_words_decodes_with_constraints_when_given_transitions() -> None:
    scores = np.stack([_one_hot("O", 0.9), np.array([0.3, 0.05, 0.05, 0.25, 0.35], dtype=np.float32)])
    starts = np.ones(2, dtype=bool)
    assert [LABELS[i] for i in aggregate_words(scores, starts, "first")[0]] == ["O", "I-LOC"]
    labels, word_scores, _ = aggregate_words(scores, starts, "first", allowed_transitions(SPACE))
    assert [LABELS[i] for i in labels] == ["O", "O"]
    np.testing.assert_allclose(word_scores, [0.9, 0.3], rtol=1e-6)  # the chosen label's probability


def test_same_kind_scores_a_word_by_its_entity_type() -> None:
    from ner_export.runtime.decoding import same_kind_matrix

    same = same_kind_matrix(SPACE)
    assert same.shape == (5, 5) and same[LABELS.index("B-PER"), LABELS.index("I-PER")] == 1.0
    assert same[LABELS.index("B-PER"), LABELS.index("B-LOC")] == 0.0 and same[0, 0] == 1.0
    # the second word's best label I-LOC (0.45) cannot start an entity: the search makes it B-LOC (0.3)
    scores = np.stack([_one_hot("O", 0.9), np.array([0.2, 0.025, 0.025, 0.3, 0.45], dtype=np.float32)])
    starts = np.ones(2, dtype=bool)
    labels, word_scores, _ = aggregate_words(scores, starts, "first", allowed_transitions(SPACE), same)
    assert [LABELS[i] for i in labels] == ["O", "B-LOC"]
    np.testing.assert_allclose(word_scores, [0.9, 0.75], rtol=1e-6)  # P(O); P(B-LOC) + P(I-LOC)
