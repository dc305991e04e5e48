"""Validation of a freshly built bundle against the PyTorch checkpoint it came from.

Two questions, two measures. Is the fp32 graph the same function as the PyTorch model? Compare raw
logits on real sentences; anything beyond a small float tolerance is an export bug and stops the
export. How much does int8 cost? Compare word labels and entity F1 (against the gold tags) of the
int8 graph, run through the real runtime, with PyTorch's; that is recorded in the manifest so a user
can see the price before deploying.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ner_export.runtime.errors import ValidationError
from ner_export.runtime.labels import entity_scores, is_iob_label_set
from ner_export.runtime.manifest import BundleManifest
from ner_export.runtime.model import NerModel

if TYPE_CHECKING:
    from .exporter import ExportConfig

__all__ = ["ValidationReport", "validate_bundle", "validation_sentences"]


@dataclass(frozen=True)
class ValidationReport:
    """What validation measured; stored as the manifest's `validation` entry."""

    data: str
    sentences: int
    words: int
    fp32_logits_max_abs_diff: float
    atol: float
    fp32_word_agreement: float
    int8_word_agreement: float
    pytorch_f1: float | None  # None when the labels are not IOB tags (no entity F1 to compute)
    fp32_f1: float | None
    int8_f1: float | None
    int8_f1_delta: float | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def validation_sentences(model_dir: Path, data: str | None, limit: int) -> tuple[str, list[Any]]:
    """The sentences to validate on: `data`, else the checkpoint's dev sample, else the packaged sample."""
    from ner_export.finetune.conll import read_conll
    from ner_export.finetune.train import DEV_SAMPLE_NAME

    if data:
        path = Path(data)
    elif (model_dir / DEV_SAMPLE_NAME).is_file():
        path = model_dir / DEV_SAMPLE_NAME
    else:
        path = Path(str(resources.files("ner_export.finetune") / "sample" / "dev.txt"))
    return str(path), read_conll(path)[:limit]


def _logits_diff(model: Any, tokenizer: Any, graph: Path, words: list[list[str]], max_length: int) -> float:
    import onnxruntime as ort
    import torch

    from ner_export.finetune.train import encode_words

    session = ort.InferenceSession(str(graph), providers=["CPUExecutionProvider"])
    names = {i.name for i in session.get_inputs()}
    worst = 0.0
    for start in range(0, len(words), 32):
        batch, _ = encode_words(tokenizer, words[start : start + 32], max_length)
        with torch.inference_mode():
            expected = model(**batch).logits.numpy()
        feeds = {k: v.numpy().astype(np.int64) for k, v in batch.items() if k in names}
        actual = session.run(None, feeds)[0]
        mask = batch["attention_mask"].numpy().astype(bool)
        worst = max(worst, float(np.abs(actual - expected)[mask].max()))
    return worst


def _agreement(reference: list[list[str]], other: list[list[str]]) -> float:
    total = sum(len(r) for r in reference)
    same = sum(a == b for r, o in zip(reference, other) for a, b in zip(r, o))
    return same / total if total else 1.0


def validate_bundle(model_dir: Path, bundle_dir: Path, config: ExportConfig) -> ValidationReport:
    """Measure the bundle in `bundle_dir` against the checkpoint; raise ValidationError if fp32 differs."""
    from ner_export.finetune.train import load_checkpoint, tag_words

    manifest = BundleManifest.read(bundle_dir)
    source, sentences = validation_sentences(Path(model_dir), config.validate_data, config.validate_sentences)
    words = [list(s.words) for s in sentences]
    gold = [list(s.tags) for s in sentences]
    model, tokenizer = load_checkpoint(str(model_dir))
    fp32_graph = Path(bundle_dir) / manifest.graph_for("cpu", "fp32").file
    diff = _logits_diff(model, tokenizer, fp32_graph, words, manifest.max_length)
    if not diff <= config.atol:
        raise ValidationError(
            f"the fp32 ONNX graph disagrees with the PyTorch model: max |logit difference| {diff:.2e} "
            f"on {len(words)} sentences from {source} exceeds the tolerance {config.atol:.0e}; "
            "this is an export problem, not a quantization one (raise --atol only if you know why)"
        )
    reference = tag_words(model, tokenizer, words, max_length=manifest.max_length)
    fp32_tags = NerModel.load(bundle_dir, precision="fp32").predict_words(words)
    int8_tags = NerModel.load(bundle_dir, precision="int8").predict_words(words)
    scored = is_iob_label_set(manifest.labels)
    pytorch_f1 = entity_scores(gold, reference).f1 if scored else None
    fp32_f1 = entity_scores(gold, fp32_tags).f1 if scored else None
    int8_f1 = entity_scores(gold, int8_tags).f1 if scored else None
    return ValidationReport(
        data=source,
        sentences=len(words),
        words=sum(len(w) for w in words),
        fp32_logits_max_abs_diff=diff,
        atol=config.atol,
        fp32_word_agreement=_agreement(reference, fp32_tags),
        int8_word_agreement=_agreement(reference, int8_tags),
        pytorch_f1=pytorch_f1,
        fp32_f1=fp32_f1,
        int8_f1=int8_f1,
        int8_f1_delta=None if int8_f1 is None or pytorch_f1 is None else int8_f1 - pytorch_f1,
    )
