"""Checkpoint -> bundle: Optimum export, ONNX Runtime fusions, int8 quantization behind an accuracy gate.

The chain is fixed because each step is the best tool for it: Optimum's exporter knows how to trace
every transformers architecture with dynamic batch and sequence axes; ONNX Runtime's transformer
optimizer fuses attention, skip-layer-norm and bias-GELU into single kernels; int8 (`export.quantize`)
keeps those kernels, with per-channel weights, per-row embedding tables and calibrated activation
scales, so the int8 graph is small, fast and batch-invariant.

The embedding layer-norm is deliberately left unfused (`export.fusion`), so each embedding table
stays quantizable on its own.

The order is: export, fuse, check the fp32 graph against PyTorch (an export bug stops everything before
any quantization time is spent), then the int8 accuracy gate (`export.gate`): quantize with the
requested config, measure the entity-F1 drop against the fp32 graph on the validation sentences, and
while it exceeds `max_f1_drop` try the next, safer rung; when no rung is within the limit the export
is refused with the numbers. Every attempt is recorded in the manifest, so a bundle says what its int8
graph cost and what was tried to get there.

When openvino and nncf are installed (and `openvino` is not False), the bundle may also carry an
NNCF int8 OpenVINO IR for the runtime's optional OpenVINO backend (`export.openvino_int8`): made
after the gate from the same fp32 graph and calibration inputs, measured the same way, shipped only
within the same limit, and never a reason for the export to fail.

Last, every onnxruntime graph with float32 logits gets the decoding output (`export.decoding_outputs`):
the logits followed by each token's argmax label and scores, which the runtime's default decoding reads.
It is added after the gate and the OpenVINO conversion, so no quantizer sees it and the logits stay
what was measured.

The module holds the chain and its steps; each tool lives in its own module, imported one way: the
leaves (`export.config`, `export.int8_attempt`, `export.quantize` and its rewrites, `export.fusion`,
`export.decoding_outputs`), then `export.validate`, then `export.gate` and `export.openvino_int8`, then
this one.

The last file written is the model card, README.md (`export.bundle_card`), after bundle.json: it lists
the sha256 of every other file, and bundle.json does not list it.

Nothing reaches the destination until the graphs are validated against the PyTorch model: the bundle is
built in a temporary sibling directory, checked, and only then renamed into place, so an interrupted,
failed or refused export leaves the previous bundle (or nothing) behind, never a half-written one.
"""

from __future__ import annotations

import contextlib
import os
import platform
import shutil
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ner_export.runtime.context import CONTEXT_MODES
from ner_export.runtime.errors import (
    CheckpointError,
    ExportError,
    MissingDependencyError,
    OutputExistsError,
)
from ner_export.runtime.files import staged_directory
from ner_export.runtime.machine import cpu_flags, library_versions
from ner_export.runtime.manifest import (
    MANIFEST_NAME,
    BundleManifest,
    GraphSpec,
    position_limit,
    sha256_file,
)
from ner_export.runtime.session import first_line

from .bundle_card import write_bundle_card
from .config import ExportConfig
from .decoding_outputs import add_decoding_outputs
from .fusion import convert_to_fp16, fuse_with_onnxruntime, graph_opset
from .gate import GateResult, calibration_inputs, run_int8_gate
from .openvino_int8 import OpenVinoOutcome, add_openvino_graph, missing_openvino
from .quantize import Int8Config, default_int8_ladder
from .validate import BundleValidator, ValidationReport

__all__ = [
    "ExportConfig",
    "ExportResult",
    "Int8Config",
    "cpu_quantization_defaults",
    "export_bundle",
    "third_party_warnings_silenced",
]

FP32_GRAPH = "model.onnx"
INT8_GRAPH = "model_int8.onnx"
FP16_GRAPH = "model_fp16.onnx"


def cpu_quantization_defaults() -> dict[str, Any]:
    """Quantization settings for this machine's instruction set.

    With VNNI (AVX-512 VNNI or AVX-VNNI) u8 activations x s8 weights run exactly; on plain AVX2/AVX-512
    the u8s8 dot product can saturate, so weights are reduced to 7 bits (ONNX Runtime's advice).
    """
    flags = cpu_flags()
    vnni = bool(flags & {"avx512_vnni", "avx_vnni", "avx512vnni"})
    x86 = platform.machine().lower() in ("x86_64", "amd64")
    return {"weight_type": "int8", "per_channel": True, "reduce_range": x86 and not vnni, "vnni": vnni}


@dataclass(frozen=True)
class ExportResult:
    """A finished export: the bundle's directory and manifest, what validation measured, file sizes in MB."""

    out: str
    manifest: BundleManifest
    validation: ValidationReport
    sizes_mb: dict[str, float] = field(default_factory=dict)


def _require_export_deps() -> None:
    """MissingDependencyError naming the extra when a package the export needs is not installed."""
    for module, extra in (
        ("onnx", "export"),
        ("optimum.exporters.onnx", "export"),
        ("torch", "train"),
        ("transformers", "train"),
    ):
        try:
            __import__(module)
        except ImportError as exc:
            raise MissingDependencyError(module.split(".")[0], extra, "Exporting") from exc


def _check_checkpoint(model_dir: Path) -> dict[str, Any]:
    """The checkpoint's config.json, its casing marker resolved (`finetune.read_config`)."""
    from ner_export.finetune import read_config

    if not model_dir.is_dir():
        raise CheckpointError(f"{model_dir}: no such directory (expected a fine-tuned checkpoint folder)")
    config_path = model_dir / "config.json"
    config = read_config(model_dir)
    if not config.get("id2label"):
        raise CheckpointError(f"{config_path}: no id2label; is this a token-classification checkpoint?")
    if not any((model_dir / f).is_file() for f in ("model.safetensors", "pytorch_model.bin")):
        raise CheckpointError(f"{model_dir}: no weights (model.safetensors or pytorch_model.bin)")
    context = config.get("ner_export_context", "none")
    if context not in CONTEXT_MODES:
        raise CheckpointError(f"{config_path}: ner_export_context {context!r} is not one of {', '.join(CONTEXT_MODES)}")
    return config


def _check_max_length(config: dict[str, Any], override: int | None, model_dir: Path) -> None:
    """Refuse a `--max-length` longer than the model has positions for: its graph would fail on long texts."""
    limit = position_limit(config)
    if override and limit is not None and override > limit:
        raise ExportError(
            f"--max-length {override} is more than the {limit} token positions the model has "
            f"(max_position_embeddings in {model_dir / 'config.json'}); use at most {limit}"
        )


def _tokenizer_max_length(config: dict[str, Any], tokenizer_max: float) -> int:
    """The `model_max_length` the bundle's tokenizer files declare: the checkpoint tokenizer's when it is
    a real length (transformers puts ~1e30 there when a tokenizer has none), else the model's positions;
    never more than the positions, so a stock pipeline cuts long texts where the graph can read them."""
    positions = int(config.get("max_position_embeddings", 512))
    return min(int(tokenizer_max), positions) if 0 < tokenizer_max < 100_000 else positions


def _bundle_max_length(config: dict[str, Any], tokenizer_max: int, override: int | None) -> int:
    """The manifest's `max_length`: `--max-length`, else the length trained with, else the tokenizer's;
    never more than the model's positions."""
    if override:
        return override
    trained = config.get("max_length_trained")
    positions = position_limit(config) or 512
    if trained:
        return min(int(trained), positions)
    return min(tokenizer_max if 0 < tokenizer_max < 100_000 else positions, positions)


def export_bundle(config: ExportConfig) -> ExportResult:
    """Export, optimize, quantize and validate `config.model_dir` into a bundle directory.

    Raises ValidationError, leaving the destination untouched, when the fp32 graph differs from PyTorch
    or when no int8 config of the ladder stays within `config.max_f1_drop`.
    """
    model_dir, hf_config, out = _checked_request(config)
    ladder, chosen_for = _int8_ladder(config)

    from ner_export.finetune import load_checkpoint

    # Optimum exports the model loaded here, not the folder: its own loader would refuse the config.json
    # of a model trained with casing (finetune._checkpoint), which load_checkpoint resolves
    model, tokenizer = load_checkpoint(str(model_dir))
    labels = _checkpoint_labels(hf_config)
    with staged_directory(out) as tmp:
        missing = missing_openvino()
        openvino_wanted = config.openvino is not False and (config.openvino is True or missing is None)
        steps = _progress_bar(config.progress, total=4 + int(config.include_fp16) + int(openvino_wanted))
        fusions = _export_fused_fp32(model, tmp, hf_config, config.opset, model_dir, steps)
        del model  # the validator loads its own copy, untouched by the export
        base = _write_fp32_bundle(tmp, tokenizer, hf_config, labels, config.max_length, model_dir, fusions)
        steps.set_description("validating fp32 against PyTorch")
        validator = BundleValidator(model_dir, config)
        validator.check_fp32(tmp)
        steps.update()
        gate = _quantize_behind_gate(tmp, base, ladder, validator, chosen_for, steps)
        if openvino_wanted and not missing:
            outcome, openvino_graph = _make_openvino_graph(tmp, base, validator, gate.limit, config, steps)
        else:
            outcome, openvino_graph = _openvino_left_out(config, missing, steps), None
        graphs = _shipped_graphs(tmp, gate.quantization, openvino_graph, config, steps)
        for name in sorted({g.file for g in graphs if g.backend == "onnxruntime"}):
            add_decoding_outputs(tmp / name, labels)  # after the gate: the logits it measured stay as they were
        steps.close()
        report = validator.report(gate.attempts, gate.tags, gate.limit, gate.calibration, outcome.to_dict())
        final = replace(base, graphs=tuple(graphs), files=_file_hashes(tmp), validation=report.to_dict())
        final.write(tmp)
        write_bundle_card(tmp, model_dir, out.name, final, report)  # last: it hashes every other file
        sizes = {name: round((tmp / name).stat().st_size / 1e6, 2) for name in final.files}
    return ExportResult(str(out), final, report, sizes)


def _checked_request(config: ExportConfig) -> tuple[Path, dict[str, Any], Path]:
    """(checkpoint folder, its config.json, destination), once the dependencies, the checkpoint, the
    `max_length` and the destination are known to be usable: nothing is loaded before that."""
    _require_export_deps()
    model_dir = Path(config.model_dir)
    hf_config = _check_checkpoint(model_dir)
    _check_max_length(hf_config, config.max_length, model_dir)
    out = config.destination()
    if out.exists() and not config.force:
        raise OutputExistsError(f"{out}: already exists; pass --force to replace it")
    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"{out}: exists and is not a directory")
    return model_dir, hf_config, out


def _int8_ladder(config: ExportConfig) -> tuple[tuple[Int8Config, ...], str]:
    """The gate's ladder (the requested config, this CPU's defaults filling its unset fields, then the
    safer rungs, unless `config.int8_ladder` replaces them) and what the defaults were chosen for."""
    defaults = cpu_quantization_defaults()
    requested = Int8Config(
        name="requested",
        per_channel=defaults["per_channel"] if config.per_channel is None else config.per_channel,
        reduce_range=defaults["reduce_range"] if config.reduce_range is None else config.reduce_range,
        activations=config.int8,
        calibration=config.calibration,
        embeddings=config.embeddings,
    )
    ladder = config.int8_ladder or default_int8_ladder(requested)
    return ladder, "VNNI" if defaults["vnni"] else platform.machine()


def _checkpoint_labels(hf_config: dict[str, Any]) -> tuple[str, ...]:
    """The labels by id; config.json's `id2label` keys are strings, a config built in Python has ints."""
    id2label = hf_config["id2label"]
    return tuple(id2label[str(i)] if str(i) in id2label else id2label[i] for i in range(len(id2label)))


def _export_fused_fp32(
    model: Any, tmp: Path, hf_config: dict[str, Any], opset: int | None, model_dir: Path, steps: Any
) -> dict[str, int]:
    """Optimum's export of `model`, fused by ONNX Runtime into `tmp / FP32_GRAPH`; returns the fusion counts."""
    from optimum.exporters.onnx import onnx_export_from_model

    raw_dir = tmp / "raw"
    steps.set_description("exporting with Optimum")
    try:
        with third_party_warnings_silenced():
            onnx_export_from_model(
                model,
                raw_dir,
                task="token-classification",
                opset=opset,
                do_validation=False,  # BundleValidator compares the fused graph with PyTorch instead
            )
    except Exception as exc:  # optimum raises many types for unsupported models
        raise ExportError(f"{model_dir}: Optimum could not export this checkpoint ({first_line(exc)})") from exc
    steps.update()
    steps.set_description("fusing with ONNX Runtime")
    with third_party_warnings_silenced():
        fusions = fuse_with_onnxruntime(raw_dir / "model.onnx", tmp / FP32_GRAPH, hf_config)
    shutil.rmtree(raw_dir)
    steps.update()
    return fusions


def _write_fp32_bundle(
    tmp: Path,
    tokenizer: Any,
    hf_config: dict[str, Any],
    labels: tuple[str, ...],
    max_length_override: int | None,
    model_dir: Path,
    fusions: dict[str, int],
) -> BundleManifest:
    """Make `tmp` a bundle of the fp32 graph alone (tokenizer files, config.json, manifest), which the
    validator and the gate load through the runtime; returns its manifest, the base of the final one."""
    from ner_export.finetune import write_config

    # the full set of tokenizer files, so the bundle loads in transformers and Optimum like a checkpoint
    max_length = _bundle_max_length(hf_config, int(tokenizer.model_max_length), max_length_override)
    tokenizer.model_max_length = _tokenizer_max_length(hf_config, tokenizer.model_max_length)
    tokenizer.save_pretrained(tmp)
    write_config(tmp, hf_config)  # marked when trained with casing, like the checkpoint's
    base = BundleManifest(
        labels=labels,
        max_length=max_length,
        graphs=(GraphSpec(FP32_GRAPH, "cpu", "fp32"),),
        files=_file_hashes(tmp),
        vocab_size=tokenizer.backend_tokenizer.get_vocab_size(),
        pad_token_id=int(tokenizer.pad_token_id or 0),
        model_type=hf_config.get("model_type", ""),
        context=hf_config.get("ner_export_context", "none"),
        casing=bool(hf_config.get("ner_export_casing", False)),
        opset=graph_opset(tmp / FP32_GRAPH),
        versions=library_versions(),
        source=_source(model_dir, fusions, hf_config),
    )
    base.write(tmp)
    return base


def _source(model_dir: Path, fusions: Any, hf_config: dict[str, Any]) -> dict[str, Any]:
    """Where the graph came from: the checkpoint, its fusions, and for a student what it was distilled from."""
    source: dict[str, Any] = {"checkpoint": str(model_dir.resolve()), "fusions": fusions}
    if "ner_export_distillation" in hf_config:
        source["distillation"] = hf_config["ner_export_distillation"]
    return source


def _file_hashes(bundle_dir: Path) -> dict[str, str]:
    """The sha256 of every file in `bundle_dir` but the manifest, by name: the manifest's `files`."""
    return {name: sha256_file(bundle_dir / name) for name in sorted(os.listdir(bundle_dir)) if name != MANIFEST_NAME}


def _quantize_behind_gate(
    tmp: Path,
    base: BundleManifest,
    ladder: tuple[Int8Config, ...],
    validator: BundleValidator,
    chosen_for: str,
    steps: Any,
) -> GateResult:
    """The int8 graph of the first rung within the F1 limit (`export.gate`), written as `INT8_GRAPH`."""
    steps.set_description("quantizing to int8")
    with third_party_warnings_silenced():
        gate = run_int8_gate(
            tmp,
            base,
            ladder,
            validator,
            fp32_graph=FP32_GRAPH,
            int8_graph=INT8_GRAPH,
            chosen_for=chosen_for,
            progress=steps.set_description,
        )
    steps.update()
    return gate


def _openvino_left_out(config: ExportConfig, missing: str | None, steps: Any) -> OpenVinoOutcome:
    """The record of an export without the OpenVINO graph: turned off, or its packages missing."""
    if config.openvino is True:  # asked for, so counted as a step, though it cannot be made here
        steps.update()
        return OpenVinoOutcome(False, str(missing))
    return OpenVinoOutcome(False, "turned off (--no-openvino)" if config.openvino is False else str(missing))


def _make_openvino_graph(
    tmp: Path, base: BundleManifest, validator: BundleValidator, limit: float, config: ExportConfig, steps: Any
) -> tuple[OpenVinoOutcome, GraphSpec | None]:
    """The NNCF int8 OpenVINO graph measured against the gate's `limit` (`export.openvino_int8`)."""
    steps.set_description("quantizing to int8 for OpenVINO (NNCF)")
    with third_party_warnings_silenced():
        made = add_openvino_graph(
            tmp,
            base,
            validator,
            FP32_GRAPH,
            limit,
            lambda: calibration_inputs(tmp, validator),
            bf16=config.openvino_bf16,
        )
    steps.update()
    return made


def _shipped_graphs(
    tmp: Path,
    quantization: dict[str, Any],
    openvino_graph: GraphSpec | None,
    config: ExportConfig,
    steps: Any,
) -> list[GraphSpec]:
    """The manifest's graph list, in the runtime's order of preference per device; makes the fp16 graph
    when asked for and deletes the fp32 one when it is not shipped."""
    graphs = [GraphSpec(INT8_GRAPH, "cpu", "int8", quantization, batch_invariant=quantization["batch_invariant"])]
    if config.include_fp32:
        graphs.append(GraphSpec(FP32_GRAPH, "cpu", "fp32"))
    if config.include_fp16:
        steps.set_description("converting to fp16 for CUDA")
        convert_to_fp16(tmp / FP32_GRAPH, tmp / FP16_GRAPH)
        graphs.append(GraphSpec(FP16_GRAPH, "cuda", "fp16"))
        steps.update()
    if config.include_fp32:
        graphs.append(GraphSpec(FP32_GRAPH, "cuda", "fp32"))
    else:
        (tmp / FP32_GRAPH).unlink()
    if openvino_graph is not None:  # listed last: a reader that knows no backends takes the first int8 graph
        graphs.append(openvino_graph)
    return graphs


@contextlib.contextmanager
def third_party_warnings_silenced() -> Iterator[None]:
    """Torch's tracer, Optimum and ONNX Runtime warn about their own internals; users can't act on it."""
    import logging

    # onnxruntime.quantization logs a pre-processing hint on the root logger; transformers and optimum
    # log deprecations of their own arguments
    loggers = [logging.getLogger(), logging.getLogger("transformers"), logging.getLogger("optimum")]
    levels = [log.level for log in loggers]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for log in loggers:
            log.setLevel(logging.ERROR)
        try:
            yield
        finally:
            for log, level in zip(loggers, levels, strict=True):
                log.setLevel(level)


def _progress_bar(enabled: bool, total: int) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, disable=not enabled, bar_format="{desc}: {n}/{total} {bar} {elapsed}")
