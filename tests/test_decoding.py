"""Decoding on hand-made score arrays: each aggregation strategy and the entity grouping."""

from __future__ import annotations

import numpy as np

from ner_export.runtime.decoding import LabelSpace, aggregate_words, group_words, softmax

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
    scores = np.stack([_one_hot("B-PER", 0.6), _one_hot("O", 0.9), _one_hot("O", 0.5), _one_hot("B-LOC", 0.95), _one_hot("B-LOC", 0.6)])
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
