"""Static activation scales: a dynamically quantized graph made batch-invariant by calibration.

ONNX Runtime's dynamic int8 graph quantizes each activation tensor with a scale taken from that
tensor at run time (`DynamicQuantizeLinear`), over the whole batch, padding included. A text's
result therefore depends on which texts share its batch. Here every `DynamicQuantizeLinear` is
replaced by a `QuantizeLinear` with a fixed scale and zero point, measured once on calibration
sentences, in front of the same integer kernels (`QAttention`, `MatMulInteger`), so the graph keeps
its speed and its answers no longer depend on the batch.

Trade-offs:
- Ranges are measured on the dynamic int8 graph itself, one sentence per run (no padding enters
  them), so each range sees the error of the int8 layers before it, as the static graph will.
- `minmax` covers every calibration value: nothing clips, at some resolution; `percentile` clips the
  rare extremes for finer steps, which BERT's few outlier channels can punish. Both are asymmetric
  uint8 with a zero point, as the dynamic kernels expect, and the range always holds 0.
- Values outside the calibrated range saturate; the accuracy gate (`export.gate`) measures the cost
  against the fp32 graph before anything is shipped.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ner_export.runtime.manifest import CALIBRATIONS

__all__ = [
    "CALIBRATION_METHODS",
    "ActivationRanges",
    "calibrate_activations",
    "dynamic_activation_inputs",
    "freeze_activation_scales",
]

CALIBRATION_METHODS = CALIBRATIONS
_SAMPLE_PER_RUN = 4096  # values kept per tensor and run for percentiles: bounded memory on any sample size


@dataclass(frozen=True)
class ActivationRanges:
    """The calibrated (min, max) of each dynamically quantized activation, and how they were found."""

    ranges: Mapping[str, tuple[float, float]]
    method: str
    runs: int
    percentile: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "calibration": self.method,
            "calibration_runs": self.runs,
            "percentile": self.percentile,
            "activations": len(self.ranges),
        }


def dynamic_activation_inputs(model: Any) -> list[str]:
    """Names of the float tensors a graph quantizes at run time (inputs of `DynamicQuantizeLinear`)."""
    return [node.input[0] for node in model.graph.node if node.op_type == "DynamicQuantizeLinear"]


def calibrate_activations(
    int8_graph: Path,
    feeds: Iterable[Mapping[str, np.ndarray]],
    method: str = "minmax",
    percentile: float = 99.999,
    seed: int = 0,
) -> ActivationRanges:
    """Ranges of every dynamically quantized activation of `int8_graph` over `feeds` (one run each)."""
    import onnx
    import onnxruntime as ort

    if method not in CALIBRATION_METHODS:
        raise ValueError(f"calibration method {method!r} is not one of {', '.join(CALIBRATION_METHODS)}")
    model = onnx.load(str(int8_graph))
    names = list(dict.fromkeys(dynamic_activation_inputs(model)))
    present = {output.name for output in model.graph.output}
    for name in names:
        if name not in present:
            model.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    low = dict.fromkeys(names, np.inf)
    high = dict.fromkeys(names, -np.inf)
    samples: dict[str, list[np.ndarray]] = {name: [] for name in names}
    rng = np.random.default_rng(seed)
    runs = 0
    for feed in feeds:
        runs += 1
        for name, value in zip(names, session.run(names, dict(feed)), strict=True):
            low[name] = min(low[name], float(value.min()))
            high[name] = max(high[name], float(value.max()))
            if method == "percentile":
                flat = value.reshape(-1)
                samples[name].append(
                    flat if flat.size <= _SAMPLE_PER_RUN else rng.choice(flat, _SAMPLE_PER_RUN, replace=False)
                )
    if runs == 0:
        raise ValueError("calibration needs at least one input; the calibration sample is empty")
    ranges = {name: (low[name], high[name]) for name in names}
    if method == "percentile":
        for name in names:
            values = np.concatenate(samples[name])
            ranges[name] = (float(np.percentile(values, 100 - percentile)), float(np.percentile(values, percentile)))
    return ActivationRanges(ranges, method, runs, percentile if method == "percentile" else None)


def _uint8_scale(low: float, high: float) -> tuple[float, int]:
    """Scale and zero point of asymmetric uint8 over [low, high] widened to hold 0 (DynamicQuantizeLinear's rule)."""
    low, high = min(low, 0.0), max(high, 0.0)
    scale = (high - low) / 255.0 if high > low else 1.0
    return scale, int(np.clip(np.round(-low / scale), 0, 255))


def freeze_activation_scales(int8_graph: Path, dest: Path, ranges: ActivationRanges) -> int:
    """Write `int8_graph` to `dest` with every `DynamicQuantizeLinear` replaced by a calibrated `QuantizeLinear`.

    The replaced node's scale and zero-point outputs become constants of the same names, so the
    integer kernels that read them are untouched. Returns how many nodes were replaced.
    """
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(int8_graph))
    graph = model.graph
    nodes = []
    replaced = 0
    for node in graph.node:
        if node.op_type != "DynamicQuantizeLinear":
            nodes.append(node)
            continue
        source = node.input[0]
        if source not in ranges.ranges:
            raise ValueError(f"no calibrated range for {source!r}; calibrate the same graph that is rewritten")
        quantized, scale_name, zero_name = node.output
        scale, zero_point = _uint8_scale(*ranges.ranges[source])
        graph.initializer.append(numpy_helper.from_array(np.array(scale, dtype=np.float32), scale_name))
        graph.initializer.append(numpy_helper.from_array(np.array(zero_point, dtype=np.uint8), zero_name))
        nodes.append(
            helper.make_node("QuantizeLinear", [source, scale_name, zero_name], [quantized], name=f"{node.name}_static")
        )
        replaced += 1
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.save(model, str(dest))
    return replaced
