"""Span-level scores: exact matches of type, start and end between gold and predicted spans, per record.

A predicted span counts as correct only when a gold span of the same record has the same type and
both offsets. Precision, recall and F1 are given per type, micro-averaged (counts pooled over types)
and macro-averaged (the unweighted mean of the per-type precisions, recalls and F1s, over every type
that occurs in the gold or the predicted spans), which is what seqeval's `classification_report`
prints. When the spans align with words, these are seqeval's numbers on the same data written as
word tags (tests/test_span_scoring.py shows it on data converted both ways): an entity there is a run
of words, here the characters from its first word's start to its last word's end, and both match
exactly or not at all.

Design trade-offs: no partial credit for overlapping spans. Overlap scores exist (MUC, SemEval's
"partial"), but they make numbers incomparable with the CoNLL scores every NER paper and this
project's `eval` report. Spans are compared as given: a gold `Paris,` and a predicted `Paris` differ,
so gold data should mark entities without edge punctuation, as the runtime reports them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from .errors import InputError
from .labels import EntityScores
from .span_files import read_span_file

__all__ = ["SpanLike", "SpanScores", "span_scores", "score_span_files"]


class SpanLike(Protocol):
    """Anything with a start, an end and a label: a `Span`, a runtime `Entity`."""

    @property
    def start(self) -> int: ...

    @property
    def end(self) -> int: ...

    @property
    def label(self) -> str: ...


@dataclass(frozen=True)
class SpanScores:
    """Span-level scores per type, micro-averaged and macro-averaged."""

    per_type: dict[str, EntityScores]
    micro: EntityScores
    macro_precision: float
    macro_recall: float
    macro_f1: float

    @property
    def f1(self) -> float:
        return self.micro.f1

    def table(self) -> str:
        """A seqeval-style table: one row per type, then the micro and macro averages."""
        lines = [f"{'':>9} {'precision':>9} {'recall':>9} {'f1':>9} {'support':>8}"]
        for kind, s in self.per_type.items():
            lines.append(f"{kind:>9} {s.precision:9.4f} {s.recall:9.4f} {s.f1:9.4f} {s.true_entities:8d}")
        lines.append("")
        m = self.micro
        lines.append(f"{'micro':>9} {m.precision:9.4f} {m.recall:9.4f} {m.f1:9.4f} {m.true_entities:8d}")
        macro = (self.macro_precision, self.macro_recall, self.macro_f1)
        lines.append(f"{'macro':>9} {macro[0]:9.4f} {macro[1]:9.4f} {macro[2]:9.4f} {m.true_entities:8d}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "f1": self.micro.f1,
            "precision": self.micro.precision,
            "recall": self.micro.recall,
            "macro_f1": self.macro_f1,
            "macro_precision": self.macro_precision,
            "macro_recall": self.macro_recall,
            "per_type": {kind: vars(s) for kind, s in self.per_type.items()},
        }


def span_scores(gold: Sequence[Iterable[SpanLike]], predicted: Sequence[Iterable[SpanLike]]) -> SpanScores:
    """Scores of `predicted` against `gold`, both one collection of spans per record, in the same order."""
    if len(gold) != len(predicted):
        raise ValueError(f"{len(gold)} gold records but {len(predicted)} predicted ones")
    counts: dict[str, list[int]] = {}  # type -> [gold, predicted, correct]
    for gold_spans, predicted_spans in zip(gold, predicted, strict=True):
        true_set = {(s.label, s.start, s.end) for s in gold_spans}
        predicted_set = {(s.label, s.start, s.end) for s in predicted_spans}
        for position, found in ((0, true_set), (1, predicted_set), (2, true_set & predicted_set)):
            for kind, _, _ in found:
                counts.setdefault(kind, [0, 0, 0])[position] += 1
    per_type = {kind: EntityScores.from_counts(*counts[kind]) for kind in sorted(counts)}
    micro = EntityScores.from_counts(*(sum(c[k] for c in counts.values()) for k in range(3)))
    n = len(per_type) or 1
    return SpanScores(
        per_type,
        micro,
        sum(s.precision for s in per_type.values()) / n,
        sum(s.recall for s in per_type.values()) / n,
        sum(s.f1 for s in per_type.values()) / n,
    )


def score_span_files(
    gold: str | Path, predicted: str | Path, offsets: str = "codepoints", predicted_offsets: str | None = None
) -> SpanScores:
    """Scores of the span file `predicted` (e.g. `predict`'s JSON Lines output) against the span file `gold`.

    Records are paired in file order and must hold the same texts (InputError naming the first pair
    that does not). `predicted_offsets` defaults to `offsets`.
    """
    gold_file = read_span_file(gold, offsets=offsets)
    predicted_file = read_span_file(predicted, offsets=predicted_offsets or offsets)
    if len(gold_file.records) != len(predicted_file.records):
        raise InputError(f"{predicted}: {len(predicted_file.records)} records, but {gold} has {len(gold_file.records)}")
    for g, p in zip(gold_file.records, predicted_file.records, strict=True):
        if g.text != p.text:
            raise InputError(f"{predicted}:{p.line}: the text differs from the gold record's at {gold}:{g.line}")
    return span_scores([r.spans for r in gold_file.records], [r.spans for r in predicted_file.records])
