"""The int8 graph rewrites on their own: per-row embedding tables and calibrated activation scales."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ner_export.runtime import NerModel


def _table() -> np.ndarray:
    """Rows whose norms span four orders of magnitude, as frequent and rare tokens' rows do."""
    rng = np.random.default_rng(0)
    norms = np.logspace(-3, 1, 400)
    rows = rng.standard_normal((400, 64)).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True) * norms[:, None].astype(np.float32)


def test_per_row_scales_keep_small_rows_that_one_scale_destroys() -> None:
    from ner_export.export.embedding_rows import quantize_rows, row_errors

    table = _table()
    rows, scale = quantize_rows(table)
    per_row = row_errors(table, rows.astype(np.float32) * scale)
    one_scale = np.abs(table).max() / 127.0  # one symmetric int8 scale for the whole table
    per_tensor = row_errors(table, np.clip(np.round(table / one_scale), -127, 127) * one_scale)
    small = np.arange(100)  # the 100 rows of smallest norm
    assert row_errors(table, np.clip(np.round(table / one_scale), -127, 127) * one_scale, small).mean > 0.9
    assert row_errors(table, rows.astype(np.float32) * scale, small).worst < 0.02
    assert per_row.worst < 0.02 and per_tensor.worst > 0.99 and per_row.mean < per_tensor.mean / 20


def _gather_graph(path: Path, table: np.ndarray) -> Path:
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("Gather", ["table", "ids"], ["rows"], name="lookup")],
        "lookup",
        [helper.make_tensor_value_info("ids", TensorProto.INT64, ["batch", "sequence"])],
        [helper.make_tensor_value_info("rows", TensorProto.FLOAT, ["batch", "sequence", table.shape[1]])],
        [numpy_helper.from_array(table, "table")],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_the_rewritten_graph_gathers_the_same_rows_within_int8_precision(tmp_path: Path) -> None:
    import onnxruntime as ort

    from ner_export.export.embedding_rows import quantize_table_rows

    table = _table()
    fp32 = _gather_graph(tmp_path / "fp32.onnx", table)
    assert quantize_table_rows(fp32, tmp_path / "rows.onnx", ["table"]) == ["table"]
    ids = np.array([[0, 1, 399, 5], [250, 3, 3, 0]], dtype=np.int64)
    expected = ort.InferenceSession(str(fp32)).run(None, {"ids": ids})[0]
    got = ort.InferenceSession(str(tmp_path / "rows.onnx")).run(None, {"ids": ids})[0]
    # each row within half an int8 step of its own scale: |error| <= max|row| / 254
    bound = np.abs(table[ids]).max(axis=-1, keepdims=True) / 254 + 1e-7
    assert np.all(np.abs(got - expected) <= bound)
    assert (tmp_path / "rows.onnx").stat().st_size < fp32.stat().st_size / 3


def _activation_extremes(graph: Path, feeds: list[dict[str, np.ndarray]]) -> dict[str, tuple[float, float]]:
    """The least and greatest value of each dynamically quantized activation over `feeds`, read from the graph
    run with those activations as extra outputs."""
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(graph))
    names = sorted({node.input[0] for node in model.graph.node if node.op_type == "DynamicQuantizeLinear"})
    for name in names:
        model.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    runs = [session.run(names, dict(feed)) for feed in feeds]
    return {
        name: (min(float(run[i].min()) for run in runs), max(float(run[i].max()) for run in runs))
        for i, name in enumerate(names)
    }


def _assert_scales_cover_the_ranges(static: Path, ranges: dict[str, tuple[float, float]]) -> None:
    """Each frozen QuantizeLinear maps uint8 onto its activation's calibrated range widened to hold 0: zero
    is a whole step (the zero point), and both ends are reached within half a step."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(static)).graph
    constants = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for node in (n for n in graph.node if n.op_type == "QuantizeLinear"):
        scale, zero_point = float(constants[node.input[1]]), int(constants[node.input[2]])
        low, high = min(ranges[node.input[0]][0], 0.0), max(ranges[node.input[0]][1], 0.0)
        assert scale > 0 and 0 <= zero_point <= 255, node.name
        assert abs(-zero_point * scale - low) <= scale / 2 + 1e-6, node.name
        assert abs((255 - zero_point) * scale - high) <= scale / 2 + 1e-6, node.name


def test_calibrated_scales_replace_every_per_batch_scale(tiny_bundle: Path, tmp_path: Path) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from tokenizers import Tokenizer

    from ner_export.export.calibration import calibrate_activations, freeze_activation_scales

    dynamic = tmp_path / "dynamic.onnx"
    quantize_dynamic(
        str(tiny_bundle / "model.onnx"),
        str(dynamic),
        op_types_to_quantize=["MatMul", "Attention"],
        weight_type=QuantType.QInt8,
        extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
    )
    n_dynamic = sum(n.op_type == "DynamicQuantizeLinear" for n in onnx.load(str(dynamic)).graph.node)
    model = NerModel.load(tiny_bundle, precision="fp32")
    sentences = [["john", "smith", "lives", "in", "paris"], ["the", "bank"]]
    feeds = model.graph_inputs(sentences)
    assert [f["input_ids"].shape[0] for f in feeds] == [1, 1]  # one window per run ...
    assert all(f["attention_mask"].all() for f in feeds)  # ... so no padding enters the ranges
    tokenizer = Tokenizer.from_file(str(tiny_bundle / "tokenizer.json"))
    lengths = [len(tokenizer.encode(w, is_pretokenized=True, add_special_tokens=False).ids) + 2 for w in sentences]
    assert sorted(f["input_ids"].shape[1] for f in feeds) == sorted(lengths)  # each sentence with [CLS] [SEP]
    extremes = _activation_extremes(dynamic, feeds)
    for method in ("minmax", "percentile"):
        ranges = calibrate_activations(dynamic, feeds, method)
        assert len(ranges.ranges) == n_dynamic > 0 and ranges.runs == 2
        assert set(ranges.ranges) == set(extremes)
        for name, (low, high) in ranges.ranges.items():
            if method == "minmax":  # exactly what the activations reached
                assert (low, high) == pytest.approx(extremes[name], rel=1e-5, abs=1e-6), name
            else:  # the rare extremes clipped: inside what they reached
                assert extremes[name][0] <= low <= high <= extremes[name][1], name
        static = tmp_path / f"static-{method}.onnx"
        assert freeze_activation_scales(dynamic, static, ranges) == n_dynamic
        ops = [n.op_type for n in onnx.load(str(static)).graph.node]
        assert "DynamicQuantizeLinear" not in ops and ops.count("QuantizeLinear") == n_dynamic
        _assert_scales_cover_the_ranges(static, ranges.ranges)
    with pytest.raises(ValueError, match="calibration needs at least one input"):
        calibrate_activations(dynamic, [])
