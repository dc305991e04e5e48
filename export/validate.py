"""Validation of a bundle being built against the PyTorch checkpoint it comes from.

Is the fp32 graph the same function as the PyTorch model? Compare raw logits on real sentences;
anything beyond a small float tolerance is an export bug and stops the export before any int8 time
is spent. The validator then tags the sentences with PyTorch and with the fp32 graph, the reference
the int8 accuracy gate (`export.gate`) measures each int8 graph against, and at the end it writes the
manifest's `validation` record.

Design choices:
- Sentences come from `--validate-data` (a CoNLL or span file, `runtime.labeled_data`), else the
  checkpoint's `validation_sample.conll` (dev data written by `finetune`), else the packaged sample;
  never from test data. What reading the file used and skipped is recorded with the measurements. Up
  to 1000 by default: on a few hundred sentences one entity is worth ~0.3 F1 points, so noise alone
  could trip the gate.
- Tagging goes through the real runtime (`NerModel.predict_words`): windows, word aggregation and
  document context exactly as users get them.
- Of the package it reads only the leaves `ExportConfig` (`export.config`) and `Int8Attempt`
  (`export.int8_attempt`): the gate, the OpenVINO step and the exporter build on the validator, never
  the other way round.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from ner_export.runtime.conll import Sentence
from ner_export.runtime.errors import ValidationError
from ner_export.runtime.labeled_data import LabeledData, read_labeled
from ner_export.runtime.labels import entity_scores, is_iob_label_set
from ner_export.runtime.manifest import BundleManifest
from ner_export.runtime.model import NerModel

from .config import ExportConfig
from .int8_attempt import Int8Attempt

__all__ = ["BundleValidator", "ValidationReport", "validation_data", "validation_sentences", "word_agreement"]


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
    int8_calibration: dict[str, Any] = field(default_factory=dict)  # data and sentences of static scales
    int8_attempts: tuple[dict[str, Any], ...] = field(default_factory=tuple)
    openvino: dict[str, Any] = field(default_factory=dict)  # the OpenVINO graph: shipped or why not, its F1
    data_report: dict[str, Any] = field(default_factory=dict)  # what reading `data` used (DataReport.counts())

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["int8_attempts"] = list(self.int8_attempts)
        return data


def validation_data(
    model_dir: Path, data: str | None, data_format: str = "auto", offsets: str = "codepoints", skip_bad: bool = False
) -> tuple[str, LabeledData]:
    """The data to validate on and its path: `data` (a CoNLL or span file, read as `read_labeled` reads
    it), else the checkpoint's dev sample, else the packaged sample (both CoNLL)."""
    from ner_export.finetune import DEV_SAMPLE_NAME

    if data:
        return data, read_labeled(data, data_format, offsets, skip_bad)
    if (model_dir / DEV_SAMPLE_NAME).is_file():
        path = model_dir / DEV_SAMPLE_NAME
    else:
        path = Path(str(resources.files("ner_export.finetune") / "sample" / "dev.txt"))
    return str(path), read_labeled(path, "conll")


def validation_sentences(
    model_dir: Path, data: str | None, limit: int, data_format: str = "auto", offsets: str = "codepoints"
) -> tuple[str, list[Sentence]]:
    """The first `limit` sentences to validate on (`validation_data`) and where they come from."""
    source, labeled = validation_data(model_dir, data, data_format, offsets)
    return source, labeled.sentences[:limit]


def _max_logits_diff(model: Any, tokenizer: Any, graph: Path, words: list[list[str]], max_length: int) -> float:
    import torch

    from ner_export.finetune import checkpoint_casing, collate, encode_examples
    from ner_export.runtime.session import create_session

    session = create_session(graph)
    names = {i.name for i in session.get_inputs()}
    worst = 0.0
    examples = encode_examples(tokenizer, words, max_length, casing=checkpoint_casing(model.config))
    for start in range(0, len(examples), 32):
        batch = collate(
            torch,
            [(ids, [0] * len(ids), types) for _, ids, types, _ in examples[start : start + 32]],
            tokenizer.pad_token_id or 0,
        )
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


def word_agreement(reference: list[list[str]], other: list[list[str]]) -> float:
    """Share of words tagged alike by two taggers of the same sentences."""
    total = sum(len(r) for r in reference)
    same = sum(a == b for r, o in zip(reference, other, strict=True) for a, b in zip(r, o, strict=True))
    return same / total if total else 1.0


class BundleValidator:
    """Measures the graphs of one bundle under construction; the exporter calls it step by step.

    `check_fp32` first (it raises when fp32 ONNX differs from PyTorch), then `tags` once per int8
    graph the gate tries, then `report`. The bundle directory must hold a manifest listing the graph
    being measured, since measurements go through `NerModel.load`.
    """

    def __init__(self, model_dir: Path, config: ExportConfig) -> None:
        from ner_export.finetune import load_checkpoint

        self.source, data = validation_data(
            Path(model_dir), config.validate_data, config.data_format, config.offsets, config.skip_bad
        )
        self.data_report = data.report.counts()
        sentences = data.sentences[: config.validate_sentences]
        self.words = [list(s.words) for s in sentences]
        self.gold = [list(s.tags) for s in sentences]
        self.documents = [s.document for s in sentences]
        self.atol = config.atol
        self.max_f1_drop = config.max_f1_drop
        self.model, self.tokenizer = load_checkpoint(str(model_dir))
        self._fp32_measures: dict[str, Any] = {}

    def check_fp32(self, bundle_dir: Path) -> None:
        """Compare the fp32 graph's logits with PyTorch's (ValidationError beyond `atol`), then tag with both."""
        from ner_export.finetune import tag_words

        manifest = BundleManifest.read(bundle_dir)
        fp32_graph = Path(bundle_dir) / manifest.graph_for("cpu", "fp32").file
        diff = _max_logits_diff(self.model, self.tokenizer, fp32_graph, self.words, manifest.max_length)
        if not diff <= self.atol:
            raise ValidationError(
                f"the fp32 ONNX graph disagrees with the PyTorch model: max |logit difference| {diff:.2e} "
                f"on {len(self.words)} sentences from {self.source} exceeds the tolerance {self.atol:.0e}; "
                "this is an export problem, not a quantization one (raise --atol only if you know why)"
            )
        reference = tag_words(
            self.model,
            self.tokenizer,
            self.words,
            max_length=manifest.max_length,
            context=manifest.context,
            documents=self.documents,
        )
        fp32_tags = self.tags(bundle_dir, "fp32")
        scored = is_iob_label_set(manifest.labels)
        self._fp32_measures = {
            "diff": diff,
            "reference": reference,
            "tags": fp32_tags,
            "scored": scored,
            "pytorch_f1": entity_scores(self.gold, reference).f1 if scored else None,
            "fp32_f1": entity_scores(self.gold, fp32_tags).f1 if scored else None,
        }

    @property
    def fp32_tags(self) -> list[list[str]]:
        """The fp32 graph's tags of the validation sentences (after `check_fp32`)."""
        if not self._fp32_measures:
            raise RuntimeError("check_fp32 must run first")
        tags: list[list[str]] = self._fp32_measures["tags"]
        return tags

    @property
    def scored(self) -> bool:
        """Whether the labels are IOB tags, so entity F1 can be measured."""
        return bool(self._fp32_measures.get("scored"))

    def report(
        self,
        attempts: list[Int8Attempt],
        int8_tags: list[list[str]],
        limit: float,
        calibration: dict[str, Any],
        openvino: dict[str, Any] | None = None,
    ) -> ValidationReport:
        """The manifest's `validation` entry for the accepted (last) attempt, listing every attempt."""
        fp32 = self._fp32_measures
        chosen = attempts[-1]
        pytorch_f1, int8_f1 = fp32["pytorch_f1"], chosen.int8_f1
        return ValidationReport(
            data=self.source,
            sentences=len(self.words),
            words=sum(len(w) for w in self.words),
            fp32_logits_max_abs_diff=fp32["diff"],
            atol=self.atol,
            fp32_word_agreement=word_agreement(fp32["reference"], fp32["tags"]),
            int8_word_agreement=word_agreement(fp32["reference"], int8_tags),
            pytorch_f1=pytorch_f1,
            fp32_f1=fp32["fp32_f1"],
            int8_f1=int8_f1,
            int8_f1_delta=None if int8_f1 is None or pytorch_f1 is None else int8_f1 - pytorch_f1,
            max_f1_drop=self.max_f1_drop,
            applied_max_f1_drop=limit,
            int8_config=chosen.name,
            int8_calibration=calibration,
            int8_attempts=tuple(a.to_dict() for a in attempts),
            openvino=dict(openvino or {}),
            data_report=self.data_report,
        )

    def tags(self, bundle_dir: Path, precision: str, backend: str = "onnxruntime") -> list[list[str]]:
        """IOB2 tags of the validation sentences by the bundle's `precision` graph of `backend`, through
        the runtime."""
        model = NerModel.load(bundle_dir, precision=precision, backend=backend)
        return model.predict_words(self.words, documents=self.documents)
