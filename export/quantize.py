"""int8 configurations, the fallback ladder the accuracy gate walks, and the quantizer.

One `Int8Config` says how the fp32 graph becomes int8; `quantize_graph` carries it out in three
steps, each an ordinary ONNX graph the next one reads:

1. ONNX Runtime's dynamic quantizer turns the MatMuls and the fused Attention into integer kernels
   with int8 weights, per output channel by default (one outlier weight then stretches only its own
   column's scale).
2. Large embedding tables become per-row int8 (`export.embedding_rows`), or stay fp32; small tables
   (positions, token types) always stay fp32: a few hundred rows whose fine differences the model reads.
3. With `activations="static"` (the default), every activation scale the dynamic graph would compute
   per batch is replaced by one calibrated on the validation sentences (`export.calibration`). The
   graph then keeps the dynamic graph's kernels and speed, and a text's result no longer depends on
   which texts share its batch (`batch_invariant` in the manifest). `activations="dynamic"` keeps
   per-batch scales, for comparison.

Quantization is nearly free on most checkpoints and ruinous on a few, so the gate (`export.gate`)
measures each config and, when entity F1 drops too far, tries the next, safer rung of
`default_int8_ladder`: the requested config; the *sensitive* nodes kept in fp32 (the classifier and
the last layer's two output projections, whose errors reach the logits unsmoothed, a handful of
small matrices); per-row embeddings if the request had per-tensor ones; fp32 embeddings (the graph
grows by most of the word table); the fused attention input projections in fp32 too (a quarter of
each layer's weights, slower: the last resort). Measurements of these choices are in
benchmarks/PERFORMANCE.md.

Sensitive nodes are found by the graph's structure, not their names, so the search works for any
number of layers and any exporter's naming: walk back from the logits to the classifier's weight
MatMul, from its input to the final layer norm, and from each (skip) layer norm to the weight MatMul
feeding it (the FFN output projection), then through its residual input to the previous norm and its
projection (the attention output projection). A graph of another shape yields fewer (or no) names.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ner_export.runtime.manifest import INT8_ACTIVATIONS, INT8_EMBEDDINGS

from .calibration import CALIBRATION_METHODS, calibrate_activations, freeze_activation_scales
from .decoding_outputs import decoding_nodes
from .embedding_rows import LARGE_TABLE_BYTES, quantize_table_rows

__all__ = [
    "ACTIVATION_SCHEMES",
    "EMBEDDING_SCHEMES",
    "Int8Config",
    "default_int8_ladder",
    "quantize_graph",
    "row_quantized_tables",
    "sensitive_nodes",
    "small_embedding_tables",
]

ACTIVATION_SCHEMES = INT8_ACTIVATIONS
EMBEDDING_SCHEMES = INT8_EMBEDDINGS
_LAYER_NORM_OPS = {
    "SkipLayerNormalization",
    "LayerNormalization",
    "SkipSimplifiedLayerNormalization",
    "SimplifiedLayerNormalization",
}
_PASS_THROUGH = {"Add", "Identity", "Cast", "Dropout", "Reshape"}  # ops between a projection and its consumer
_MAX_HOPS = 3  # pass-through ops crossed at most; a pre-LN residual stream is a long Add chain, not to be followed


@dataclass(frozen=True)
class Int8Config:
    """One way to quantize the fp32 graph to int8; one rung of the accuracy gate's ladder.

    `activations`: "static" (calibrated scales, batch-invariant) or "dynamic" (per-batch scales).
    `embeddings`: the large embedding tables "per-row" int8, "per-tensor" int8 (ONNX Runtime's
    Gather quantization) or "fp32". `calibration`: "minmax" or "percentile", for static scales.
    `exclude_sensitive` keeps the nodes `sensitive_nodes` finds in fp32; `resolve` turns it into
    names (added to `nodes_to_exclude`) for a given graph, and the manifest records them.
    """

    name: str = "requested"
    per_channel: bool = True
    reduce_range: bool = False
    activations: str = "static"
    embeddings: str = "per-row"
    calibration: str = "minmax"
    quantize_attention: bool = True
    nodes_to_exclude: tuple[str, ...] = ()
    exclude_sensitive: bool = False

    def __post_init__(self) -> None:
        if self.activations not in ACTIVATION_SCHEMES:
            raise ValueError(f"activations={self.activations!r} is not one of {', '.join(ACTIVATION_SCHEMES)}")
        if self.embeddings not in EMBEDDING_SCHEMES:
            raise ValueError(f"embeddings={self.embeddings!r} is not one of {', '.join(EMBEDDING_SCHEMES)}")
        if self.calibration not in CALIBRATION_METHODS:
            raise ValueError(f"calibration={self.calibration!r} is not one of {', '.join(CALIBRATION_METHODS)}")

    @property
    def batch_invariant(self) -> bool:
        """Whether the graph this config makes gives each text the same result in any batch."""
        return self.activations == "static"

    def resolve(self, fp32_graph: Path) -> Int8Config:
        """This config with the sensitive nodes of `fp32_graph` named in `nodes_to_exclude`."""
        if not self.exclude_sensitive:
            return self
        names = dict.fromkeys((*self.nodes_to_exclude, *sensitive_nodes(fp32_graph)))
        return replace(self, nodes_to_exclude=tuple(names))

    def op_types(self) -> list[str]:
        """The op types ONNX Runtime's dynamic quantizer is asked to quantize (step 1)."""
        ops = ["MatMul"] + (["Attention"] if self.quantize_attention else [])
        return ops + (["Gather"] if self.embeddings == "per-tensor" else [])

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "per_channel": self.per_channel,
            "reduce_range": self.reduce_range,
            "activations": self.activations,
            "embeddings": self.embeddings,
            "calibration": self.calibration if self.activations == "static" else None,
            "quantize_attention": self.quantize_attention,
            "exclude_sensitive": self.exclude_sensitive,
            "nodes_to_exclude": list(self.nodes_to_exclude),
        }

    def _settings_but_name(self) -> tuple[Any, ...]:
        return tuple(v for k, v in self.to_dict().items() if k != "name")


def default_int8_ladder(requested: Int8Config) -> tuple[Int8Config, ...]:
    """The requested config, then the safer ones (module docstring); rungs equal to an earlier one are dropped."""
    safer = replace(requested, name="sensitive-fp32", per_channel=True, exclude_sensitive=True)
    rows = replace(safer, name="sensitive-fp32+embeddings-per-row", embeddings="per-row")
    fp32_tables = replace(safer, name="sensitive+embeddings-fp32", embeddings="fp32")
    last = replace(fp32_tables, name="attention+embeddings-fp32", quantize_attention=False)
    candidates = [requested, safer]
    if requested.embeddings == "per-tensor":
        candidates.append(rows)
    candidates += [fp32_tables, last]
    ladder: list[Int8Config] = []
    for rung in candidates:
        if all(rung._settings_but_name() != kept._settings_but_name() for kept in ladder):
            ladder.append(rung)
    return tuple(ladder)


def sensitive_nodes(fp32_graph: Path) -> tuple[str, ...]:
    """Names of the classifier's MatMul and bias Add and of the last layer's two output projections."""
    import onnx

    graph = onnx.load(str(fp32_graph), load_external_data=False).graph
    weights = {t.name for t in graph.initializer}
    producer = {out: node for node in graph.node for out in node.output}

    def is_projection(node: Any) -> bool:
        return node.op_type in ("MatMul", "Gemm") and len(node.input) > 1 and node.input[1] in weights

    def upstream(names: Sequence[str], wanted: Any) -> tuple[list[Any], list[Any]]:
        """Nodes satisfying `wanted` reached from `names` through pass-through ops, and the ops crossed."""
        found: list[Any] = []
        crossed: list[Any] = []
        seen: set[int] = set()
        frontier = [(name, 0) for name in names]
        while frontier:
            name, hops = frontier.pop(0)
            node = producer.get(name)
            if node is None or id(node) in seen:
                continue
            seen.add(id(node))
            if wanted(node):
                found.append(node)
            elif node.op_type in _PASS_THROUGH and hops < _MAX_HOPS:
                crossed.append(node)
                frontier.extend((i, hops + 1) for i in node.input if i and i not in weights)
        return found, crossed

    if not graph.output:
        return ()
    heads, head_ops = upstream([graph.output[0].name], is_projection)
    if len(heads) != 1:
        return ()
    names = [heads[0].name] + [n.name for n in head_ops if n.op_type == "Add"]
    norms, _ = upstream([heads[0].input[0]], lambda n: n.op_type in _LAYER_NORM_OPS)
    for _ in range(2):  # the FFN output projection, then the attention output projection
        if len(norms) != 1:
            break
        norm = norms[0]
        data_inputs = list(norm.input[:2]) if norm.op_type.startswith("Skip") else [norm.input[0]]
        found, _ = upstream(data_inputs, lambda n: is_projection(n) or n.op_type in _LAYER_NORM_OPS)
        projections = [n for n in found if is_projection(n)]
        if len(projections) != 1:
            break
        names.append(projections[0].name)
        norms = [n for n in found if n.op_type in _LAYER_NORM_OPS]
    return tuple(name for name in names if name)


def _embedding_gathers(fp32_graph: Path) -> list[tuple[str, str, bool]]:
    """(Gather node, table, is large) of every Gather of a 2-D fp32 table that is not indexed by the
    token ids (`input_ids`, else the first input); large means at least `LARGE_TABLE_BYTES`."""
    import onnx

    graph = onnx.load(str(fp32_graph), load_external_data=False).graph
    sizes = {t.name: 4 * t.dims[0] * t.dims[1] for t in graph.initializer if len(t.dims) == 2}
    inputs = [i.name for i in graph.input]
    token_ids = "input_ids" if "input_ids" in inputs else (inputs[0] if inputs else "")
    return [
        (n.name, n.input[0], n.input[1] != token_ids and sizes[n.input[0]] < LARGE_TABLE_BYTES)
        for n in graph.node
        if n.op_type == "Gather" and n.input[0] in sizes and n.name
    ]


def small_embedding_tables(fp32_graph: Path) -> tuple[str, ...]:
    """Names of the Gather nodes that read a small table other than the word table (positions, token
    types): they stay fp32 on every rung."""
    return tuple(node for node, _, small in _embedding_gathers(fp32_graph) if small)


def row_quantized_tables(fp32_graph: Path) -> tuple[str, ...]:
    """Tables stored per row when embeddings are "per-row": the word table (the one the token ids
    index) and any other table of at least `LARGE_TABLE_BYTES`."""
    return tuple(dict.fromkeys(table for _, table, small in _embedding_gathers(fp32_graph) if not small))


def quantize_graph(
    fp32_graph: Path,
    dest: Path,
    config: Int8Config,
    calibration: Iterable[Mapping[str, np.ndarray]] | None = None,
) -> dict[str, Any]:
    """Quantize `fp32_graph` to `dest` as `config` (resolved) says; returns what the manifest records.

    `calibration` is the graph inputs to calibrate static activation scales on (required when
    `config.activations == "static"`; `NerModel.graph_inputs` gives them for a set of sentences).
    """
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    if config.activations == "static" and calibration is None:
        raise ValueError("static activation scales need calibration inputs")
    fp32_tables = small_embedding_tables(fp32_graph)
    decoding = decoding_nodes(fp32_graph)  # a finished graph's decoding stays float, its scores exact
    with tempfile.TemporaryDirectory(prefix="ner-export-int8-", dir=Path(dest).parent) as work:
        stage = Path(work) / "dynamic.onnx"
        quantize_dynamic(
            str(fp32_graph),
            str(stage),
            op_types_to_quantize=config.op_types(),
            per_channel=config.per_channel,
            reduce_range=config.reduce_range,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=[*config.nodes_to_exclude, *fp32_tables, *decoding],
            # the fused contrib ops defeat ONNX shape inference; their outputs are float
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
        row_tables: list[str] = []
        if config.embeddings == "per-row":
            rows = Path(work) / "rows.onnx"
            row_tables = quantize_table_rows(stage, rows, row_quantized_tables(fp32_graph))
            stage = rows
        record: dict[str, Any] = {
            "method": config.activations,
            "batch_invariant": config.batch_invariant,
            "weight_type": "int8",
            "activation_type": "uint8",
            "config": config.name,
            "per_channel": config.per_channel,
            "reduce_range": config.reduce_range,
            "embeddings": config.embeddings,
            "per_row_tables": row_tables,
            "fp32_embedding_tables": list(fp32_tables),
            "op_types": config.op_types(),
            "nodes_to_exclude": list(config.nodes_to_exclude),
        }
        if config.activations == "static":
            assert calibration is not None
            ranges = calibrate_activations(stage, calibration, config.calibration)
            record["activation_scales"] = freeze_activation_scales(stage, dest, ranges)
            record.update(ranges.to_dict())
        else:
            shutil.copyfile(stage, dest)
    return record
