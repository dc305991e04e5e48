"""Checkpoint -> bundle: Optimum export, ONNX Runtime fusions, int8 quantization behind an accuracy gate.

The chain is fixed because each step is the best tool for it: Optimum's exporter knows how to trace
every transformers architecture with dynamic batch and sequence axes; ONNX Runtime's transformer
optimizer fuses attention, skip-layer-norm and bias-GELU into single kernels; int8 (`export.quantize`)
keeps those kernels, with per-channel weights, per-row embedding tables and calibrated activation
scales, so the int8 graph is small, fast and batch-invariant.

The embedding layer-norm is deliberately left unfused. Fused, its three tables (words, positions,
token types) can only be quantized together with one scale each, and the small position and
token-type tables lose the fine differences the model reads (benchmarks/PERFORMANCE.md). Unfused,
each table is its own Gather: the word table is stored per row, the small ones stay fp32.

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

from .decoding_outputs import add_decoding_outputs
from .gate import calibration_inputs, run_int8_gate
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
# ONNX Runtime's transformer optimizer knows these encoder layouts.
_OPTIMIZER_TYPES = {
    "bert": "bert",
    "roberta": "bert",
    "xlm-roberta": "bert",
    "electra": "bert",
    "camembert": "bert",
    "distilbert": "bert",
}


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
class ExportConfig:
    """How to export a checkpoint. Unset quantization fields take `cpu_quantization_defaults()`.

    `int8` ("static": calibrated activation scales, batch-invariant; "dynamic": per-batch scales),
    `calibration`, `embeddings`, `per_channel` and `reduce_range` make the requested int8 config, the
    first rung of the gate's ladder (`export.quantize.default_int8_ladder`); `int8_ladder` replaces
    the whole ladder. `max_f1_drop` is the most entity F1 (in points, 0-100) the int8 graph may lose
    against the fp32 one on the validation sentences. `openvino`: also make the NNCF int8 OpenVINO graph
    (None: when openvino and nncf are installed; True asks for it, recording why when it cannot be made;
    False: never); `openvino_bf16`: let it run in bf16 where that is measured within `max_f1_drop`.
    """

    model_dir: str
    out: str | None = None
    force: bool = False
    opset: int | None = None
    per_channel: bool | None = None
    reduce_range: bool | None = None
    int8: str = "static"
    calibration: str = "minmax"
    embeddings: str = "per-row"
    include_fp32: bool = True
    include_fp16: bool = False
    validate_data: str | None = None
    validate_sentences: int = 1000
    atol: float = 1e-3
    max_f1_drop: float = 0.3
    int8_ladder: tuple[Int8Config, ...] | None = None
    max_length: int | None = None
    openvino: bool | None = None
    openvino_bf16: bool = True
    progress: bool = True

    def __post_init__(self) -> None:
        if not self.max_f1_drop >= 0:
            raise ValueError(f"max_f1_drop must be >= 0 (points of entity F1), got {self.max_f1_drop}")
        if self.validate_sentences < 1:
            raise ValueError(f"validate_sentences must be at least 1, got {self.validate_sentences}")
        if self.int8_ladder is not None and not self.int8_ladder:
            raise ValueError("int8_ladder must hold at least one Int8Config (or be None for the default ladder)")

    def destination(self) -> Path:
        return Path(self.out) if self.out else Path(str(Path(self.model_dir).resolve()) + "-bundle")


@dataclass(frozen=True)
class ExportResult:
    out: str
    manifest: BundleManifest
    validation: ValidationReport
    sizes_mb: dict[str, float] = field(default_factory=dict)


def _require_export_deps() -> None:
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


def _optimize(raw: Path, dest: Path, config: dict[str, Any]) -> dict[str, int]:
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    model_type = _OPTIMIZER_TYPES.get(config.get("model_type", ""), "bert")
    options = FusionOptions(model_type)
    options.enable_embed_layer_norm = False  # keeps each embedding table quantizable on its own (module docstring)
    optimized = optimize_model(
        str(raw),
        model_type=model_type,
        num_heads=int(config.get("num_attention_heads", config.get("n_heads", 0))),
        hidden_size=int(config.get("hidden_size", config.get("dim", 0))),
        opt_level=0,  # Python fusions only: the saved graph stays portable across CPUs
        optimization_options=options,
    )
    for i, node in enumerate(optimized.model.graph.node):
        if not node.name:  # the int8 gate excludes nodes from quantization by name
            node.name = f"{node.op_type}_{i}"
    optimized.save_model_to_file(str(dest))
    return {k: int(v) for k, v in optimized.get_fused_operator_statistics().items() if v}


def _to_fp16(fp32: Path, dest: Path) -> None:
    import onnx
    from onnxruntime.transformers.onnx_model import OnnxModel

    model = OnnxModel(onnx.load(str(fp32)))
    model.convert_float_to_float16(keep_io_types=True)
    model.save_model_to_file(str(dest))


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


def _max_length(config: dict[str, Any], tokenizer_max: int, override: int | None) -> int:
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
    _require_export_deps()
    model_dir = Path(config.model_dir)
    hf_config = _check_checkpoint(model_dir)
    _check_max_length(hf_config, config.max_length, model_dir)
    out = config.destination()
    if out.exists() and not config.force:
        raise OutputExistsError(f"{out}: already exists; pass --force to replace it")
    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"{out}: exists and is not a directory")
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
    chosen_for = "VNNI" if defaults["vnni"] else platform.machine()

    from optimum.exporters.onnx import onnx_export_from_model

    from ner_export.finetune import load_checkpoint, write_config

    # Optimum exports the model loaded here, not the folder: its own loader would refuse the config.json
    # of a model trained with casing (finetune._checkpoint), which load_checkpoint resolves
    model, tokenizer = load_checkpoint(str(model_dir))
    labels = tuple(
        hf_config["id2label"][str(i)] if str(i) in hf_config["id2label"] else hf_config["id2label"][i]
        for i in range(len(hf_config["id2label"]))
    )
    with staged_directory(out) as tmp:
        missing = missing_openvino()
        openvino = config.openvino is not False and (config.openvino is True or missing is None)
        steps = _progress(config.progress, total=4 + int(config.include_fp16) + int(openvino))
        raw_dir = tmp / "raw"
        steps.set_description("exporting with Optimum")
        try:
            with third_party_warnings_silenced():
                onnx_export_from_model(
                    model,
                    raw_dir,
                    task="token-classification",
                    opset=config.opset,
                    do_validation=False,  # BundleValidator compares the fused graph with PyTorch instead
                )
        except Exception as exc:  # optimum raises many types for unsupported models
            raise ExportError(f"{model_dir}: Optimum could not export this checkpoint ({first_line(exc)})") from exc
        steps.update()
        steps.set_description("fusing with ONNX Runtime")
        with third_party_warnings_silenced():
            fusions = _optimize(raw_dir / "model.onnx", tmp / FP32_GRAPH, hf_config)
        shutil.rmtree(raw_dir)
        steps.update()
        import onnx

        opset = next(
            (
                o.version
                for o in onnx.load(str(tmp / FP32_GRAPH), load_external_data=False).opset_import
                if o.domain in ("", "ai.onnx")
            ),
            0,
        )
        # the full set of tokenizer files, so the bundle loads in transformers and Optimum like a checkpoint
        max_length = _max_length(hf_config, int(tokenizer.model_max_length), config.max_length)
        tokenizer.model_max_length = _tokenizer_max_length(hf_config, tokenizer.model_max_length)
        tokenizer.save_pretrained(tmp)
        del model  # the validator loads its own copy, untouched by the export
        write_config(tmp, hf_config)  # marked when trained with casing, like the checkpoint's
        base = BundleManifest(
            labels=labels,
            max_length=max_length,
            graphs=(GraphSpec(FP32_GRAPH, "cpu", "fp32"),),
            files={name: sha256_file(tmp / name) for name in sorted(os.listdir(tmp)) if name != MANIFEST_NAME},
            vocab_size=tokenizer.backend_tokenizer.get_vocab_size(),
            pad_token_id=int(tokenizer.pad_token_id or 0),
            model_type=hf_config.get("model_type", ""),
            context=hf_config.get("ner_export_context", "none"),
            casing=bool(hf_config.get("ner_export_casing", False)),
            opset=int(opset),
            versions=library_versions(),
            source={"checkpoint": str(model_dir.resolve()), "fusions": fusions},
        )
        base.write(tmp)
        steps.set_description("validating fp32 against PyTorch")
        validator = BundleValidator(model_dir, config)
        validator.check_fp32(tmp)
        steps.update()
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
        quantization = gate.quantization
        steps.update()
        graphs = [GraphSpec(INT8_GRAPH, "cpu", "int8", quantization, batch_invariant=quantization["batch_invariant"])]
        ov_graph = None
        if not openvino:
            outcome = OpenVinoOutcome(False, "turned off (--no-openvino)" if config.openvino is False else str(missing))
        elif missing:
            outcome = OpenVinoOutcome(False, missing)
            steps.update()
        else:
            steps.set_description("quantizing to int8 for OpenVINO (NNCF)")
            with third_party_warnings_silenced():
                outcome, ov_graph = add_openvino_graph(
                    tmp,
                    base,
                    validator,
                    FP32_GRAPH,
                    gate.limit,
                    lambda: calibration_inputs(tmp, validator),
                    bf16=config.openvino_bf16,
                )
            steps.update()
        if config.include_fp32:
            graphs.append(GraphSpec(FP32_GRAPH, "cpu", "fp32"))
        if config.include_fp16:
            steps.set_description("converting to fp16 for CUDA")
            _to_fp16(tmp / FP32_GRAPH, tmp / FP16_GRAPH)
            graphs.append(GraphSpec(FP16_GRAPH, "cuda", "fp16"))
            steps.update()
        if config.include_fp32:
            graphs.append(GraphSpec(FP32_GRAPH, "cuda", "fp32"))
        else:
            (tmp / FP32_GRAPH).unlink()
        if ov_graph is not None:  # listed last: a reader that predates backends takes the first int8 graph
            graphs.append(ov_graph)
        for name in sorted({g.file for g in graphs if g.backend == "onnxruntime"}):
            add_decoding_outputs(tmp / name, labels)  # after the gate: the logits it measured stay as they were
        steps.close()
        report = validator.report(gate.attempts, gate.tags, gate.limit, gate.calibration, outcome.to_dict())
        final = replace(
            base,
            graphs=tuple(graphs),
            files={name: sha256_file(tmp / name) for name in sorted(os.listdir(tmp)) if name != MANIFEST_NAME},
            validation=report.to_dict(),
        )
        final.write(tmp)
        sizes = {name: round((tmp / name).stat().st_size / 1e6, 2) for name in final.files}
    return ExportResult(str(out), final, report, sizes)


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


def _progress(enabled: bool, total: int) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, disable=not enabled, bar_format="{desc}: {n}/{total} {bar} {elapsed}")
