"""The bundle's model card: README.md in the Hugging Face format, written last into the staged bundle.

The card (`runtime.model_card`) tells what the checkpoint's card tells (labels, recipe from its
training_args.json and metrics.json, the data read, what a student was distilled from) and what only
the export knows: the int8 accuracy gate's outcome (every configuration tried, the F1 of PyTorch, of
the fp32 graph and of the int8 graph shipped, the limit), the dev F1 the gate measured, which is the
bundle's own score in the model-index, and how to load the bundle, with the casing warning where it
applies. The checkpoint's test F1 was measured on PyTorch, so it is told as the checkpoint's, not put
in the bundle's model-index.

Design trade-offs:
- Written after bundle.json, so the card lists the sha256 of every file, the manifest included. The
  manifest does not list README.md: it cannot hold the hash of a file that holds its own hash, and
  nothing needs it to. The runtime verifies the files bundle.json lists (the graph and tokenizer it
  loads), so the card, like any file the manifest does not list, never affects loading; editing the
  card (a Hub upload often does) leaves the bundle valid.
- Facts come from the finished `ValidationReport` and manifest, plain values: the card says what was
  measured, never recomputes anything.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path, PurePath
from typing import Any

from ner_export.runtime.manifest import BundleManifest
from ner_export.runtime.model_card import CardFacts, CardResult, checkpoint_card_facts, write_model_card

from .validate import ValidationReport

__all__ = ["bundle_card_facts", "gate_markdown", "write_bundle_card"]


def bundle_card_facts(model_dir: Path, name: str, manifest: BundleManifest, report: ValidationReport) -> CardFacts:
    """The card facts of the bundle `name` exported from the checkpoint `model_dir`."""
    checkpoint = checkpoint_card_facts(model_dir, name=name)
    results: tuple[CardResult, ...] = ()
    if report.int8_f1 is not None:
        results = (CardResult("dev", PurePath(report.data).name, report.int8_f1),)
    tested = [r for r in checkpoint.results if r.split == "test"]
    recipe = checkpoint.recipe + tuple(("checkpoint test F1 (PyTorch)", f"{r.f1:.4f} on {r.data}") for r in tested)
    return replace(
        checkpoint,
        kind="bundle",
        labels=manifest.labels,
        casing=manifest.casing,
        context=manifest.context,
        results=results,
        recipe=recipe,
        int8_gate=gate_markdown(report),
    )


def gate_markdown(report: ValidationReport) -> str:
    """The card's int8 gate section: what was measured on which sentences, every configuration tried."""
    sample = f"{report.sentences} sentences ({report.words} words) of `{PurePath(report.data).name}`"
    check = (
        f"The fp32 graph reproduces the PyTorch model within {report.fp32_logits_max_abs_diff:.1e} "
        f"(largest logit difference; tolerance {report.atol:.0e})."
    )
    kept = report.int8_config or "the first"
    if report.int8_f1 is None or report.fp32_f1 is None or report.pytorch_f1 is None:
        return (
            f"Measured on {sample}. {check} The labels are not IOB2 tags, so entity F1 was not measured; the "
            f"int8 configuration `{kept}` was kept, agreeing with PyTorch on "
            f"{100 * report.int8_word_agreement:.2f}% of the words."
        )
    drop = 100 * (report.fp32_f1 - report.int8_f1)
    lines = [
        f"Measured on {sample}. {check} Entity F1: PyTorch {report.pytorch_f1:.4f}, fp32 {report.fp32_f1:.4f}, "
        f"int8 {report.int8_f1:.4f} (configuration `{kept}`, {drop:.2f} points below fp32; the limit was "
        f"{report.applied_max_f1_drop:.2f} points, asked {report.max_f1_drop:.2f}).",
        "",
        "| int8 configuration | int8 F1 | drop vs fp32 (points) | kept |",
        "|---|---|---|---|",
    ]
    lines += [_attempt_row(attempt) for attempt in report.int8_attempts]
    openvino = report.openvino
    if openvino.get("shipped"):
        lines += ["", f"An NNCF int8 OpenVINO graph is shipped too (`{openvino.get('graph')}`)" + _drop(openvino) + "."]
    elif openvino:
        lines += ["", f"No OpenVINO graph: {openvino.get('reason')}."]
    return "\n".join(lines)


def _attempt_row(attempt: dict[str, Any]) -> str:
    config = attempt.get("config", {})
    f1, drop = attempt.get("int8_f1"), attempt.get("drop")
    shown_f1 = "" if f1 is None else f"{f1:.4f}"
    shown_drop = "" if drop is None else f"{drop:.2f}"
    return f"| {config.get('name', '?')} | {shown_f1} | {shown_drop} | {'yes' if attempt.get('accepted') else 'no'} |"


def _drop(openvino: dict[str, Any]) -> str:
    drop = openvino.get("drop")
    return "" if drop is None else f", {drop:.2f} points of entity F1 below fp32"


def write_bundle_card(
    folder: Path, model_dir: Path, name: str, manifest: BundleManifest, report: ValidationReport
) -> Path:
    """Write folder/README.md, the card of the bundle in `folder`; call it last, once every file is final."""
    return write_model_card(folder, bundle_card_facts(model_dir, name, manifest, report))
