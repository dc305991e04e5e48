"""`benchmarks.compare_static` on the tiny model: static QDQ graphs are built, loaded and tabled."""

from __future__ import annotations

from pathlib import Path

from ner_export.benchmarks.compare_static import compare, quantize_static_variants
from ner_export.runtime.conll import read_conll


def test_static_graph_quantizes_matmul_activations(tiny_bundle: Path, conll_file: Path, tmp_path: Path) -> None:
    import onnx

    texts = [" ".join(s.words) for s in read_conll(conll_file)]
    graphs = quantize_static_variants(tiny_bundle, texts, tmp_path, ("minmax",))
    assert list(graphs) == [
        "static QDQ minmax MatMuls, rest fp32",
        "static QDQ minmax MatMuls, rest dynamic as the bundle",
    ]
    nodes = onnx.load(str(graphs["static QDQ minmax MatMuls, rest fp32"][0])).graph.node
    assert sum(n.op_type == "QuantizeLinear" for n in nodes) == sum(n.op_type == "MatMul" for n in nodes) > 0
    # only MatMuls read dequantized activations; layer norms and the rest keep the float tensor
    dequantized = {n.output[0] for n in nodes if n.op_type == "DequantizeLinear"}
    assert all(n.op_type == "MatMul" for n in nodes for i in n.input if i in dequantized)


def test_table_has_every_variant(tiny_bundle: Path, conll_file: Path) -> None:
    table = compare(
        str(tiny_bundle),
        str(conll_file),
        str(conll_file),
        calibration_sentences=4,
        rounds=1,
        latency_sentences=4,
        cold_runs=1,
        command="cmd",
    )
    assert table.startswith("Command: `cmd`")
    rows = [
        line.split(" | ") for line in table.splitlines() if line.startswith("| ") and not line.startswith("| variant")
    ]
    names = [row[0].removeprefix("| ") for row in rows]
    assert names[:5] == [
        "dynamic int8 (bundle), runtime defaults: arena on, mem pattern on",
        "dynamic, arena off",
        "dynamic, mem pattern off",
        "dynamic, arena off, mem pattern off",
        "dynamic, pre-optimized graph loaded with ORT_DISABLE_ALL",
    ]
    assert names[5:] == ["static QDQ minmax MatMuls, rest fp32"] + [
        f"static QDQ {m} MatMuls, rest dynamic as the bundle" for m in ("minmax", "percentile", "entropy")
    ]
    for row in rows:
        assert len(row) == 8 and "–" not in row, row  # every cell measured, fresh-process ones included
    # session options and a saved optimized graph change speed, never the output
    assert len({row[1] for row in rows[:5]}) == 1
    assert "Pre-optimized graph: entities and scores identical to the bundle's" in table
