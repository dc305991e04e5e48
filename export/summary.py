"""`export_summary(result)`: what an export did, as the lines `ner-export export` prints.

The bundle's files and sizes, the fp32 check against PyTorch, the entity F1 of each graph, every int8
rung the accuracy gate measured with its verdict, and whether the OpenVINO graph was shipped or why
not. Plain strings, so any front end (the CLI, a notebook, a log) shows the same report; the
result's own fields stay the place to read numbers from.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the public names: the modules behind them may move
    from ner_export.export import ExportResult, ValidationReport

__all__ = ["export_summary"]


def export_summary(result: ExportResult) -> list[str]:
    """The lines that report an export: files, fp32 check, F1 per graph, int8 gate, OpenVINO graph."""
    v = result.validation
    lines = [f"bundle written to {result.out}"]
    lines += [f"  {name:<20} {size:8.2f} MB" for name, size in sorted(result.sizes_mb.items())]
    lines.append(
        f"validated on {v.sentences} sentences from {v.data}: "
        f"fp32 max |Δlogit| {v.fp32_logits_max_abs_diff:.1e} (tolerance {v.atol:.0e})"
    )
    if v.pytorch_f1 is not None:
        lines.append(
            f"  entity F1: pytorch {v.pytorch_f1:.4f}  fp32 {v.fp32_f1:.4f}  int8 {v.int8_f1:.4f} "
            f"(Δ {100 * v.int8_f1_delta:+.2f} points); int8 word-label agreement {100 * v.int8_word_agreement:.2f}%"
        )
    lines += _int8_gate_lines(v)
    lines += _openvino_lines(v.openvino)
    return lines


def _int8_gate_lines(v: ValidationReport) -> list[str]:
    """One line per int8 rung the gate measured: its F1 drop against fp32, kept or over the limit."""
    lines = []
    for attempt in v.int8_attempts:
        if attempt["drop"] is not None:
            verdict = "kept" if attempt["accepted"] else f"over the {v.max_f1_drop:.2f}-point limit"
            lines.append(
                f"  int8 config {attempt['config']['name']}: "
                f"entity F1 drop vs fp32 {attempt['drop']:.2f} points, {verdict}"
            )
    return lines


def _openvino_lines(ov: dict[str, Any]) -> list[str]:
    """The OpenVINO graph: shipped (with its F1 drop and precision, and why bf16 was not kept), or why not."""
    if ov.get("shipped"):
        drop = "" if ov["drop"] is None else f"entity F1 drop vs fp32 {ov['drop']:.2f} points, "
        precision = ov.get("inference_precision", "f32")
        lines = [
            f"  openvino int8 (NNCF, {precision}): {drop}shipped as {ov['graph']} "
            "(NerModel.load(..., backend='openvino'))"
        ]
        if ov.get("bf16") and not ov["bf16"]["kept"]:
            lines.append(f"    bf16 not kept: {ov['bf16']['reason']}")
        return lines
    if ov:
        return [f"  openvino int8 (NNCF): left out: {ov['reason']}"]
    return []
