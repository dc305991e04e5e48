"""The inference stacks the bench compares, by name, and how the wanted ones are loaded.

Each system answers the same questions behind one small interface (`benchmarks.system_interface`).
`pytorch` and `optimum_int8` are transformers' pipeline on the checkpoint and on the bundle's int8
graph, `runtime_*` are `NerModel` (`runtime_int8_openvino` on its OpenVINO backend, the bundle's NNCF
int8 IR, raw text in like every runtime row; `benchmarks.text_systems`); `session_int8` is a bare
onnxruntime session fed pre-tokenized, length-sorted batches, the floor that the runtime's own
overhead is measured against, and `openvino_int8`, `ctranslate2_int8` are peer engines fed the same
way (`benchmarks.bare_systems`). Cold starts run in a fresh process (`benchmarks.cold_start`).

This module checks that the checkpoint and the bundle are the same model before anything is timed,
and loads each wanted system or says why it cannot run here (a missing package, a graph the bundle
lacks): a bench on a partial machine reports what it could measure instead of failing. It re-exports
the systems' classes and the cold start, the names the bench and the CLI import from here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ner_export.runtime.errors import BenchMismatchError
from ner_export.runtime.manifest import BundleManifest

from .bare_systems import BareSystem, CTranslate2PeerSystem, OpenVinoPeerSystem, SessionSystem
from .cold_start import COLD_STARTS, cold_start
from .peers import missing_peer
from .system_interface import Spans, System
from .text_systems import PipelineSystem, RuntimeSystem

__all__ = [
    "BARE",
    "COLD_STARTS",
    "SYSTEMS",
    "BareSystem",
    "RuntimeSystem",
    "Spans",
    "System",
    "cold_start",
    "load_systems",
    "missing_openvino_backend",
]

SYSTEMS = (
    "pytorch",
    "optimum_int8",
    "runtime_fp32",
    "runtime_int8",
    "runtime_int8_dynamic",
    "runtime_int8_openvino",
    "session_int8",
    "openvino_int8",
    "ctranslate2_int8",
)
BARE = ("session_int8", "openvino_int8", "ctranslate2_int8")
"""Engines fed pre-tokenized batches: no tokenizing or decoding is timed, and they find no entities
(their batch-invariance is counted on each text's token labels instead)."""
_SAME_MODEL_ADVICE = "bench a bundle against the checkpoint it was exported from"


def load_systems(
    bundle: Path,
    checkpoint: Path,
    wanted: tuple[str, ...],
    texts: list[str],
    batch_size: int,
    skipped: dict[str, str],
    workdir: Path,
) -> list[System]:
    """The `wanted` systems, ready to run; those that cannot run here are named in `skipped` with why.

    `workdir` holds what some systems build for themselves (the dynamic int8 graph, converted peers)
    and must outlive them.
    BenchMismatchError when the checkpoint and the bundle are not the same model (labels, casing, context).
    """
    from ner_export.finetune import load_checkpoint

    unknown = sorted(set(wanted) - set(SYSTEMS))
    if unknown:
        raise ValueError(f"unknown system(s) {', '.join(unknown)}; choose from {', '.join(SYSTEMS)}")
    manifest = BundleManifest.read(bundle)
    model, tokenizer = load_checkpoint(str(checkpoint))
    context = _checked_same_model(bundle, checkpoint, model.config, manifest)
    systems: list[System] = []
    for name in wanted:
        made: System | str
        if name in ("pytorch", "optimum_int8"):
            made = _pipeline_system(name, bundle, checkpoint, manifest, model, tokenizer, batch_size, context)
        elif name.startswith("runtime_"):
            made = _runtime_system(name, bundle, manifest, batch_size, workdir)
        else:
            made = _bare_system(name, bundle, checkpoint, manifest, texts, batch_size, workdir)
        if isinstance(made, str):
            skipped[name] = made
        else:
            systems.append(made)
    return systems


def _checked_same_model(bundle: Path, checkpoint: Path, config: Any, manifest: BundleManifest) -> tuple[str, int]:
    """The checkpoint's (context mode, window) once its labels, casing and context are the bundle's;
    BenchMismatchError otherwise."""
    from ner_export.finetune import checkpoint_casing, checkpoint_context

    checkpoint_labels = tuple(config.id2label[i] for i in range(len(config.id2label)))
    if checkpoint_labels != manifest.labels:
        raise BenchMismatchError(
            f"{checkpoint} has labels {list(checkpoint_labels)} but the bundle {bundle} has {list(manifest.labels)}; "
            + _SAME_MODEL_ADVICE
        )
    context = checkpoint_context(config)
    casing = checkpoint_casing(config)
    if casing != manifest.casing:
        raise BenchMismatchError(
            f"{checkpoint} was trained {'with' if casing else 'without'} casing but the bundle {bundle} "
            f"says casing={manifest.casing}; " + _SAME_MODEL_ADVICE
        )
    if context[0] != manifest.context:
        raise BenchMismatchError(
            f"{checkpoint} was trained with context {context[0]!r} but the bundle {bundle} says "
            f"{manifest.context!r}; " + _SAME_MODEL_ADVICE
        )
    return context


def _pipeline_system(
    name: str,
    bundle: Path,
    checkpoint: Path,
    manifest: BundleManifest,
    model: Any,
    tokenizer: Any,
    batch_size: int,
    context: tuple[str, int],
) -> System | str:
    """`pytorch` (the checkpoint) or `optimum_int8` (the bundle's int8 graph through Optimum), or why not."""
    if name == "pytorch":
        weights = [p for p in (checkpoint / "model.safetensors", checkpoint / "pytorch_model.bin") if p.is_file()]
        return PipelineSystem("pytorch", model, tokenizer, weights, batch_size, context)
    from ner_export.finetune import load_config

    try:
        from optimum.onnxruntime import ORTModelForTokenClassification
    except ImportError:
        return "Optimum with ONNX Runtime is not installed (pip install 'ner-export[export]')"
    graph = manifest.graph_for("cpu", "int8").file
    ort_model = ORTModelForTokenClassification.from_pretrained(
        bundle, config=load_config(bundle), file_name=graph, local_files_only=True
    )  # the config resolved: a casing bundle's config.json is marked so that stock loaders refuse it
    return PipelineSystem(name, ort_model, tokenizer, [bundle / graph], batch_size, context)


def _runtime_system(
    name: str, bundle: Path, manifest: BundleManifest, batch_size: int, workdir: Path
) -> RuntimeSystem | str:
    """A `runtime_*` system on the bundle's graph it names, or why the bundle or this machine lacks it."""
    if name == "runtime_fp32":
        if not _has_cpu_fp32_graph(manifest):
            return "the bundle has no fp32 graph (exported with --no-fp32)"
        return RuntimeSystem(name, bundle, "fp32", batch_size)
    if name == "runtime_int8_dynamic":
        if not _has_cpu_fp32_graph(manifest):
            return "the bundle has no fp32 graph to quantize dynamically (exported with --no-fp32)"
        return RuntimeSystem(name, _dynamic_int8_bundle(bundle, workdir), "int8", batch_size)
    if name == "runtime_int8_openvino":
        why = missing_openvino_backend(manifest)
        if why:
            return why
        return RuntimeSystem(name, bundle, "int8", batch_size, backend="openvino")
    return RuntimeSystem(name, bundle, "int8", batch_size)


def _bare_system(
    name: str,
    bundle: Path,
    checkpoint: Path,
    manifest: BundleManifest,
    texts: list[str],
    batch_size: int,
    workdir: Path,
) -> BareSystem | str:
    """`session_int8` or a peer engine fed pre-tokenized `texts`, or why the peer cannot run here."""
    if name == "session_int8":
        return SessionSystem(bundle, texts, batch_size)
    # the peers (`benchmarks.peers.PEERS`): their packages are optional
    why = missing_peer(name) or (None if _has_cpu_fp32_graph(manifest) else "the bundle has no fp32 graph")
    if why:
        return why
    if name == "openvino_int8":
        return OpenVinoPeerSystem(bundle, checkpoint, texts, batch_size)
    return CTranslate2PeerSystem(bundle, checkpoint, texts, batch_size, workdir)


def _dynamic_int8_bundle(bundle: Path, workdir: Path) -> Path:
    """A copy of `bundle` whose int8 graph keeps per-batch activation scales (its settings otherwise)."""
    import shutil
    from dataclasses import replace

    from ner_export.export import Int8Config, quantize_graph
    from ner_export.runtime.manifest import GraphSpec, sha256_file

    manifest = BundleManifest.read(bundle)
    fp32 = manifest.graph_for("cpu", "fp32")
    record = manifest.graph_for("cpu", "int8").quantization
    config = Int8Config(
        name="dynamic",
        per_channel=bool(record.get("per_channel", True)),
        reduce_range=bool(record.get("reduce_range", False)),
        activations="dynamic",
        embeddings=str(record.get("embeddings", "per-row")),
        nodes_to_exclude=tuple(record.get("nodes_to_exclude", ())),
    )
    out = workdir / "dynamic-bundle"
    out.mkdir(parents=True)
    for name in (manifest.tokenizer_file, fp32.file, "config.json"):
        if (bundle / name).is_file():
            shutil.copyfile(bundle / name, out / name)
    quantization = quantize_graph(bundle / fp32.file, out / "model_int8.onnx", config)
    files = {name: sha256_file(out / name) for name in sorted(p.name for p in out.iterdir())}
    graphs = (GraphSpec("model_int8.onnx", "cpu", "int8", quantization, batch_invariant=False), fp32)
    replace(manifest, graphs=graphs, files=files).write(out)
    return out


def missing_openvino_backend(manifest: BundleManifest) -> str | None:
    """Why `runtime_int8_openvino` cannot run on this bundle here, or None."""
    import importlib.util

    if not any(g.backend == "openvino" for g in manifest.graphs):
        recorded = manifest.validation.get("openvino", {})
        why = f": {recorded['reason']}" if isinstance(recorded, dict) and recorded.get("reason") else ""
        return f"the bundle has no OpenVINO graph{why} (export with ner-export[openvino] installed)"
    if importlib.util.find_spec("openvino") is None:
        return "the Python package 'openvino' is not installed (pip install 'ner-export[openvino]')"
    return None


def _has_cpu_fp32_graph(manifest: BundleManifest) -> bool:
    return any(g.device == "cpu" and g.precision == "fp32" for g in manifest.graphs)
