"""Entity-level scores of a bundle on a CoNLL file, with the runtime only (no torch).

Scoring reads the file's pre-split words and tags them with `NerModel.predict_words`, each sentence
inside its document when the bundle was trained with document context, then compares the tags with
the gold ones by conlleval/seqeval's lenient chunk rules (`runtime.labels`). `evaluate_tags` is the
part shared with checkpoint scoring (`ner_export.finetune.evaluate_checkpoint`), which tags the same
words through PyTorch: the two numbers are therefore directly comparable.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .conll import read_conll
from .labels import EntityScores, entity_report
from .model import NerModel

__all__ = ["EvalReport", "Tagger", "evaluate_bundle", "evaluate_tags"]

Tagger = Callable[[list[list[str]], list[int]], Sequence[Sequence[str]]]
"""Tags the words of each sentence, given each sentence's document id."""


@dataclass(frozen=True)
class EvalReport:
    """Scores of one model on one data file, per entity type and micro-averaged (`micro`)."""

    target: str
    kind: str  # "bundle" or "checkpoint"
    data: str
    sentences: int
    scores: dict[str, EntityScores]

    @property
    def f1(self) -> float:
        return self.scores["micro"].f1

    def table(self) -> str:
        lines = [f"{'':>8} {'precision':>9} {'recall':>9} {'f1':>9} {'support':>8}"]
        for kind, s in self.scores.items():
            if kind == "micro":
                lines.append("")
            lines.append(f"{kind:>8} {s.precision:9.4f} {s.recall:9.4f} {s.f1:9.4f} {s.true_entities:8d}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "kind": self.kind,
            "data": self.data,
            "sentences": self.sentences,
            "f1": self.f1,
            "precision": self.scores["micro"].precision,
            "recall": self.scores["micro"].recall,
            "per_type": {k: v.__dict__ for k, v in self.scores.items() if k != "micro"},
        }


def evaluate_tags(target: str | Path, kind: str, data: str | Path, tagger: Tagger) -> EvalReport:
    """Read the CoNLL file `data`, tag its words with `tagger` and score them against its tags."""
    sentences = read_conll(data)
    predicted = tagger([list(s.words) for s in sentences], [s.document for s in sentences])
    report = entity_report([list(s.tags) for s in sentences], predicted)
    return EvalReport(str(target), kind, str(data), len(sentences), report)


def evaluate_bundle(
    bundle: str | Path,
    data: str | Path,
    batch_size: int = 32,
    decoding: str = "constrained",
    aggregation: str = "first",
    word_split: str = "text",
    backend: str = "onnxruntime",
) -> EvalReport:
    """Score the bundle directory `bundle` on the CoNLL file `data`, decoded as `decoding`.

    The words are the file's own, so `word_split` (how raw text is cut into words) leaves them as they
    are; `aggregation` picks each word's label from its tokens, `simple` meaning `first` (a word needs one
    label), as in `NerModel.predict_words`.
    """

    def tagger(words: list[list[str]], documents: list[int]) -> list[list[str]]:
        model = NerModel.load(
            bundle, decoding=decoding, aggregation=aggregation, word_split=word_split, backend=backend
        )
        return model.predict_words(words, batch_size=batch_size, documents=documents)

    return evaluate_tags(bundle, "bundle", data, tagger)
