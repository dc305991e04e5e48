"""Export: a valid, validated bundle, fused and quantized graphs, atomic writes."""

from __future__ import annotations

import collections
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from ner_export.runtime import BundleError, BundleManifest, NerExportError, NerModel
from ner_export.runtime.manifest import MANIFEST_NAME, sha256_file


def _op_counts(path: Path) -> collections.Counter:
    import onnx

    return collections.Counter(node.op_type for node in onnx.load(str(path)).graph.node)


def test_bundle_has_graphs_tokenizer_config_and_manifest(tiny_bundle: Path) -> None:
    manifest = BundleManifest.read(tiny_bundle)
    assert manifest.labels[0] == "O" and len(manifest.labels) == 9
    assert {(g.device, g.precision) for g in manifest.graphs} >= {("cpu", "int8"), ("cpu", "fp32")}
    for name, digest in manifest.files.items():
        assert sha256_file(tiny_bundle / name) == digest
    assert {"tokenizer.json", "config.json", "model.onnx", "model_int8.onnx"} <= set(manifest.files)
    assert manifest.opset > 0 and "onnxruntime" in manifest.versions
    quantization = manifest.graph_for("cpu", "int8").quantization
    assert quantization["per_channel"] is True and quantization["method"] == "dynamic"


def test_fp32_graph_is_fused_and_int8_graph_is_quantized(tiny_bundle: Path) -> None:
    fp32 = _op_counts(tiny_bundle / "model.onnx")
    assert fp32["Attention"] == 2 and fp32["SkipLayerNormalization"] >= 2 and fp32["EmbedLayerNormalization"] == 1
    assert fp32["BiasGelu"] + fp32["FastGelu"] + fp32["Gelu"] >= 2
    int8 = _op_counts(tiny_bundle / "model_int8.onnx")
    assert int8["QAttention"] == 2 and int8["MatMulInteger"] >= 4 and int8["QEmbedLayerNormalization"] == 1


def test_validation_is_recorded(tiny_bundle: Path) -> None:
    validation = json.loads((tiny_bundle / MANIFEST_NAME).read_text())["validation"]
    assert validation["fp32_logits_max_abs_diff"] <= validation["atol"]
    assert validation["fp32_word_agreement"] == 1.0
    assert 0.0 <= validation["int8_word_agreement"] <= 1.0
    assert validation["sentences"] == 4


def test_fp32_onnx_logits_match_pytorch(tiny_checkpoint: Path, tiny_model: NerModel) -> None:
    import torch
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    model = AutoModelForTokenClassification.from_pretrained(tiny_checkpoint).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_checkpoint)
    texts = ["john smith lives in paris .", "the bank of tokyo said on monday that germany agreed"]
    encodings = [tiny_model._tokenizer.encode(t, add_special_tokens=False) for t in texts]
    onnx_logits = tiny_model.logits(encodings)
    for text, got in zip(texts, onnx_logits):
        batch = tokenizer(text, return_tensors="pt")
        with torch.inference_mode():
            expected = model(**batch).logits[0, 1:-1].numpy()
        np.testing.assert_allclose(got, expected, atol=1e-4)


def test_existing_destination_needs_force(tiny_checkpoint: Path, tmp_path: Path) -> None:
    from ner_export.export import ExportConfig, export_bundle

    out = tmp_path / "bundle"
    out.mkdir()
    (out / "keep.txt").write_text("previous")
    with pytest.raises(NerExportError, match="already exists"):
        export_bundle(ExportConfig(model_dir=str(tiny_checkpoint), out=str(out), progress=False))
    assert (out / "keep.txt").read_text() == "previous"


def test_failed_validation_leaves_no_partial_bundle(tiny_checkpoint: Path, conll_file: Path, tmp_path: Path) -> None:
    from ner_export.export import ExportConfig, export_bundle
    from ner_export.runtime import ValidationError

    out = tmp_path / "bundle"
    with pytest.raises(ValidationError, match="exceeds the tolerance"):
        export_bundle(ExportConfig(model_dir=str(tiny_checkpoint), out=str(out), validate_data=str(conll_file), atol=0.0, progress=False))
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".bundle")]


def test_not_a_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    from ner_export.export import ExportConfig, export_bundle
    from ner_export.runtime import CheckpointError

    with pytest.raises(CheckpointError, match="no config.json"):
        export_bundle(ExportConfig(model_dir=str(tmp_path), progress=False))


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda b: (b / "model_int8.onnx").unlink(), "missing"),
        (lambda b: (b / "model_int8.onnx").write_bytes((b / "model_int8.onnx").read_bytes()[:1000]), "sha256"),
        (lambda b: (b / MANIFEST_NAME).unlink(), "not a ner-export bundle"),
        (lambda b: (b / MANIFEST_NAME).write_text("{not json"), "not valid JSON"),
        (lambda b: (b / MANIFEST_NAME).write_text(json.dumps({**json.loads((b / MANIFEST_NAME).read_text()), "format_version": 99})), "format_version 99"),
    ],
)
def test_damaged_bundle_gives_a_clear_error(tiny_bundle: Path, tmp_path: Path, damage, message: str) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(tiny_bundle, copy)
    damage(copy)
    with pytest.raises(BundleError, match=message):
        NerModel.load(copy)


def test_truncated_graph_without_verification_still_fails_cleanly(tiny_bundle: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(tiny_bundle, copy)
    graph = copy / "model_int8.onnx"
    graph.write_bytes(graph.read_bytes()[:2000])
    with pytest.raises(BundleError, match="cannot load"):
        NerModel.load(copy, verify=False)


def test_label_count_must_match_graph(tiny_bundle: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(tiny_bundle, copy)
    data = json.loads((copy / MANIFEST_NAME).read_text())
    data["labels"] = data["labels"][:5]
    (copy / MANIFEST_NAME).write_text(json.dumps(data))
    with pytest.raises(BundleError, match="outputs 9 labels but the manifest lists 5"):
        NerModel.load(copy)


def test_fp16_graph_for_cuda_is_listed(tiny_checkpoint: Path, conll_file: Path, tmp_path: Path) -> None:
    import onnx

    from ner_export.export import ExportConfig, export_bundle

    out = tmp_path / "bundle"
    export_bundle(ExportConfig(model_dir=str(tiny_checkpoint), out=str(out), include_fp16=True, validate_data=str(conll_file), progress=False))
    manifest = BundleManifest.read(out)
    assert manifest.graph_for("cuda").precision == "fp16"
    graph = onnx.load(str(out / manifest.graph_for("cuda").file))
    fp16_weights = [t for t in graph.graph.initializer if t.data_type == onnx.TensorProto.FLOAT16]
    assert len(fp16_weights) > 10
    assert graph.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT  # fp32 logits out
