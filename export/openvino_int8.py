"""The bundle's optional OpenVINO graph: NNCF post-training int8 of the fused fp32 graph, shipped only
when it keeps the fp32 graph's entity F1.

Made after the onnxruntime int8 gate, when openvino and nncf are installed (the `openvino` or `peers`
extra) and not turned off (`--no-openvino`). Design choices:

- NNCF reads the same fused fp32 ONNX graph the onnxruntime int8 graph comes from, and calibrates on
  the same inputs (`gate.calibration_inputs`: every window the validation sentences make, as the
  runtime feeds them; never test data). `ModelType.TRANSFORMER` keeps NNCF off the ops it knows hurt
  transformers (softmax, layer norm); its default `mixed` preset gives symmetric int8 weights and
  asymmetric activations with static scales, so the graph is batch-invariant by construction.
- There is no ladder: NNCF's result is measured once, through the runtime on the OpenVINO backend (the
  same windows, batching and decoding as every other graph), against the same limit as the onnxruntime
  gate. Within it, the IR is listed as a cpu/int8/openvino graph; beyond it, it is deleted and the
  reason recorded. An export never fails because of it: OpenVINO missing, failing or lossy only means
  a bundle without the OpenVINO graph, and `bundle.json` says why.
- The IR is saved with OpenVINO's default fp16 compression of the float weights it keeps (the word
  table, layer norms): half the size, and what is measured is the file shipped.
- Its non-int8 parts run in f32 unless bf16 is measured to be as good: where the exporting CPU has bf16
  instructions, the shipped IR is measured a second time with bf16 inference precision and, within
  the same limit, recorded as `inference_precision: bf16` (2-7% more throughput on the bench's Zen 4;
  the runtime computes it in f32 on CPUs without bf16, the more precise way). `bf16=False` skips this.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from ner_export.runtime.labels import entity_scores
from ner_export.runtime.manifest import BundleManifest, GraphSpec, sha256_file
from ner_export.runtime.openvino_backend import DEFAULT_INFERENCE_PRECISION, computes_bf16
from ner_export.runtime.session import first_line

from .validate import BundleValidator, word_agreement

__all__ = [
    "OPENVINO_GRAPH",
    "OPENVINO_WEIGHTS",
    "OpenVinoOutcome",
    "add_openvino_graph",
    "missing_openvino",
    "openvino_verdict",
    "quantize_openvino",
]

OPENVINO_GRAPH = "model_int8_openvino.xml"
OPENVINO_WEIGHTS = "model_int8_openvino.bin"


def missing_openvino() -> str | None:
    """Why the OpenVINO graph cannot be made here (a missing package), or None."""
    for module in ("openvino", "nncf"):
        if importlib.util.find_spec(module) is None:
            return f"the Python package {module!r} is not installed (pip install 'ner-export[openvino]')"
    return None


@dataclass(frozen=True)
class OpenVinoOutcome:
    """What became of the OpenVINO graph: shipped or not, why, and what was measured.

    Stored as the manifest's `validation["openvino"]`; `quantization` is the graph entry's record.
    """

    shipped: bool
    reason: str  # why it was left out ("" when shipped)
    fp32_f1: float | None = None
    f1: float | None = None
    drop: float | None = None  # points of entity F1 lost against fp32; None when unmeasured
    limit: float | None = None
    word_agreement: float | None = None  # share of words tagged as the fp32 graph tags them
    quantization: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "shipped": self.shipped,
            "reason": self.reason,
            "graph": OPENVINO_GRAPH if self.shipped else None,
            "fp32_f1": self.fp32_f1,
            "f1": self.f1,
            "drop": self.drop,
            "limit": self.limit,
            "word_agreement": self.word_agreement,
            "inference_precision": self.quantization.get("inference_precision"),
            "bf16": self.quantization.get("bf16"),
        }


def openvino_verdict(fp32_f1: float | None, f1: float | None, limit: float) -> tuple[bool, float | None, str]:
    """(ship it, F1 drop in points, reason when not) for an IR scoring `f1` against fp32's `fp32_f1`.

    Labels without entity F1 (both None) ship unmeasured, as the onnxruntime gate keeps its first rung.
    """
    if fp32_f1 is None or f1 is None:
        return True, None, ""
    drop = 100 * (fp32_f1 - f1)
    if drop <= limit + 1e-9:  # F1s are ratios of counts; don't let rounding decide
        return True, drop, ""
    return (
        False,
        drop,
        f"NNCF int8 loses {drop:.2f} points of entity F1 against fp32 ({f1:.4f} vs {fp32_f1:.4f}), "
        f"more than the {limit:.2f}-point limit (--max-f1-drop)",
    )


def quantize_openvino(fp32_graph: Path, dest: Path, calibration: Sequence[Mapping[str, np.ndarray]]) -> dict[str, Any]:
    """NNCF int8 of `fp32_graph` calibrated on `calibration` (graph inputs), saved as the IR `dest`
    (.xml, its .bin beside it); returns the quantization record the manifest keeps."""
    import nncf
    import openvino as ov

    core = ov.Core()
    model = core.read_model(str(fp32_graph))
    names = {port.get_any_name() for port in model.inputs}
    dataset = nncf.Dataset([{k: v for k, v in feed.items() if k in names} for feed in calibration])
    level = logging.getLogger("nncf").level
    nncf.set_log_level(logging.ERROR)
    try:
        # NNCF draws its own progress bars on stdout; the export has one already
        with contextlib.redirect_stdout(io.StringIO()):
            quantized = nncf.quantize(
                model, dataset, model_type=nncf.ModelType.TRANSFORMER, subset_size=max(1, len(calibration))
            )
    finally:
        nncf.set_log_level(level)
    ov.save_model(quantized, str(dest))
    return {
        "method": "nncf-ptq",
        "batch_invariant": True,
        "weight_type": "int8",
        "activations": "static",
        "model_type": "transformer",
        "preset": "mixed",  # NNCF's default for transformers: symmetric weights, asymmetric activations
        "subset_size": max(1, len(calibration)),
        "float_weights": "fp16",  # ov.save_model's compression of the weights left in float
        "inference_precision": DEFAULT_INFERENCE_PRECISION,
        "nncf": str(getattr(nncf, "__version__", "")),
        "openvino": str(ov.get_version()),
    }


def add_openvino_graph(
    bundle_dir: Path,
    base: BundleManifest,
    validator: BundleValidator,
    fp32_graph: str,
    limit: float,
    calibration_inputs: Callable[[], tuple[list[dict[str, np.ndarray]], dict[str, Any]]],
    bf16: bool = True,
) -> tuple[OpenVinoOutcome, GraphSpec | None]:
    """Make, measure and keep or drop the OpenVINO graph of the bundle being built in `bundle_dir`.

    `base` lists the bundle's fp32 graph (the trial manifest adds the IR to it, so the runtime can load
    it); `limit` is the onnxruntime gate's (points of entity F1); `calibration_inputs()` gives the
    (graph inputs, record) the gate calibrates on; `bf16`: also measure bf16 inference precision and
    keep it within the limit. Returns the outcome and, when shipped, the graph entry; the IR's files
    are deleted when it is not shipped. Never raises for OpenVINO's sake.
    """
    xml, weights = bundle_dir / OPENVINO_GRAPH, bundle_dir / OPENVINO_WEIGHTS
    fp32_scores = entity_scores(validator.gold, validator.fp32_tags) if validator.scored else None
    fp32_f1 = fp32_scores.f1 if fp32_scores else None
    try:
        feeds, calibration = calibration_inputs()
        quantization = quantize_openvino(bundle_dir / fp32_graph, xml, feeds)
        quantization["calibration_data"] = calibration
        files = {**base.files, OPENVINO_GRAPH: sha256_file(xml), OPENVINO_WEIGHTS: sha256_file(weights)}

        def measure(record: dict[str, Any]) -> list[list[str]]:
            """The validation sentences' tags through the runtime, the IR listed with `record`."""
            spec = GraphSpec(OPENVINO_GRAPH, "cpu", "int8", record, True, "openvino", OPENVINO_WEIGHTS)
            replace(base, graphs=(*base.graphs, spec), files=files).write(bundle_dir)
            return validator.tags(bundle_dir, "int8", backend="openvino")

        tags = measure(quantization)
    except Exception as exc:  # NNCF and OpenVINO raise many types; a failure only leaves the IR out
        xml.unlink(missing_ok=True)
        weights.unlink(missing_ok=True)
        reason = f"NNCF/OpenVINO failed: {type(exc).__name__}: {first_line(exc)}"
        return OpenVinoOutcome(False, reason, fp32_f1, limit=limit), None
    f1 = entity_scores(validator.gold, tags).f1 if fp32_scores else None
    shipped, drop, reason = openvino_verdict(fp32_f1, f1, limit)
    agreement = word_agreement(validator.fp32_tags, tags)
    if not shipped:
        xml.unlink()
        weights.unlink()
        return OpenVinoOutcome(False, reason, fp32_f1, f1, drop, limit, agreement), None
    record = {**quantization, "fp32_f1": fp32_f1, "f1": f1, "f1_drop": drop, "word_agreement": agreement}
    if bf16:
        record["bf16"] = _try_bf16(measure, validator, record, limit)
        if record["bf16"]["kept"]:
            record["f32"] = {"f1": f1, "f1_drop": drop, "word_agreement": agreement}
            f1, drop, agreement = record["bf16"]["f1"], record["bf16"]["f1_drop"], record["bf16"]["word_agreement"]
            record.update(inference_precision="bf16", f1=f1, f1_drop=drop, word_agreement=agreement)
    outcome = OpenVinoOutcome(True, "", fp32_f1, f1, drop, limit, agreement, record)
    return outcome, GraphSpec(OPENVINO_GRAPH, "cpu", "int8", record, True, "openvino", OPENVINO_WEIGHTS)


def _try_bf16(
    measure: Callable[[dict[str, Any]], list[list[str]]],
    validator: BundleValidator,
    record: dict[str, Any],
    limit: float,
) -> dict[str, Any]:
    """The shipped IR (`record`) measured again with bf16 inference precision: kept or not, why, its F1."""
    if not computes_bf16():
        return {"kept": False, "reason": "this CPU has no bf16 instructions"}
    if record["fp32_f1"] is None:
        return {"kept": False, "reason": "no entity F1 to measure bf16 by (the labels are not IOB tags)"}
    try:
        tags = measure({**record, "inference_precision": "bf16"})
    except Exception as exc:  # noqa: BLE001 - bf16 is an option; f32 stays
        return {"kept": False, "reason": f"OpenVINO failed in bf16: {type(exc).__name__}: {first_line(exc)}"}
    f1 = entity_scores(validator.gold, tags).f1
    kept, drop, reason = openvino_verdict(record["fp32_f1"], f1, limit)
    agreement = word_agreement(validator.fp32_tags, tags)
    return {"kept": kept, "reason": reason, "f1": f1, "f1_drop": drop, "word_agreement": agreement}
