"""The decoding output export appends to a graph: logits untouched, columns equal to numpy's decoding,
and the runtime's answers the same whether the graph carries it or not, alone and in batches."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from ner_export.runtime import NerModel
from ner_export.runtime.decoding import DECODED_COLUMNS, DECODED_OUTPUT, LabelSpace, same_kind_matrix, softmax
from ner_export.runtime.manifest import BundleManifest
from ner_export.runtime.session import batch_inputs, create_session

TEXTS = [
    "John Smith works for Acme Corp in New York .",
    "Maria Lopez of Reuters visited Paris and Berlin on Monday",
    "the bank of tokyo said it was in london",
    "(Reuters) B. Young -- U.S. officials met in Geneva",
    "a",
    "",
]


def _graphs(bundle: Path) -> list[Path]:
    files = dict.fromkeys(g.file for g in BundleManifest.read(bundle).graphs if g.backend == "onnxruntime")
    return [bundle / name for name in files]  # fp32 serves both devices from one file


def _without_decoding_outputs(graph: Path, out: Path) -> Path:
    """A copy of `graph` as it was before export appended the decoding output."""
    onnx = pytest.importorskip("onnx", reason="editing a graph needs onnx (the export extra)")
    model = onnx.load(str(graph))
    ours = [
        node for node in model.graph.node if node.output[0] == DECODED_OUTPUT or "ner_export_decoding" in node.output[0]
    ]
    kept = [node for node in model.graph.node if node not in ours]
    assert len(ours) >= 6
    del model.graph.node[:]
    model.graph.node.extend(kept)
    outputs = [o for o in model.graph.output if o.name != DECODED_OUTPUT]
    del model.graph.output[:]
    model.graph.output.extend(outputs)
    initializers = [i for i in model.graph.initializer if "ner_export_decoding" not in i.name]
    del model.graph.initializer[:]
    model.graph.initializer.extend(initializers)
    onnx.save(model, str(out))
    return out


def test_every_onnxruntime_graph_of_a_bundle_carries_them(tiny_bundle: Path) -> None:
    graphs = _graphs(tiny_bundle)
    assert len(graphs) >= 2  # int8 and fp32
    for graph in graphs:
        names = [o.name for o in create_session(graph).get_outputs()]
        assert names == ["logits", DECODED_OUTPUT], graph.name


def test_they_equal_numpy_decoding_and_leave_the_logits_alone(tiny_bundle: Path, tmp_path: Path) -> None:
    labels = BundleManifest.read(tiny_bundle).labels
    same_kind = same_kind_matrix(LabelSpace.from_labels(labels))
    rows = [[7, 8, 9, 10, 11, 12], [13, 14], [15, 16, 17, 18]]  # padded: rows of different widths
    feeds = batch_inputs(rows, pad_id=0, prefix=[1], suffix=[2])
    for graph in _graphs(tiny_bundle):
        plain = create_session(_without_decoding_outputs(graph, tmp_path / graph.name))
        assert [o.name for o in plain.get_outputs()] == ["logits"]
        (before,) = plain.run(None, feeds)
        logits, decoded = create_session(graph).run(None, feeds)
        np.testing.assert_array_equal(logits, before)  # bit for bit: the gate's measurement still holds
        n = len(labels)
        assert decoded.shape == (*logits.shape[:2], n + len(DECODED_COLUMNS))
        np.testing.assert_array_equal(decoded[..., :n], logits)
        label_id, label_chance, kind_chance = (decoded[..., n + k] for k in range(len(DECODED_COLUMNS)))
        probabilities = softmax(logits)
        chosen = logits.argmax(axis=-1)
        np.testing.assert_array_equal(label_id, chosen)
        np.testing.assert_allclose(label_chance, probabilities.max(axis=-1), rtol=0, atol=1e-6)
        kind = np.take_along_axis(probabilities @ same_kind, chosen[..., None], axis=-1)[..., 0]
        np.testing.assert_allclose(kind_chance, kind, rtol=0, atol=1e-6)


@pytest.mark.parametrize("decoding", ["constrained", "argmax"])
def test_a_bundle_without_them_answers_the_same(tiny_bundle: Path, tmp_path: Path, decoding: str) -> None:
    """Older bundles (and graphs where export could not add them) decode the logits in numpy instead."""
    older = tmp_path / "older"
    shutil.copytree(tiny_bundle, older)
    for graph in _graphs(older):
        _without_decoding_outputs(graph, graph)
    for precision in ("int8", "fp32"):
        current = NerModel.load(tiny_bundle, precision=precision, decoding=decoding)
        plain = NerModel.load(older, precision=precision, decoding=decoding, verify=False)
        assert current._runner.has_decoding_columns and not plain._runner.has_decoding_columns
        found = 0
        batched = current.predict(TEXTS + [" ".join(TEXTS) * 8], batch_size=4)  # a long text: windows
        for text, together in zip(TEXTS, batched, strict=False):
            a, b = current(text), plain(text)
            assert [(e.label, e.start, e.end, e.text) for e in a] == [(e.label, e.start, e.end, e.text) for e in b]
            np.testing.assert_allclose([e.score for e in a], [e.score for e in b], rtol=0, atol=1e-6)
            assert together == a  # scores bit for bit: every path reads the same decoding columns
            found += len(a)
        assert found > 3


def test_only_float32_logits_get_them_and_only_once(tmp_path: Path) -> None:
    onnx = pytest.importorskip("onnx", reason="building a graph needs onnx (the export extra)")
    from onnx import TensorProto, helper

    from ner_export.export.decoding_outputs import add_decoding_outputs

    labels = ["O", "B-PER", "I-PER"]
    for elem_type, expected in ((TensorProto.FLOAT16, False), (TensorProto.FLOAT, True)):
        graph = helper.make_graph(
            [helper.make_node("Identity", ["x"], ["logits"])],
            "g",
            [helper.make_tensor_value_info("x", elem_type, ["b", "s", 3])],
            [helper.make_tensor_value_info("logits", elem_type, ["b", "s", 3])],
        )
        path = tmp_path / f"{elem_type}.onnx"
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
        assert add_decoding_outputs(path, labels) is expected
        assert add_decoding_outputs(path, labels) is False  # never twice
        outputs = [o.name for o in onnx.load(str(path)).graph.output]
        assert outputs == (["logits", DECODED_OUTPUT] if expected else ["logits"])


def test_requantizing_a_finished_graph_leaves_the_decoding_float(tiny_bundle: Path, tmp_path: Path) -> None:
    """The bench's dynamic row and the scheme comparison quantize a bundle's finished fp32 graph: its
    decoding nodes (the type-sum MatMul above all) must stay float, so their scores stay exact."""
    onnx = pytest.importorskip("onnx", reason="reading a graph needs onnx (the export extra)")
    pytest.importorskip("onnxruntime.quantization", reason="quantizing needs onnxruntime's quantization tools")
    from ner_export.export import Int8Config, quantize_graph
    from ner_export.export.decoding_outputs import NODE_PREFIX, decoding_nodes

    manifest = BundleManifest.read(tiny_bundle)
    fp32 = tiny_bundle / manifest.graph_for("cpu", "fp32").file
    names = decoding_nodes(fp32)
    assert f"{NODE_PREFIX}kind_probabilities" in names and len(names) >= 6
    out = tmp_path / "dynamic.onnx"
    record = quantize_graph(fp32, out, Int8Config(name="dynamic", activations="dynamic"))
    assert record["method"] == "dynamic"
    ops = {node.name: node.op_type for node in onnx.load(str(out)).graph.node}
    assert {name: ops.get(name) for name in names if "kind_probabilities" in name} == {
        f"{NODE_PREFIX}kind_probabilities": "MatMul"
    }
    session = create_session(out)
    feeds = batch_inputs([[5, 6, 7, 8]], prefix=[2], suffix=[3])
    logits, decoded = session.run(
        ["logits", DECODED_OUTPUT], {k: v for k, v in feeds.items() if k in {i.name for i in session.get_inputs()}}
    )
    probabilities = softmax(logits)
    kinds = probabilities @ same_kind_matrix(LabelSpace.from_labels(manifest.labels))
    ids = logits.argmax(-1)[..., None]
    np.testing.assert_allclose(decoded[..., -1:], np.take_along_axis(kinds, ids, -1), rtol=0, atol=1e-6)
