"""int8 configurations, the fallback ladder the accuracy gate walks, and the quantizer call.

Dynamic int8 quantization is nearly free on most checkpoints and ruinous on a few: one outlier weight
in a column stretches that column's scale until its other weights round to zero. The exporter therefore
does not trust a single setting. It tries the requested one and measures it (`export.validate`); when
entity F1 drops too far it tries the next, safer rung:

1. the requested config (per-channel by default, the word-embedding table quantized, 7-bit weights on
   x86 without VNNI);
2. per-channel, with the *sensitive* nodes left in fp32: the classifier (its MatMul and bias Add) and the
   last encoder layer's two output projections (attention output dense and FFN output). Their errors
   reach the logits unsmoothed by later layers, and they are a handful of small matrices, so keeping
   them in fp32 costs little size and speed;
3. as 2, with the word-embedding table in fp32 as well (a small model's size grows by most of its
   embedding table, so this rung comes after 2);
4. as 3, with the fused attention input projections (query, key and value: a quarter of each layer's
   weights) in fp32 too. Measured on a CoNLL model trained with casing, where rungs 1-3 all lost about
   0.6 dev F1 points: attention in fp32 alone 0.45, with the embeddings 0.20. It costs speed, so it is
   the last resort before refusing.

On every rung the other embedding tables (positions, token types: any table not indexed by the
token ids) stay in fp32. They are under a megabyte, and with one per-tensor
scale each their rows lose the small differences the model reads: on a CoNLL model trained with
casing, quantizing them cost 0.17 of the 0.42 dev F1 points the all-int8 graph lost. This needs an
unfused embedding (`export.exporter`); a fused EmbedLayerNormalization is quantized whole or not at all.

Sensitive nodes are found by the graph's structure, not by their names, so the search works for any
number of layers and any exporter's naming: walk back from the logits to the classifier's weight
MatMul, from its input to the final layer norm, and from each (skip) layer norm to the weight MatMul
feeding it (the FFN output projection), then through its residual input to the previous norm and its
projection (the attention output projection). A graph that does not have that shape yields fewer (or
no) names; the rung then only differs from the first by per-channel scales and, on the last rung,
fp32 embeddings.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

__all__ = ["Int8Config", "default_int8_ladder", "quantize_graph", "sensitive_nodes", "small_embedding_tables"]

_NORMS = {"SkipLayerNormalization", "LayerNormalization", "SkipSimplifiedLayerNormalization", "SimplifiedLayerNormalization"}
_PASS_THROUGH = {"Add", "Identity", "Cast", "Dropout", "Reshape"}  # ops that sit between a projection and its consumer
_MAX_HOPS = 3  # pass-through ops crossed at most; a pre-LN residual stream is a long Add chain, which must not be followed


@dataclass(frozen=True)
class Int8Config:
    """One way to quantize the fp32 graph to int8; one rung of the accuracy gate's ladder.

    `exclude_sensitive` keeps the nodes `sensitive_nodes` finds in fp32; `resolve` turns it into names
    (added to `nodes_to_exclude`) for a given graph, and the manifest records the resolved names.
    """

    name: str = "requested"
    per_channel: bool = True
    reduce_range: bool = False
    quantize_embeddings: bool = True
    quantize_attention: bool = True
    nodes_to_exclude: tuple[str, ...] = ()
    exclude_sensitive: bool = False

    def resolve(self, fp32_graph: Path) -> Int8Config:
        """This config with the sensitive nodes of `fp32_graph` named in `nodes_to_exclude`."""
        if not self.exclude_sensitive:
            return self
        return replace(self, nodes_to_exclude=tuple(dict.fromkeys((*self.nodes_to_exclude, *sensitive_nodes(fp32_graph)))))

    def op_types(self) -> list[str]:
        return ["MatMul"] + (["Attention"] if self.quantize_attention else []) + (["Gather", "EmbedLayerNormalization"] if self.quantize_embeddings else [])

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "per_channel": self.per_channel,
            "reduce_range": self.reduce_range,
            "quantize_embeddings": self.quantize_embeddings,
            "quantize_attention": self.quantize_attention,
            "exclude_sensitive": self.exclude_sensitive,
            "nodes_to_exclude": list(self.nodes_to_exclude),
        }

    def _settings(self) -> tuple[Any, ...]:
        return (self.per_channel, self.reduce_range, self.quantize_embeddings, self.quantize_attention, self.nodes_to_exclude, self.exclude_sensitive)


def default_int8_ladder(requested: Int8Config) -> tuple[Int8Config, ...]:
    """The requested config, then the safer ones (module docstring); rungs equal to an earlier one are dropped."""
    safer = replace(requested, name="sensitive-fp32", per_channel=True, exclude_sensitive=True)
    safest = replace(safer, name="sensitive+embeddings-fp32", quantize_embeddings=False)
    last = replace(safest, name="attention+embeddings-fp32", quantize_attention=False)
    ladder: list[Int8Config] = []
    for rung in (requested, safer, safest, last):
        if all(rung._settings() != kept._settings() for kept in ladder):
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
    norms, _ = upstream([heads[0].input[0]], lambda n: n.op_type in _NORMS)
    for _ in range(2):  # the FFN output projection, then the attention output projection
        if len(norms) != 1:
            break
        norm = norms[0]
        data_inputs = list(norm.input[:2]) if norm.op_type.startswith("Skip") else [norm.input[0]]
        found, _ = upstream(data_inputs, lambda n: is_projection(n) or n.op_type in _NORMS)
        projections = [n for n in found if is_projection(n)]
        if len(projections) != 1:
            break
        names.append(projections[0].name)
        norms = [n for n in found if n.op_type in _NORMS]
    return tuple(name for name in names if name)


def small_embedding_tables(fp32_graph: Path) -> tuple[str, ...]:
    """Names of the Gather nodes that read an embedding table other than the word table.

    The word table is the one indexed by the token ids (`input_ids`, else the first input); every other Gather
    of a 2-D weight (positions, token types) is small and stays fp32.
    """
    import onnx

    graph = onnx.load(str(fp32_graph), load_external_data=False).graph
    tables = {t.name for t in graph.initializer if len(t.dims) == 2}
    inputs = [i.name for i in graph.input]
    token_ids = "input_ids" if "input_ids" in inputs else (inputs[0] if inputs else "")
    return tuple(n.name for n in graph.node if n.op_type == "Gather" and n.input[0] in tables and n.input[1] != token_ids and n.name)


def quantize_graph(fp32_graph: Path, dest: Path, config: Int8Config) -> dict[str, Any]:
    """Dynamically quantize `fp32_graph` to `dest` as `config` (resolved) says; what the manifest records."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    fp32_tables = small_embedding_tables(fp32_graph) if config.quantize_embeddings else ()

    quantize_dynamic(
        str(fp32_graph),
        str(dest),
        op_types_to_quantize=config.op_types(),
        per_channel=config.per_channel,
        reduce_range=config.reduce_range,
        weight_type=QuantType.QInt8,
        nodes_to_exclude=[*config.nodes_to_exclude, *fp32_tables],
        # the fused contrib ops defeat ONNX shape inference; their outputs are float
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )
    return {
        "method": "dynamic",
        "weight_type": "int8",
        "activation_type": "uint8",
        "config": config.name,
        "per_channel": config.per_channel,
        "reduce_range": config.reduce_range,
        "quantize_embeddings": config.quantize_embeddings,
        "op_types": config.op_types(),
        "nodes_to_exclude": list(config.nodes_to_exclude),
        "fp32_embedding_tables": list(fp32_tables),
    }
