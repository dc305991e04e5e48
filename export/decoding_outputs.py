"""The decoding's numeric steps appended to a graph as a second output, for the runtime's default decoding.

The graph also returns `decoded` (`DECODED_OUTPUT`): per token, the logits followed by three columns
(`DECODED_COLUMNS`): the argmax label id, that label's probability, and the probability of the
label's entity type, `B-X + I-X` (the score constrained decoding reports; the label's own probability
again for label sets that are not IOB2). The logits stay the first output, untouched, so everything
that reads them (validation, the gate, word tags, peers) is unchanged.

Why in the graph: a sentence's decoding is a dozen tiny numpy calls, and right after a graph run each
costs several times its tight-loop time (cold caches), while the same steps as graph nodes run inside
the run at the cost of a few small kernels. One output with the logits in front, rather than three
small ones, lets the runtime cut windows and batches exactly as it cuts logits, so every path (a lone
text, batches, long texts, streams) reads the same numbers and a text's scores stay bit for bit the
same in any batch. Where IOB2 forbids the argmax sequence the runtime still searches over the logits.

Trade-offs: the nodes go into the finished graphs, after fusion, quantization and the accuracy gate,
so no quantizer or optimizer ever sees them (`quantize_graph`, given a bundle's finished fp32 graph
as the bench and the scheme comparison do, leaves them out by name: `decoding_nodes`); only float32
logits get them (an fp16 graph's softmax would round scores to 1e-3 of the fp32 ones). Bundles
without this output decode in numpy as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ner_export.runtime.decoding import DECODED_OUTPUT, LabelSpace, same_kind_matrix
from ner_export.runtime.labels import is_iob_label_set

__all__ = ["NODE_PREFIX", "add_decoding_outputs", "decoding_nodes"]

NODE_PREFIX = "ner_export_decoding_"
"""How the decoding's nodes, tensors and table are named, so tools that rework a finished graph find them."""


def add_decoding_outputs(graph: Path, labels: Sequence[str]) -> bool:
    """Append the `decoded` output to the ONNX file `graph` in place; False (file untouched) when its
    logits are not float32 or it already has it."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    model = onnx.load(str(graph))
    logits = model.graph.output[0]
    if logits.type.tensor_type.elem_type != TensorProto.FLOAT or any(
        output.name == DECODED_OUTPUT for output in model.graph.output
    ):
        return False
    name = f"{NODE_PREFIX}{{}}".format
    nodes = [
        helper.make_node("ArgMax", [logits.name], [name("ids")], name("ids"), axis=-1, keepdims=1),
        helper.make_node("Cast", [name("ids")], [name("label_id")], name("label_id"), to=TensorProto.FLOAT),
        helper.make_node("Softmax", [logits.name], [name("probabilities")], name("probabilities"), axis=-1),
        helper.make_node(
            "GatherElements",
            [name("probabilities"), name("ids")],
            [name("label_chance")],
            name("label_chance"),
            axis=-1,
        ),
    ]
    if is_iob_label_set(labels):
        matrix = same_kind_matrix(LabelSpace.from_labels(labels)).astype(np.float32)
        model.graph.initializer.append(numpy_helper.from_array(matrix, name("same_kind")))
        nodes += [
            helper.make_node(
                "MatMul",
                [name("probabilities"), name("same_kind")],
                [name("kind_probabilities")],
                name("kind_probabilities"),
            ),
            helper.make_node(
                "GatherElements",
                [name("kind_probabilities"), name("ids")],
                [name("kind_chance")],
                name("kind_chance"),
                axis=-1,
            ),
        ]
    else:
        nodes.append(helper.make_node("Identity", [name("label_chance")], [name("kind_chance")], name("kind_chance")))
    columns = [logits.name, name("label_id"), name("label_chance"), name("kind_chance")]
    nodes.append(helper.make_node("Concat", columns, [DECODED_OUTPUT], name("concat"), axis=-1))
    model.graph.node.extend(nodes)
    model.graph.output.append(
        helper.make_tensor_value_info(DECODED_OUTPUT, TensorProto.FLOAT, ["batch", "sequence", len(labels) + 3])
    )
    onnx.checker.check_model(model)
    onnx.save(model, str(graph))
    return True


def decoding_nodes(graph: Path) -> tuple[str, ...]:
    """Names of the decoding nodes in the ONNX file `graph` (none for a graph without them, or one
    exported before they were named)."""
    import onnx

    nodes = onnx.load(str(graph), load_external_data=False).graph.node
    return tuple(node.name for node in nodes if node.name.startswith(NODE_PREFIX))
