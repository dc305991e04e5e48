"""Validation of a bundle being built against the PyTorch checkpoint it comes from, and the int8 gate.

Two questions, two measures. Is the fp32 graph the same function as the PyTorch model? Compare raw
logits on real sentences; anything beyond a small float tolerance is an export bug and stops the
export. How much does int8 cost? Run the int8 graph through the real runtime on the same sentences and
compare its entity F1 (against the gold tags) with the fp32 graph's: the *drop* in points is what the
gate checks against `max_f1_drop`, rung by rung of the quantization ladder (`export.quantize`).

Design choices:
- The drop is measured against the fp32 graph, not PyTorch: fp32 equals PyTorch within `atol` (checked
  first), so the difference isolates what quantization costs, and both sides go through the same
  runtime code (windows, word aggregation, document context).
- F1 against gold, not agreement with fp32: a flipped `O` token and a lost entity cost the same word
  agreement but not the same F1, and F1 is what users are promised. Word agreement is recorded too.
- The sample matters: on a few hundred sentences one entity is worth ~0.3 points, so noise alone can
  trip a 0.3-point limit; the default is up to 1000 sentences (`--validate-data`, else the checkpoint's
  `validation_sample.conll`, else the packaged sample).
- A sample too small to resolve the limit would refuse every export that loses a single entity (on the
  130-sentence demo sample one entity is worth 0.33 points): the limit applied is the larger of
  `max_f1_drop` and what one entity is worth on the sample (`gate_limit`), and the manifest records it.
- Labels that are not IOB tags have no entity F1; the gate then accepts the first rung and records
  it as unmeasured.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ner_export.runtime.errors import ValidationError
from ner_export.runtime.labels import EntityScores, entity_scores, is_iob_label_set
from ner_export.runtime.manifest import BundleManifest
from ner_export.runtime.model import NerModel

if TYPE_CHECKING:
    from .exporter import ExportConfig
    from .quantize import Int8Config

__all__ = ["BundleValidator", "Int8Attempt", "ValidationReport", "gate_limit", "int8_refusal", "validation_sentences"]


def gate_limit(max_f1_drop: float, fp32_scores: EntityScores) -> float:
    """The F1 drop (points) the gate allows: `max_f1_drop`, or one entity's worth if that is more.

    F1 = 2 * correct / (true + predicted), so one entity more or less moves it by 200 / (true + predicted)
    points; a drop smaller than that cannot be measured on this sample.
    """
    return max(max_f1_drop, 200 / max(1, fp32_scores.true_entities + fp32_scores.predicted_entities))


@dataclass(frozen=True)
class Int8Attempt:
    """One rung of the int8 ladder as measured: its config, the F1s, the drop and the verdict."""

    config: dict[str, Any]
    fp32_f1: float | None
    int8_f1: float | None
    drop: float | None  # points of entity F1 lost (100 * (fp32_f1 - int8_f1)); None when unmeasured
    word_agreement: float  # share of words on which int8 and fp32 agree
    accepted: bool

    @property
    def name(self) -> str:
        return str(self.config.get("name", "?"))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ValidationReport:
    """What validation measured; stored as the manifest's `validation` entry."""

    data: str
    sentences: int
    words: int
    fp32_logits_max_abs_diff: float
    atol: float
    fp32_word_agreement: float
    int8_word_agreement: float  # of the int8 graph shipped, with PyTorch
    pytorch_f1: float | None  # None when the labels are not IOB tags (no entity F1 to compute)
    fp32_f1: float | None
    int8_f1: float | None
    int8_f1_delta: float | None  # int8 - PyTorch, as a fraction
    max_f1_drop: float = 0.3  # the gate's limit, in points of entity F1
    applied_max_f1_drop: float = 0.3  # the limit applied: larger when one entity is worth more on the sample
    int8_config: str = ""  # name of the accepted rung
    int8_attempts: tuple[dict[str, Any], ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["int8_attempts"] = list(self.int8_attempts)
        return data


def validation_sentences(model_dir: Path, data: str | None, limit: int) -> tuple[str, list[Any]]:
    """The sentences to validate on: `data`, else the checkpoint's dev sample, else the packaged sample."""
    from ner_export.finetune import DEV_SAMPLE_NAME, read_conll

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

    from ner_export.finetune import checkpoint_casing, collate, encode_examples

    session = ort.InferenceSession(str(graph), providers=["CPUExecutionProvider"])
    names = {i.name for i in session.get_inputs()}
    worst = 0.0
    examples = encode_examples(tokenizer, words, max_length, casing=checkpoint_casing(model.config))
    for start in range(0, len(examples), 32):
        batch = collate(torch, [(ids, [0] * len(ids), types) for _, ids, types, _ in examples[start : start + 32]], tokenizer.pad_token_id or 0)
        batch.pop("labels")
        if "token_type_ids" in names and "token_type_ids" not in batch:
            batch["token_type_ids"] = torch.zeros_like(batch["input_ids"])
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


class BundleValidator:
    """Measures the graphs of one bundle under construction; the exporter calls it step by step.

    `check_fp32` first (it raises when fp32 ONNX differs from PyTorch), then `measure_int8` once per
    rung of the ladder, then `report`. The bundle directory must hold a manifest listing the graph
    being measured, since measurements go through `NerModel.load`.
    """

    def __init__(self, model_dir: Path, config: ExportConfig) -> None:
        from ner_export.finetune import load_checkpoint

        self.source, sentences = validation_sentences(Path(model_dir), config.validate_data, config.validate_sentences)
        self.words = [list(s.words) for s in sentences]
        self.gold = [list(s.tags) for s in sentences]
        self.documents = [s.document for s in sentences]
        self.atol = config.atol
        self.max_f1_drop = config.max_f1_drop
        self.limit = config.max_f1_drop
        self.model, self.tokenizer = load_checkpoint(str(model_dir))
        self._fp32: dict[str, Any] = {}

    def check_fp32(self, bundle_dir: Path) -> None:
        """Compare the fp32 graph's logits with PyTorch's (ValidationError beyond `atol`), then tag with both."""
        from ner_export.finetune import tag_words

        manifest = BundleManifest.read(bundle_dir)
        fp32_graph = Path(bundle_dir) / manifest.graph_for("cpu", "fp32").file
        diff = _logits_diff(self.model, self.tokenizer, fp32_graph, self.words, manifest.max_length)
        if not diff <= self.atol:
            raise ValidationError(
                f"the fp32 ONNX graph disagrees with the PyTorch model: max |logit difference| {diff:.2e} "
                f"on {len(self.words)} sentences from {self.source} exceeds the tolerance {self.atol:.0e}; "
                "this is an export problem, not a quantization one (raise --atol only if you know why)"
            )
        reference = tag_words(self.model, self.tokenizer, self.words, max_length=manifest.max_length, context=manifest.context, documents=self.documents)
        fp32_tags = self._predict(bundle_dir, "fp32")
        scored = is_iob_label_set(manifest.labels)
        if scored:
            self.limit = gate_limit(self.max_f1_drop, entity_scores(self.gold, fp32_tags))
        self._fp32 = {
            "diff": diff,
            "reference": reference,
            "tags": fp32_tags,
            "scored": scored,
            "pytorch_f1": entity_scores(self.gold, reference).f1 if scored else None,
            "fp32_f1": entity_scores(self.gold, fp32_tags).f1 if scored else None,
        }

    def measure_int8(self, bundle_dir: Path, config: Int8Config) -> tuple[Int8Attempt, list[list[str]]]:
        """Score the bundle's int8 graph (quantized as `config`) against the fp32 one; accepted if within the limit."""
        if not self._fp32:
            raise RuntimeError("check_fp32 must run before measure_int8")
        tags = self._predict(bundle_dir, "int8")
        fp32_f1 = self._fp32["fp32_f1"]
        if not self._fp32["scored"]:
            return Int8Attempt(config.to_dict(), None, None, None, _agreement(self._fp32["tags"], tags), True), tags
        int8_f1 = entity_scores(self.gold, tags).f1
        drop = 100 * (fp32_f1 - int8_f1)
        accepted = drop <= self.limit + 1e-9  # F1s are ratios of counts; don't let rounding decide
        return Int8Attempt(config.to_dict(), fp32_f1, int8_f1, drop, _agreement(self._fp32["tags"], tags), accepted), tags

    def report(self, attempts: list[Int8Attempt], int8_tags: list[list[str]]) -> ValidationReport:
        """The manifest's `validation` entry for the accepted (last) attempt, listing every attempt."""
        fp32 = self._fp32
        chosen = attempts[-1]
        pytorch_f1, int8_f1 = fp32["pytorch_f1"], chosen.int8_f1
        return ValidationReport(
            data=self.source,
            sentences=len(self.words),
            words=sum(len(w) for w in self.words),
            fp32_logits_max_abs_diff=fp32["diff"],
            atol=self.atol,
            fp32_word_agreement=_agreement(fp32["reference"], fp32["tags"]),
            int8_word_agreement=_agreement(fp32["reference"], int8_tags),
            pytorch_f1=pytorch_f1,
            fp32_f1=fp32["fp32_f1"],
            int8_f1=int8_f1,
            int8_f1_delta=None if int8_f1 is None or pytorch_f1 is None else int8_f1 - pytorch_f1,
            max_f1_drop=self.max_f1_drop,
            applied_max_f1_drop=self.limit,
            int8_config=chosen.name,
            int8_attempts=tuple(a.to_dict() for a in attempts),
        )

    def _predict(self, bundle_dir: Path, precision: str) -> list[list[str]]:
        model = NerModel.load(bundle_dir, precision=precision)
        return model.predict_words(self.words, documents=self.documents)


def int8_refusal(attempts: list[Int8Attempt], limit: float, source: str, sentences: int) -> str:
    """The one-line message of a refused export: every rung's F1 and drop, the limit, how to override."""
    fp32_f1 = attempts[0].fp32_f1 or 0.0
    tried = ", ".join(f"{a.int8_f1:.4f} as {a.name} (drop {a.drop:.2f} points)" for a in attempts)
    needed = math.ceil(min(a.drop for a in attempts if a.drop is not None) * 100) / 100
    return (
        f"int8 quantization loses too much accuracy: entity F1 on {sentences} sentences from {source} is "
        f"{fp32_f1:.4f} with fp32 and, with int8, {tried}; the limit is {limit:.2f} points. Nothing was written. "
        f"To export anyway, pass --max-f1-drop {needed:.2f} or more (ExportConfig.max_f1_drop); "
        "the first config within the limit is kept"
    )
