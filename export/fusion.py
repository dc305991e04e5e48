"""ONNX Runtime's graph transformers applied to the exported graph: fusions, fp16, the opset read back.

ONNX Runtime's transformer optimizer fuses attention, skip-layer-norm and bias-GELU into single
kernels, which the int8 quantizer keeps. Only its Python fusions run (`opt_level=0`), so the saved
graph stays portable across CPUs.

The embedding layer-norm is deliberately left unfused. Fused, its three tables (words, positions,
token types) can only be quantized together with one scale each, and the small position and
token-type tables lose the fine differences the model reads (benchmarks/PERFORMANCE.md). Unfused,
each table is its own Gather: the word table is stored per row, the small ones stay fp32.

Every node gets a name, since the int8 gate excludes nodes from quantization by name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["OPTIMIZER_MODEL_TYPES", "convert_to_fp16", "fuse_with_onnxruntime", "graph_opset"]

# ONNX Runtime's transformer optimizer knows these encoder layouts.
OPTIMIZER_MODEL_TYPES = {
    "bert": "bert",
    "roberta": "bert",
    "xlm-roberta": "bert",
    "electra": "bert",
    "camembert": "bert",
    "distilbert": "bert",
}


def fuse_with_onnxruntime(raw: Path, dest: Path, config: dict[str, Any]) -> dict[str, int]:
    """Fuse the exported graph `raw` into `dest` for the model `config` (its config.json) describes;
    returns how many of each fused operator it holds (the manifest's `source["fusions"]`)."""
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    model_type = OPTIMIZER_MODEL_TYPES.get(config.get("model_type", ""), "bert")
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


def convert_to_fp16(fp32: Path, dest: Path) -> None:
    """`fp32` with float16 weights and float32 inputs and outputs, saved as `dest` (the CUDA graph)."""
    import onnx
    from onnxruntime.transformers.onnx_model import OnnxModel

    model = OnnxModel(onnx.load(str(fp32)))
    model.convert_float_to_float16(keep_io_types=True)
    model.save_model_to_file(str(dest))


def graph_opset(graph: Path) -> int:
    """The default-domain opset `graph` was exported with (0 when it names none)."""
    import onnx

    imports = onnx.load(str(graph), load_external_data=False).opset_import
    return int(next((o.version for o in imports if o.domain in ("", "ai.onnx")), 0))
