"""Label schemes: IOB1, IOB2 and BIOES tags, normalised to IOB2, and entity-level scoring.

IOB2 is the one scheme used inside ner-export (training labels, manifests, `predict_words` output);
other schemes are converted at the edge, when a file is read. Entity chunks follow conlleval and
seqeval's default (lenient) mode: an `I-X` that does not continue an `X` chunk starts a new one. That
keeps our F1 equal to seqeval's without importing it, so the runtime and the exporter can score
models with nothing but the standard library.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

__all__ = [
    "OUTSIDE",
    "split_tag",
    "detect_scheme",
    "to_iob2",
    "entity_chunks",
    "EntityScores",
    "entity_scores",
    "entity_report",
    "sorted_labels",
    "is_iob_label_set",
]

OUTSIDE = "O"
_PREFIXES = ("B", "I", "E", "S")


def split_tag(tag: str) -> tuple[str, str]:
    """Split a tag into (prefix, type): `B-PER` -> (`B`, `PER`), `O` -> (`O`, ``).

    Raises ValueError for anything that is neither `O` nor `B-/I-/E-/S-` followed by a type.
    """
    if tag == OUTSIDE:
        return OUTSIDE, ""
    prefix, sep, kind = tag.partition("-")
    if not sep or prefix not in _PREFIXES or not kind:
        raise ValueError(f"tag {tag!r} is neither 'O' nor B-/I-/E-/S- followed by an entity type")
    return prefix, kind


def detect_scheme(tags: Iterable[str]) -> str:
    """Guess the scheme of a whole file's tags: `BIOES` if any E-/S- occurs, else `IOB2`.

    IOB1 and IOB2 differ only in where B- appears; both are read correctly by `to_iob2`, so the
    distinction does not need to be made.
    """
    for tag in tags:
        if tag[:2] in ("E-", "S-"):
            return "BIOES"
    return "IOB2"


def to_iob2(tags: Sequence[str], scheme: str = "IOB2") -> list[str]:
    """Convert one sentence's tags to IOB2.

    `IOB2`/`IOB1`: an `I-X` that does not continue an `X` entity becomes `B-X` (conlleval's reading).
    `BIOES`: `S-X` -> `B-X`, `E-X` -> `I-X` (or `B-X` when it does not continue an `X` entity).
    """
    out: list[str] = []
    prev_kind = ""
    for tag in tags:
        prefix, kind = split_tag(tag)
        if scheme == "BIOES":
            prefix = {"S": "B", "E": "I"}.get(prefix, prefix)
        elif prefix in ("E", "S"):
            raise ValueError(f"tag {tag!r} belongs to BIOES, not {scheme}")
        if prefix == "I" and kind != prev_kind:
            prefix = "B"
        out.append(OUTSIDE if prefix == OUTSIDE else f"{prefix}-{kind}")
        prev_kind = kind
    return out


def entity_chunks(tags: Sequence[str]) -> list[tuple[str, int, int]]:
    """Entities of an IOB2 (or IOB1) sequence as (type, first word, end word exclusive)."""
    chunks: list[tuple[str, int, int]] = []
    start, kind = -1, ""
    for i, tag in enumerate(tags):
        prefix, tag_kind = split_tag(tag) if tag != OUTSIDE else (OUTSIDE, "")
        continues = prefix == "I" and tag_kind == kind and start >= 0
        if not continues:
            if start >= 0:
                chunks.append((kind, start, i))
            start, kind = (i, tag_kind) if prefix != OUTSIDE else (-1, "")
    if start >= 0:
        chunks.append((kind, start, len(tags)))
    return chunks


@dataclass(frozen=True)
class EntityScores:
    """Micro-averaged entity-level precision, recall and F1 (exact span and type match)."""

    precision: float
    recall: float
    f1: float
    true_entities: int
    predicted_entities: int
    correct: int

    @classmethod
    def from_counts(cls, n_true: int, n_pred: int, n_correct: int) -> EntityScores:
        precision = n_correct / n_pred if n_pred else 0.0
        recall = n_correct / n_true if n_true else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return cls(precision, recall, f1, n_true, n_pred, n_correct)


def entity_report(gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]]) -> dict[str, EntityScores]:
    """Scores per entity type plus `micro` over all types (seqeval's default, lenient chunks)."""
    if len(gold) != len(predicted):
        raise ValueError(f"{len(gold)} gold sentences but {len(predicted)} predicted ones")
    counts: dict[str, list[int]] = {}
    for i, (g, p) in enumerate(zip(gold, predicted, strict=True)):
        if len(g) != len(p):
            raise ValueError(f"sentence {i}: {len(g)} gold tags but {len(p)} predicted ones")
        true_set = set(entity_chunks(g))
        pred_set = set(entity_chunks(p))
        for chunk in true_set:
            counts.setdefault(chunk[0], [0, 0, 0])[0] += 1
        for chunk in pred_set:
            counts.setdefault(chunk[0], [0, 0, 0])[1] += 1
        for chunk in true_set & pred_set:
            counts[chunk[0]][2] += 1
    report = {kind: EntityScores.from_counts(*counts[kind]) for kind in sorted(counts)}
    totals = [sum(c[k] for c in counts.values()) for k in range(3)]
    report["micro"] = EntityScores.from_counts(*totals)
    return report


def entity_scores(gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]]) -> EntityScores:
    """Entity-level micro scores of predicted tag sequences against gold ones (seqeval's default)."""
    return entity_report(gold, predicted)["micro"]


def is_iob_label_set(labels: Iterable[str]) -> bool:
    """True when every label is `O`, `B-X` or `I-X`, so tag sequences can be repaired to IOB2."""
    for label in labels:
        try:
            prefix, _ = split_tag(label)
        except ValueError:
            return False
        if prefix in ("E", "S"):
            return False
    return True


def sorted_labels(labels: Iterable[str]) -> list[str]:
    """The label list ner-export stores: `O` first, then the rest sorted (stable across runs)."""
    unique = set(labels)
    unique.discard(OUTSIDE)
    return [OUTSIDE, *sorted(unique)]
