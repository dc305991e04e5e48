"""Label schemes and entity scoring, cross-checked against seqeval (the reference implementation)."""

from __future__ import annotations

import random

import pytest

from ner_export.runtime.labels import entity_chunks, entity_report, entity_scores, sorted_labels, split_tag, to_iob2


def test_split_tag() -> None:
    assert split_tag("B-PER") == ("B", "PER")
    assert split_tag("I-MISC-X") == ("I", "MISC-X")
    assert split_tag("O") == ("O", "")
    for bad in ("", "B", "B-", "X-PER", "PER", "o"):
        with pytest.raises(ValueError, match="neither"):
            split_tag(bad)


def test_to_iob2() -> None:
    assert to_iob2(["I-PER", "I-PER", "O", "I-LOC", "B-LOC", "I-ORG"]) == [
        "B-PER",
        "I-PER",
        "O",
        "B-LOC",
        "B-LOC",
        "B-ORG",
    ]
    assert to_iob2(["S-PER", "B-LOC", "E-LOC", "B-ORG", "I-ORG", "E-ORG"], "BIOES") == [
        "B-PER",
        "B-LOC",
        "I-LOC",
        "B-ORG",
        "I-ORG",
        "I-ORG",
    ]
    with pytest.raises(ValueError, match="BIOES"):
        to_iob2(["S-PER"], "IOB2")


def test_entity_chunks() -> None:
    assert entity_chunks(["B-PER", "I-PER", "O", "I-LOC", "I-ORG", "B-ORG", "I-ORG"]) == [
        ("PER", 0, 2),
        ("LOC", 3, 4),
        ("ORG", 4, 5),
        ("ORG", 5, 7),
    ]


def test_sorted_labels() -> None:
    assert sorted_labels(["I-PER", "O", "B-PER", "B-LOC", "O"]) == ["O", "B-LOC", "B-PER", "I-PER"]


def test_scores_equal_seqeval_on_random_sequences() -> None:
    seqeval = pytest.importorskip("seqeval.metrics", reason="seqeval (train extra) is the reference")
    rng = random.Random(0)
    tags = ["O", "O", "O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "I-MISC"]
    for _ in range(50):
        gold, pred = [], []
        for _ in range(rng.randint(1, 20)):
            n = rng.randint(1, 15)
            g = [rng.choice(tags) for _ in range(n)]
            p = [t if rng.random() < 0.7 else rng.choice(tags) for t in g]
            gold.append(g)
            pred.append(p)
        ours = entity_scores(gold, pred)
        assert ours.f1 == pytest.approx(seqeval.f1_score(gold, pred), abs=1e-12)
        assert ours.precision == pytest.approx(seqeval.precision_score(gold, pred), abs=1e-12)
        assert ours.recall == pytest.approx(seqeval.recall_score(gold, pred), abs=1e-12)
        per_type = seqeval.classification_report(gold, pred, output_dict=True, zero_division=0)
        for kind, scores in entity_report(gold, pred).items():
            if kind != "micro":
                assert scores.f1 == pytest.approx(per_type[kind]["f1-score"], abs=1e-12)
                assert scores.true_entities == per_type[kind]["support"]


def test_length_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError, match="sentence 0"):
        entity_scores([["O"]], [["O", "O"]])
