"""Span scores: exact matches per type, micro and macro, equal to seqeval's on the same data as word tags."""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

import pytest

from ner_export.runtime.conll import Sentence, read_conll
from ner_export.runtime.conll_spans import sentence_records, write_span_records
from ner_export.runtime.errors import InputError
from ner_export.runtime.labels import entity_chunks
from ner_export.runtime.span_records import Span
from ner_export.runtime.span_scoring import score_span_files, span_scores

SAMPLE = Path(__file__).resolve().parents[1] / "finetune" / "sample"
TYPES = ("PER", "ORG", "LOC", "MISC", "DATE")  # DATE: a type only the predictions have


def _mistaken(sentence: Sentence, rng: random.Random) -> Sentence:
    """The sentence's tags with a model's kinds of mistakes: wrong type, missed, cut short, invented, bad I-."""
    tags = list(sentence.tags)
    for kind, first, end in entity_chunks(tags):
        roll = rng.random()
        if roll < 0.15:
            other = rng.choice([t for t in TYPES if t != kind])
            tags[first:end] = [f"B-{other}"] + [f"I-{other}"] * (end - first - 1)
        elif roll < 0.25:
            tags[first:end] = ["O"] * (end - first)
        elif roll < 0.35 and end - first > 1:
            tags[end - 1] = "O"
    outside = [i for i, t in enumerate(tags) if t == "O"]
    if outside and rng.random() < 0.2:
        tags[rng.choice(outside)] = rng.choice(["B-DATE", "I-ORG", "B-PER"])  # "I-ORG" after O: seqeval's lenient start
    return replace(sentence, tags=tuple(tags))


@pytest.fixture(scope="module")
def converted(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Sentence], list[Sentence], Path, Path]:
    gold = read_conll(SAMPLE / "dev.txt")
    rng = random.Random(7)
    predicted = [_mistaken(s, rng) for s in gold]
    folder = tmp_path_factory.mktemp("scores")
    write_span_records(folder / "gold.jsonl", sentence_records(gold))
    write_span_records(folder / "predicted.jsonl", sentence_records(predicted))
    return gold, predicted, folder / "gold.jsonl", folder / "predicted.jsonl"


def test_span_scores_equal_seqeval_on_the_same_data_written_both_ways(
    converted: tuple[list[Sentence], list[Sentence], Path, Path],
) -> None:
    from seqeval.metrics import classification_report, f1_score, precision_score, recall_score

    gold, predicted, gold_file, predicted_file = converted
    y_true, y_pred = [list(s.tags) for s in gold], [list(s.tags) for s in predicted]
    scores = score_span_files(gold_file, predicted_file)
    assert 0.5 < scores.micro.f1 < 0.95  # the mistakes matter, and not everything is wrong
    for average in ("micro", "macro"):
        ours = (
            (scores.micro.precision, scores.micro.recall, scores.micro.f1)
            if average == "micro"
            else (scores.macro_precision, scores.macro_recall, scores.macro_f1)
        )
        theirs = tuple(
            metric(y_true, y_pred, average=average, zero_division=0)
            for metric in (precision_score, recall_score, f1_score)
        )
        assert ours == pytest.approx(theirs, abs=1e-12)
    report = classification_report(y_true, y_pred, output_dict=True, zero_division=0)
    assert set(scores.per_type) == {k for k in report if not k.endswith("avg")} == set(TYPES)
    for kind, s in scores.per_type.items():
        expected = report[kind]
        assert (s.precision, s.recall, s.f1, s.true_entities) == pytest.approx(
            (expected["precision"], expected["recall"], expected["f1-score"], expected["support"]), abs=1e-12
        )


def test_exact_matches_only() -> None:
    gold = [[Span(0, 5, "PER"), Span(10, 15, "LOC")], [Span(0, 3, "ORG")]]
    predicted = [[Span(0, 5, "PER"), Span(10, 14, "LOC")], [Span(0, 3, "LOC")]]
    scores = span_scores(gold, predicted)
    assert (scores.micro.correct, scores.micro.true_entities, scores.micro.predicted_entities) == (1, 3, 3)
    assert scores.per_type["PER"].f1 == 1.0 and scores.per_type["ORG"].recall == 0.0
    assert scores.macro_f1 == pytest.approx((1.0 + 0.0 + 0.0) / 3)
    assert scores.f1 == pytest.approx(1 / 3)
    assert "macro" in scores.table() and scores.to_dict()["per_type"]["PER"]["correct"] == 1


def test_no_span_at_all_scores_zero() -> None:
    scores = span_scores([[]], [[]])
    assert (scores.micro.f1, scores.macro_f1, scores.per_type) == (0.0, 0.0, {})


def test_records_must_pair_up(tmp_path: Path) -> None:
    write_span_records(tmp_path / "gold.jsonl", [{"text": "a b", "entities": []}, {"text": "c", "entities": []}])
    write_span_records(tmp_path / "short.jsonl", [{"text": "a b", "entities": []}])
    write_span_records(tmp_path / "other.jsonl", [{"text": "a b", "entities": []}, {"text": "d", "entities": []}])
    with pytest.raises(InputError, match="short.jsonl: 1 records, but .*gold.jsonl has 2"):
        score_span_files(tmp_path / "gold.jsonl", tmp_path / "short.jsonl")
    with pytest.raises(InputError, match="other.jsonl:2: the text differs from the gold record's at .*gold.jsonl:2"):
        score_span_files(tmp_path / "gold.jsonl", tmp_path / "other.jsonl")
    with pytest.raises(ValueError, match="2 gold records but 1 predicted"):
        span_scores([[], []], [[]])
