"""The int8 accuracy gate: quantize rung by rung until the int8 graph keeps the fp32 graph's F1.

For each rung of the ladder (`export.quantize.default_int8_ladder`) the gate quantizes the fp32
graph, scores the int8 graph through the runtime on the validation sentences, and keeps the first
rung whose entity-F1 drop against the fp32 graph is within the limit; when none is, the export is
refused with every rung's numbers and the `--max-f1-drop` that would accept one.

Design choices:
- The drop is measured against the fp32 graph, not PyTorch: fp32 equals PyTorch within `atol`
  (`export.validate`, checked first), so the difference isolates what quantization costs.
- F1 against gold, not agreement with fp32: a flipped `O` token and a lost entity cost the same word
  agreement but not the same F1, and F1 is what users are promised. Word agreement is recorded too.
- A sample too small to resolve the limit would refuse every export that loses one entity (on the
  130-sentence demo sample one entity is worth 0.33 points): the limit applied is the larger of
  `max_f1_drop` and one entity's worth on the sample (`gate_limit`); the manifest records both.
- Static activation scales are calibrated on the same validation sentences, one window per run
  (`NerModel.graph_inputs`), computed once for every rung. They are ranges, not fitted weights, and
  the gate then scores the graph end to end on those sentences.
- Labels that are not IOB tags have no entity F1; the first rung is then kept, recorded as unmeasured.
- Each rung's record is an `Int8Attempt` (`export.int8_attempt`, re-exported here), a leaf the
  validator reads too, so the gate builds on the validator without the validator importing it back.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ner_export.runtime.errors import ValidationError
from ner_export.runtime.labels import EntityScores, entity_scores
from ner_export.runtime.manifest import BundleManifest, GraphSpec, sha256_file
from ner_export.runtime.model import NerModel

from .int8_attempt import Int8Attempt
from .quantize import Int8Config, quantize_graph
from .validate import BundleValidator, word_agreement

__all__ = ["GateResult", "Int8Attempt", "calibration_inputs", "gate_limit", "int8_refusal", "run_int8_gate"]


def gate_limit(max_f1_drop: float, fp32_scores: EntityScores) -> float:
    """The F1 drop (points) the gate allows: `max_f1_drop`, or one entity's worth if that is more.

    F1 = 2 * correct / (true + predicted), so one entity more or less moves it by 200 / (true + predicted)
    points; a drop smaller than that cannot be measured on this sample.
    """
    return max(max_f1_drop, 200 / max(1, fp32_scores.true_entities + fp32_scores.predicted_entities))


def calibration_inputs(
    bundle_dir: Path, validator: BundleValidator
) -> tuple[list[dict[str, np.ndarray]], dict[str, Any]]:
    """The graph inputs static int8 scales are calibrated on, and their record: every window the validation
    sentences make, read by the bundle's fp32 graph as the runtime reads them (module docstring)."""
    feeds = NerModel.load(bundle_dir, precision="fp32").graph_inputs(validator.words, validator.documents)
    return feeds, {"data": validator.source, "sentences": len(validator.words), "runs": len(feeds)}


@dataclass(frozen=True)
class GateResult:
    """The accepted rung's tags and quantization record, every attempt, and the limit applied."""

    attempts: list[Int8Attempt]
    tags: list[list[str]]
    quantization: dict[str, Any]
    limit: float
    calibration: dict[str, Any] = field(default_factory=dict)


def run_int8_gate(
    bundle_dir: Path,
    base: BundleManifest,
    ladder: tuple[Int8Config, ...],
    validator: BundleValidator,
    *,
    fp32_graph: str,
    int8_graph: str,
    chosen_for: str,
    progress: Callable[[str], None] = lambda _: None,
) -> GateResult:
    """Quantize `bundle_dir`'s fp32 graph rung by rung until one is within the F1 limit.

    `base` is the bundle's manifest listing the fp32 graph; each trial writes it with the int8 graph
    added, so the runtime can load and score it. Raises ValidationError when no rung is within the limit.
    """
    fp32_scores = entity_scores(validator.gold, validator.fp32_tags) if validator.scored else None
    limit = gate_limit(validator.max_f1_drop, fp32_scores) if fp32_scores else validator.max_f1_drop
    feeds: list[dict[str, np.ndarray]] | None = None
    calibration: dict[str, Any] = {}
    attempts: list[Int8Attempt] = []
    for number, rung in enumerate(ladder, 1):
        progress(f"quantizing to int8 ({rung.name}, {number}/{len(ladder)})")
        if rung.activations == "static" and feeds is None:
            feeds, calibration = calibration_inputs(bundle_dir, validator)
        resolved = rung.resolve(bundle_dir / fp32_graph)
        quantization = quantize_graph(bundle_dir / fp32_graph, bundle_dir / int8_graph, resolved, feeds)
        quantization["chosen_for"] = chosen_for
        if resolved.activations == "static":
            quantization["calibration_data"] = calibration
        trial = replace(
            base,
            graphs=(GraphSpec(int8_graph, "cpu", "int8", quantization, resolved.batch_invariant), *base.graphs),
            files={**base.files, int8_graph: sha256_file(bundle_dir / int8_graph)},
        )
        trial.write(bundle_dir)
        tags = validator.tags(bundle_dir, "int8")
        agreement = word_agreement(validator.fp32_tags, tags)
        if fp32_scores is None:
            attempts.append(Int8Attempt(resolved.to_dict(), None, None, None, agreement, True))
        else:
            int8_f1 = entity_scores(validator.gold, tags).f1
            drop = 100 * (fp32_scores.f1 - int8_f1)
            accepted = drop <= limit + 1e-9  # F1s are ratios of counts; don't let rounding decide
            attempts.append(Int8Attempt(resolved.to_dict(), fp32_scores.f1, int8_f1, drop, agreement, accepted))
        if attempts[-1].accepted:
            return GateResult(
                attempts, tags, quantization, limit, calibration if resolved.activations == "static" else {}
            )
    raise ValidationError(int8_refusal(attempts, limit, validator.source, len(validator.words)))


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
