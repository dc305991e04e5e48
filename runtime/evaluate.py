"""Entity-level scores of a bundle on a CoNLL or span file, with the runtime only (no torch).

Two scorings, one report shape (`EvalReport`: per type, then micro; span scoring adds macro):

- words: the file's pre-split words (a CoNLL file's, or a span file's records cut into words by
  `runtime.labeled_data`) are tagged with `NerModel.predict_words`, each sentence inside its document
  when the bundle was trained with document context, and the tags are compared with the gold ones by
  conlleval/seqeval's lenient chunk rules (`runtime.labels`). `evaluate_tags` is the part shared with
  checkpoint scoring, which tags the same words through PyTorch: the two numbers are directly comparable.
- spans: a bundle scored on a span file predicts each record's raw text with `NerModel.predict`, as
  `predict` reads it (each text alone, words cut by `word_split`), and its entities are compared with
  the record's spans by exact type, start and end (`runtime.span_scoring`). This is the number users of
  `predict` get; where the gold spans align with words it equals the word-level one.

The data file's format follows its extension unless `data_format` names it (`runtime.labeled_data`);
what reading it used and skipped is kept in the report (`data_report`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .labeled_data import data_format_of, read_labeled, span_file_sentences
from .labels import EntityScores, entity_report
from .model import NerModel
from .span_files import read_span_file
from .span_scoring import SpanLike, span_scores

__all__ = ["EvalReport", "Tagger", "SCORINGS", "evaluate_bundle", "evaluate_tags", "evaluate_bundle_spans"]

Tagger = Callable[[list[list[str]], list[int]], Sequence[Sequence[str]]]
"""Tags the words of each sentence, given each sentence's document id."""

SCORINGS = ("words", "spans")
"""How an `EvalReport` was scored: IOB2 tags of the file's words, or exact character spans of raw-text predictions."""


@dataclass(frozen=True)
class EvalReport:
    """Scores of one model on one data file, per entity type and micro-averaged (`micro`).

    `sentences`: the sentences (CoNLL) or records (span file) scored; `scoring`: one of SCORINGS;
    `macro`: macro-averaged (precision, recall, F1) over the types, given by span scoring;
    `data_report`: what reading the data file used and set aside (`DataReport.counts()`).
    """

    target: str
    kind: str  # "bundle" or "checkpoint"
    data: str
    sentences: int
    scores: dict[str, EntityScores]
    scoring: str = "words"
    macro: tuple[float, float, float] | None = None
    data_report: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.scoring not in SCORINGS:
            raise ValueError(f"scoring must be one of {', '.join(SCORINGS)}, got {self.scoring!r}")

    @property
    def f1(self) -> float:
        return self.scores["micro"].f1

    def describe(self) -> str:
        """One line: what was scored, and how."""
        if self.scoring == "spans":
            return (
                f"scored {self.sentences} records: exact character spans (type, start and end) of the {self.kind}'s "
                "entities, each record's text predicted as raw text"
            )
        unit = "records" if self.data_report.get("data_format") == "spans" else "sentences"
        return (
            f"scored {self.sentences} {unit}: the {self.kind}'s IOB2 tags of each word (entity level, seqeval's rule)"
        )

    def table(self) -> str:
        lines = [f"{'':>8} {'precision':>9} {'recall':>9} {'f1':>9} {'support':>8}"]
        for kind, s in self.scores.items():
            if kind == "micro":
                lines.append("")
            lines.append(f"{kind:>8} {s.precision:9.4f} {s.recall:9.4f} {s.f1:9.4f} {s.true_entities:8d}")
        if self.macro is not None:
            support = self.scores["micro"].true_entities
            precision, recall, f1 = self.macro
            lines.append(f"{'macro':>8} {precision:9.4f} {recall:9.4f} {f1:9.4f} {support:8d}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        data = {
            "target": self.target,
            "kind": self.kind,
            "data": self.data,
            "sentences": self.sentences,
            "scoring": self.scoring,
            "f1": self.f1,
            "precision": self.scores["micro"].precision,
            "recall": self.scores["micro"].recall,
            "per_type": {k: v.__dict__ for k, v in self.scores.items() if k != "micro"},
            "data_report": self.data_report,
        }
        if self.macro is not None:
            data["macro_precision"], data["macro_recall"], data["macro_f1"] = self.macro
        return data


def evaluate_tags(
    target: str | Path,
    kind: str,
    data: str | Path,
    tagger: Tagger,
    data_format: str = "auto",
    offsets: str = "codepoints",
    skip_bad: bool = False,
) -> EvalReport:
    """Read the CoNLL or span file `data` (`read_labeled`), tag its words with `tagger` and score them
    against its tags."""
    labeled = read_labeled(data, data_format, offsets, skip_bad)
    sentences = labeled.sentences
    predicted = tagger([list(s.words) for s in sentences], [s.document for s in sentences])
    report = entity_report([list(s.tags) for s in sentences], predicted)
    return EvalReport(str(target), kind, str(data), len(sentences), report, data_report=labeled.report.counts())


def evaluate_bundle_spans(
    target: str | Path,
    data: str | Path,
    predict: Callable[[list[str]], Sequence[Sequence[SpanLike]]],
    offsets: str = "codepoints",
    skip_bad: bool = False,
) -> EvalReport:
    """Score `predict` (raw texts to entities with start, end and label) on the span file `data` by exact
    span matches: per type, micro and macro (`runtime.span_scoring`)."""
    span_file = read_span_file(data, offsets=offsets, skip_bad=skip_bad)
    report = span_file_sentences(span_file).report  # the counts, and the warnings of what was skipped
    records = span_file.records
    scores = span_scores([r.spans for r in records], predict([r.text for r in records]))
    return EvalReport(
        str(target),
        "bundle",
        str(data),
        len(records),
        {**scores.per_type, "micro": scores.micro},
        scoring="spans",
        macro=(scores.macro_precision, scores.macro_recall, scores.macro_f1),
        data_report=report.counts(),
    )


def evaluate_bundle(
    bundle: str | Path,
    data: str | Path,
    batch_size: int = 32,
    decoding: str = "constrained",
    aggregation: str = "first",
    word_split: str = "text",
    backend: str = "onnxruntime",
    data_format: str = "auto",
    offsets: str = "codepoints",
    skip_bad: bool = False,
) -> EvalReport:
    """Score the bundle directory `bundle` on the CoNLL or span file `data`, decoded as `decoding`.

    A CoNLL file's words are its own, so `word_split` (how raw text is cut into words) leaves them as
    they are, and `aggregation` picks each word's label from its tokens, `simple` meaning `first` (a
    word needs one label), as in `NerModel.predict_words`. A span file's records are predicted as raw
    texts, as `predict` reads them, under both options, and scored by exact spans.
    """

    def model() -> NerModel:
        return NerModel.load(bundle, decoding=decoding, aggregation=aggregation, word_split=word_split, backend=backend)

    if data_format_of(data, data_format) == "spans":
        return evaluate_bundle_spans(
            bundle, data, lambda texts: model().predict(texts, batch_size=batch_size), offsets, skip_bad
        )

    def tagger(words: list[list[str]], documents: list[int]) -> list[list[str]]:
        return model().predict_words(words, batch_size=batch_size, documents=documents)

    return evaluate_tags(bundle, "bundle", data, tagger, data_format)
