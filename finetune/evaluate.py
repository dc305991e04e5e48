"""`ner-export eval`: entity-level scores of a checkpoint or a bundle on a CoNLL file.

A bundle is scored through the runtime (no torch needed), a checkpoint through PyTorch, both from the
file's pre-split words, so the two numbers are directly comparable. Scores use conlleval/seqeval's
lenient chunk rules (`ner_export.runtime.labels`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ner_export.runtime.errors import NerExportError
from ner_export.runtime.labels import EntityScores, entity_report
from ner_export.runtime.manifest import MANIFEST_NAME

from .conll import read_conll

__all__ = ["EvalReport", "evaluate", "predict_file_tags"]


@dataclass(frozen=True)
class EvalReport:
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


def predict_file_tags(
    target: Path, words: list[list[str]], batch_size: int = 32, documents: list[int] | None = None, decoding: str = "constrained"
) -> tuple[str, list[list[str]]]:
    """(kind, IOB2 tags per word) for a bundle or a checkpoint folder.

    A model trained with document context reads each sentence with its neighbours (`documents` gives
    each sentence's document id), exactly as in training; others read sentences alone.
    """
    if (target / MANIFEST_NAME).is_file():
        from ner_export.runtime import NerModel

        return "bundle", NerModel.load(target, decoding=decoding).predict_words(words, batch_size=batch_size, documents=documents)
    if (target / "config.json").is_file():
        from .train import checkpoint_context, load_checkpoint, tag_words

        model, tokenizer = load_checkpoint(str(target))
        context, max_length = checkpoint_context(model.config)
        return "checkpoint", tag_words(model, tokenizer, words, batch_size, max_length, context, documents, decoding)
    raise NerExportError(f"{target}: neither a bundle ({MANIFEST_NAME}) nor a checkpoint (config.json)")


def evaluate(target: str | Path, data: str | Path, batch_size: int = 32, decoding: str = "constrained") -> EvalReport:
    """Score `target` (bundle or checkpoint directory) on the CoNLL file `data`, decoded as `decoding`."""
    target = Path(target)
    sentences = read_conll(data)
    kind, predicted = predict_file_tags(target, [list(s.words) for s in sentences], batch_size, [s.document for s in sentences], decoding)
    report = entity_report([list(s.tags) for s in sentences], predicted)
    return EvalReport(str(target), kind, str(data), len(sentences), report)
