"""Export: a valid, validated bundle, fused and quantized graphs, atomic writes."""

from __future__ import annotations

import collections
import json
import re
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
    int8 = manifest.graph_for("cpu", "int8")
    assert int8.quantization["per_channel"] is True and int8.quantization["method"] == "static"
    assert int8.batch_invariant is True and int8.quantization["embeddings"] == "per-row"
    assert int8.quantization["calibration"] == "minmax" and int8.quantization["calibration_runs"] == 4


def test_fp32_graph_is_fused_and_int8_graph_is_quantized(tiny_bundle: Path) -> None:
    fp32 = _op_counts(tiny_bundle / "model.onnx")
    assert fp32["Attention"] == 2 and fp32["SkipLayerNormalization"] >= 2
    assert fp32["EmbedLayerNormalization"] == 0  # left unfused, so each table is quantized on its own
    assert fp32["BiasGelu"] + fp32["FastGelu"] + fp32["Gelu"] >= 2
    int8 = _op_counts(tiny_bundle / "model_int8.onnx")
    assert int8["QAttention"] == 2 and int8["MatMulInteger"] >= 4
    # every activation scale is a calibrated constant: nothing is measured per batch
    assert int8["DynamicQuantizeLinear"] == 0 and int8["QuantizeLinear"] == int8["QAttention"] + int8["MatMulInteger"]


def test_word_table_is_int8_per_row_and_the_small_tables_stay_fp32(tiny_bundle: Path) -> None:
    import onnx
    from onnx import numpy_helper

    from ner_export.export.quantize import small_embedding_tables

    small = small_embedding_tables(tiny_bundle / "model.onnx")
    assert sorted(small) == [
        "/bert/embeddings/position_embeddings/Gather",
        "/bert/embeddings/token_type_embeddings/Gather",
    ]
    graph = onnx.load(str(tiny_bundle / "model_int8.onnx")).graph
    tables = {t.name: t for t in graph.initializer}
    gathers = {n.name: n.input[0] for n in graph.node if n.op_type == "Gather" and n.input[0] in tables}
    assert all(tables[gathers[name]].data_type == onnx.TensorProto.FLOAT for name in small)
    word = "bert.embeddings.word_embeddings.weight"
    assert word not in tables  # the fp32 table is gone ...
    rows, scale = numpy_helper.to_array(tables[f"{word}_int8_rows"]), numpy_helper.to_array(tables[f"{word}_row_scale"])
    assert rows.dtype == np.int8 and scale.shape == (rows.shape[0], 1)  # ... for int8 rows with one scale each
    quantization = BundleManifest.read(tiny_bundle).graph_for("cpu", "int8").quantization
    assert set(quantization["fp32_embedding_tables"]) == set(small) and quantization["per_row_tables"] == [word]


def test_validation_is_recorded(tiny_bundle: Path, conll_file: Path) -> None:
    from ner_export.runtime.conll import read_conll

    validation = json.loads((tiny_bundle / MANIFEST_NAME).read_text())["validation"]
    assert validation["fp32_logits_max_abs_diff"] <= validation["atol"]
    assert validation["fp32_word_agreement"] == 1.0
    # the fp32 graph tags every validation word as PyTorch does, so the int8 agreement is the share of
    # words the int8 graph tags as the fp32 one
    words = [list(sentence.words) for sentence in read_conll(conll_file)]
    fp32 = NerModel.load(tiny_bundle, precision="fp32").predict_words(words)
    int8 = NerModel.load(tiny_bundle, precision="int8").predict_words(words)
    same = [a == b for f, i in zip(fp32, int8, strict=True) for a, b in zip(f, i, strict=True)]
    assert validation["int8_word_agreement"] == pytest.approx(sum(same) / len(same))
    assert validation["sentences"] == len(words) == 4
    assert validation["max_f1_drop"] == 0.3 and validation["int8_config"] == "requested"
    [attempt] = validation["int8_attempts"]
    assert attempt["accepted"] is True and attempt["drop"] <= 0.3 and attempt["config"]["nodes_to_exclude"] == []


def test_fp32_onnx_logits_match_pytorch(tiny_checkpoint: Path, tiny_model: NerModel) -> None:
    import torch
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    model = AutoModelForTokenClassification.from_pretrained(tiny_checkpoint).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_checkpoint)
    texts = ["john smith lives in paris .", "the bank of tokyo said on monday that germany agreed"]
    encodings = [tiny_model._tokenizer.encode(t, add_special_tokens=False) for t in texts]
    onnx_logits = tiny_model.logits(encodings)
    for text, got in zip(texts, onnx_logits, strict=True):
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
        export_bundle(
            ExportConfig(
                model_dir=str(tiny_checkpoint), out=str(out), validate_data=str(conll_file), atol=0.0, progress=False
            )
        )
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
        (
            lambda b: (b / MANIFEST_NAME).write_text(
                json.dumps({**json.loads((b / MANIFEST_NAME).read_text()), "format_version": 99})
            ),
            "format_version 99",
        ),
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
    export_bundle(
        ExportConfig(
            model_dir=str(tiny_checkpoint),
            out=str(out),
            include_fp16=True,
            validate_data=str(conll_file),
            progress=False,
        )
    )
    manifest = BundleManifest.read(out)
    assert manifest.graph_for("cuda").precision == "fp16"
    graph = onnx.load(str(out / manifest.graph_for("cuda").file))
    fp16_weights = [t for t in graph.graph.initializer if t.data_type == onnx.TensorProto.FLOAT16]
    assert len(fp16_weights) > 10
    assert graph.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT  # fp32 logits out


# --- the int8 accuracy gate -------------------------------------------------------------------------

_DEAD = 5  # a hidden feature that the edited checkpoints below zero out


def _edited_checkpoint(base: Path, folder: Path, edit) -> tuple[Path, Path]:
    """A copy of `base` changed by `edit(model)`, and a CoNLL file tagged with that copy's own predictions.

    Gold tags that are the model's PyTorch predictions make fp32 entity F1 exactly 1.0 on hundreds of
    entities (sentences short enough for one window), so whatever int8 breaks shows up as F1 drop.
    """
    from importlib import resources

    import torch
    from transformers import BertForTokenClassification, BertTokenizerFast

    from ner_export.finetune import tag_words
    from ner_export.runtime.conll import read_conll

    model = BertForTokenClassification.from_pretrained(base).eval()
    tokenizer = BertTokenizerFast.from_pretrained(base)
    with torch.no_grad():
        edit(model)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    sample = read_conll(Path(str(resources.files("ner_export.finetune") / "sample" / "dev.txt")))
    words = [
        list(s.words)
        for s in sample
        if len(tokenizer(list(s.words), is_split_into_words=True, verbose=False)["input_ids"]) <= 100
    ][:40]
    tags = tag_words(model, tokenizer, words, max_length=128)
    data = folder / "own_predictions.conll"
    data.write_text(
        "\n\n".join(
            "\n".join(f"{w} {t}" for w, t in zip(ws, ts, strict=True)) for ws, ts in zip(words, tags, strict=True)
        )
        + "\n",
        encoding="utf-8",
    )
    assert sum(t.startswith("B-") for ts in tags for t in ts) > 150  # enough entities for F1 to mean something
    return folder, data


def _outlier_in_classifier(model) -> None:
    """fp32 unchanged in effect (the outlier multiplies a feature that is exactly 0), int8 classifier ruined."""
    norm = model.bert.encoder.layer[-1].output.LayerNorm
    norm.weight[_DEAD] = norm.bias[_DEAD] = 0.0
    model.classifier.weight[:, _DEAD] = 1e4  # its column's int8 scale: every other weight rounds to 0


def _outlier_in_first_layer(model) -> None:
    """The same trick on layer 0's FFN, made to dominate its layer; no rung of the ladder keeps it in fp32."""
    layer = model.bert.encoder.layer[0]
    layer.attention.output.LayerNorm.weight[_DEAD] = layer.attention.output.LayerNorm.bias[_DEAD] = 0.0
    layer.output.dense.weight.mul_(30.0)
    layer.intermediate.dense.weight[:, _DEAD] = 1e4


@pytest.fixture(scope="module")
def bad_head(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return _edited_checkpoint(
        tiny_checkpoint, tmp_path_factory.mktemp("bad_head") / "checkpoint", _outlier_in_classifier
    )


@pytest.fixture(scope="module")
def bad_body(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    return _edited_checkpoint(
        tiny_checkpoint, tmp_path_factory.mktemp("bad_body") / "checkpoint", _outlier_in_first_layer
    )


_TINY_SENSITIVE = (
    "/classifier/MatMul",
    "/classifier/Add",
    "/bert/encoder/layer.1/output/dense/MatMul",
    "/bert/encoder/layer.1/attention/output/dense/MatMul",
)


def test_sensitive_nodes_are_the_classifier_and_the_last_layers_output_projections(tiny_bundle: Path) -> None:
    from ner_export.export.quantize import sensitive_nodes

    assert (
        sensitive_nodes(tiny_bundle / "model.onnx") == _TINY_SENSITIVE
    )  # found by structure; the tiny model has 2 layers


def test_default_ladder_goes_from_the_request_to_safer_configs() -> None:
    from ner_export.export import Int8Config, default_int8_ladder

    ladder = default_int8_ladder(Int8Config(per_channel=False, reduce_range=True))
    assert [r.name for r in ladder] == [
        "requested",
        "sensitive-fp32",
        "sensitive+embeddings-fp32",
        "attention+embeddings-fp32",
    ]
    assert [
        (r.per_channel, r.reduce_range, r.embeddings, r.quantize_attention, r.exclude_sensitive, r.activations)
        for r in ladder
    ] == [
        (False, True, "per-row", True, False, "static"),
        (True, True, "per-row", True, True, "static"),
        (True, True, "fp32", True, True, "static"),
        (True, True, "fp32", False, True, "static"),
    ]
    assert "Attention" not in ladder[-1].op_types() and "Attention" in ladder[0].op_types()
    # a rung with the same settings as an earlier one is not tried twice
    assert [r.name for r in default_int8_ladder(Int8Config(exclude_sensitive=True))] == [
        "requested",
        "sensitive+embeddings-fp32",
        "attention+embeddings-fp32",
    ]
    assert [(r.name, r.embeddings) for r in default_int8_ladder(Int8Config(embeddings="fp32"))] == [
        ("requested", "fp32"),
        ("sensitive-fp32", "fp32"),
        ("attention+embeddings-fp32", "fp32"),
    ]
    # per-row tables come before fp32 ones when the request had one scale per table
    assert [(r.name, r.embeddings) for r in default_int8_ladder(Int8Config(embeddings="per-tensor"))] == [
        ("requested", "per-tensor"),
        ("sensitive-fp32", "per-tensor"),
        ("sensitive-fp32+embeddings-per-row", "per-row"),
        ("sensitive+embeddings-fp32", "fp32"),
        ("attention+embeddings-fp32", "fp32"),
    ]
    # a dynamic request stays dynamic on every rung (batch-dependent, and recorded so)
    assert {r.activations for r in default_int8_ladder(Int8Config(activations="dynamic"))} == {"dynamic"}
    assert not Int8Config(activations="dynamic").batch_invariant and Int8Config().batch_invariant
    with pytest.raises(ValueError, match="embeddings='rows'"):
        Int8Config(embeddings="rows")


def test_bad_int8_quantization_is_refused(bad_body: tuple[Path, Path], tmp_path: Path) -> None:
    from ner_export.export import ExportConfig, export_bundle
    from ner_export.runtime import ValidationError

    checkpoint, data = bad_body
    out = tmp_path / "bundle"
    with pytest.raises(ValidationError) as refused:
        export_bundle(ExportConfig(model_dir=str(checkpoint), out=str(out), validate_data=str(data), progress=False))
    message = str(refused.value)
    assert "\n" not in message and "int8 quantization loses too much accuracy" in message
    assert "is 1.0000 with fp32" in message and "--max-f1-drop" in message
    limit = float(re.search(r"the limit is ([0-9.]+) points", message).group(1))
    assert 0.3 <= limit < 1.0  # 0.3, or one entity's worth on these 40 sentences if that is more
    drops = [float(d) for d in re.findall(r"\(drop ([0-9.]+) points\)", message)]
    assert [
        name in message
        for name in ("requested", "sensitive-fp32", "sensitive+embeddings-fp32", "attention+embeddings-fp32")
    ] == [True] * 4
    assert len(drops) == 4 and min(drops) > 5.0, message
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".bundle")]


def test_gate_falls_back_to_a_safer_int8_config(bad_head: tuple[Path, Path], tmp_path: Path) -> None:
    from ner_export.export import ExportConfig, export_bundle

    checkpoint, data = bad_head
    out = tmp_path / "bundle"
    # the limit leaves room for the tiny random model's ordinary int8 noise, far below what the outlier costs
    result = export_bundle(
        ExportConfig(model_dir=str(checkpoint), out=str(out), validate_data=str(data), max_f1_drop=5.0, progress=False)
    )
    manifest = BundleManifest.read(out)
    attempts = manifest.validation["int8_attempts"]
    assert [(a["config"]["name"], a["accepted"]) for a in attempts] == [("requested", False), ("sensitive-fp32", True)]
    assert attempts[0]["drop"] > 50 and attempts[1]["drop"] <= 5.0
    assert attempts[0]["fp32_f1"] == attempts[1]["fp32_f1"] == 1.0
    assert attempts[1]["config"]["nodes_to_exclude"] == list(_TINY_SENSITIVE)
    assert manifest.validation["int8_config"] == "sensitive-fp32" == result.validation.int8_config
    quantization = manifest.graph_for("cpu", "int8").quantization
    assert quantization["config"] == "sensitive-fp32" and quantization["nodes_to_exclude"] == list(_TINY_SENSITIVE)
    import onnx

    ops = {node.name: node.op_type for node in onnx.load(str(out / "model_int8.onnx")).graph.node}
    assert ops["/classifier/MatMul"] == "MatMul" and ops["/bert/encoder/layer.1/output/dense/MatMul"] == "MatMul"
    assert "/bert/encoder/layer.0/output/dense/MatMul_quant" in ops  # the rest is still int8
    assert manifest.files["model_int8.onnx"] == sha256_file(out / "model_int8.onnx")
    # NNCF has no ladder: the OpenVINO graph is measured once, against the same limit, and left out
    from ner_export.export.openvino_int8 import missing_openvino

    outcome = manifest.validation["openvino"]
    assert outcome["shipped"] is False and all(g.backend == "onnxruntime" for g in manifest.graphs)
    assert not (out / "model_int8_openvino.xml").exists() and not (out / "model_int8_openvino.bin").exists()
    if missing_openvino():
        assert outcome["reason"] == missing_openvino()
    else:
        assert outcome["fp32_f1"] == 1.0 and outcome["drop"] > 5.0 and outcome["limit"] == 5.0
        assert outcome["reason"].startswith(f"NNCF int8 loses {outcome['drop']:.2f} points of entity F1 against fp32")


def test_a_given_ladder_replaces_the_default_one(bad_head: tuple[Path, Path], tmp_path: Path) -> None:
    from ner_export.export import ExportConfig, Int8Config, export_bundle

    checkpoint, data = bad_head
    out = tmp_path / "bundle"
    only = Int8Config(name="mine", per_channel=True, embeddings="fp32", nodes_to_exclude=("/classifier/MatMul",))
    export_bundle(
        ExportConfig(
            model_dir=str(checkpoint),
            out=str(out),
            validate_data=str(data),
            int8_ladder=(only,),
            max_f1_drop=5.0,
            progress=False,
        )
    )
    attempts = BundleManifest.read(out).validation["int8_attempts"]
    assert [(a["config"]["name"], a["config"]["nodes_to_exclude"], a["accepted"]) for a in attempts] == [
        ("mine", ["/classifier/MatMul"], True)
    ]


def test_labels_without_entity_f1_skip_the_gate(tmp_path: Path, conll_file: Path) -> None:
    from conftest import make_tiny_checkpoint

    from ner_export.export import ExportConfig, export_bundle

    checkpoint = make_tiny_checkpoint(tmp_path / "bioes", labels=["O", "B-PER", "E-PER", "S-PER"])
    export_bundle(
        ExportConfig(
            model_dir=str(checkpoint),
            out=str(tmp_path / "bundle"),
            validate_data=str(conll_file),
            max_f1_drop=0.0,
            progress=False,
        )
    )
    validation = BundleManifest.read(tmp_path / "bundle").validation
    assert validation["int8_f1"] is None and validation["int8_config"] == "requested"
    [attempt] = validation["int8_attempts"]
    assert attempt["int8_f1"] is None and attempt["drop"] is None and attempt["accepted"] is True


def test_document_context_is_copied_into_the_manifest(
    tiny_checkpoint: Path, conll_file: Path, tiny_bundle: Path, tmp_path: Path
) -> None:
    from ner_export.export import ExportConfig, export_bundle
    from ner_export.runtime import CheckpointError

    assert BundleManifest.read(tiny_bundle).context == "none"  # a checkpoint without the key
    checkpoint = tmp_path / "checkpoint"
    shutil.copytree(tiny_checkpoint, checkpoint)
    config = json.loads((checkpoint / "config.json").read_text())
    (checkpoint / "config.json").write_text(json.dumps({**config, "ner_export_context": "document"}))
    export_bundle(
        ExportConfig(
            model_dir=str(checkpoint), out=str(tmp_path / "bundle"), validate_data=str(conll_file), progress=False
        )
    )
    assert BundleManifest.read(tmp_path / "bundle").context == "document"
    (checkpoint / "config.json").write_text(json.dumps({**config, "ner_export_context": "page"}))
    with pytest.raises(CheckpointError, match="ner_export_context 'page'"):
        export_bundle(ExportConfig(model_dir=str(checkpoint), out=str(tmp_path / "other"), progress=False))


def test_cli_max_f1_drop_reaches_the_gate(bad_body: tuple[Path, Path], tmp_path: Path) -> None:
    from click.testing import CliRunner

    from ner_export.cli import cli

    checkpoint, data = bad_body
    out = tmp_path / "bundle"
    refused = CliRunner().invoke(cli, ["export", str(checkpoint), "-o", str(out), "--validate-data", str(data), "-q"])
    lines = [line for line in refused.output.splitlines() if line.strip()]
    assert refused.exit_code == 1 and len(lines) == 1, refused.output
    assert lines[0].startswith("Error: int8 quantization loses too much accuracy") and "--max-f1-drop" in lines[0]
    assert not out.exists()
    needed = re.search(r"--max-f1-drop ([0-9.]+)", lines[0]).group(1)
    accepted = CliRunner().invoke(
        cli, ["export", str(checkpoint), "-o", str(out), "--validate-data", str(data), "--max-f1-drop", needed, "-q"]
    )
    assert accepted.exit_code == 0, accepted.output
    validation = BundleManifest.read(out).validation
    assert validation["max_f1_drop"] == float(needed) and validation["int8_attempts"][-1]["accepted"] is True
    assert "int8 config" in accepted.output
    assert CliRunner().invoke(cli, ["export", str(checkpoint), "--max-f1-drop", "-1"]).exit_code == 2


def test_gate_limit_never_asks_for_less_than_one_entity() -> None:
    from ner_export.export.gate import gate_limit
    from ner_export.runtime.labels import EntityScores

    small = EntityScores.from_counts(n_true=150, n_pred=150, n_correct=150)  # one entity = 0.33 points
    large = EntityScores.from_counts(n_true=5000, n_pred=5000, n_correct=4600)  # one entity = 0.02 points
    assert gate_limit(0.3, small) == pytest.approx(200 / 300)
    assert gate_limit(0.3, large) == 0.3
    assert gate_limit(1.0, small) == 1.0


def test_max_length_beyond_the_models_positions_is_refused(
    tiny_checkpoint: Path, conll_file: Path, tmp_path: Path
) -> None:
    """The tiny model has 128 positions: a longer window would make a bundle whose graph fails on long texts."""
    from ner_export.export import ExportConfig, export_bundle
    from ner_export.runtime import ExportError

    out = tmp_path / "bundle"
    config = ExportConfig(
        model_dir=str(tiny_checkpoint), out=str(out), validate_data=str(conll_file), max_length=1000, progress=False
    )
    with pytest.raises(ExportError, match=r"--max-length 1000 is more than the 128 token positions the model has"):
        export_bundle(config)
    assert not out.exists()


def test_the_bundle_has_a_model_card_listing_the_gate_and_every_file(tiny_bundle: Path, conll_file: Path) -> None:
    huggingface_hub = pytest.importorskip("huggingface_hub")

    manifest = BundleManifest.read(tiny_bundle)
    validation = manifest.validation
    card = huggingface_hub.ModelCard.load(tiny_bundle / "README.md")
    assert card.data.library_name == "ner-export" and "onnx" in card.data.tags
    [result] = card.data.eval_results
    assert (result.dataset_split, result.metric_type) == ("validation", "f1")
    assert result.metric_value == round(validation["int8_f1"], 4) and result.dataset_name == conll_file.name
    text = card.text
    assert "(int8 ONNX bundle)" in text and "| PER | `B-PER`, `I-PER` |" in text
    gate = text.split("## Int8 accuracy gate")[1].split("##")[0]
    assert f"Measured on 4 sentences ({validation['words']} words) of `{conll_file.name}`" in gate
    assert f"int8 {validation['int8_f1']:.4f} (configuration `requested`" in gate and "| requested |" in gate
    assert f'NerModel.load("{tiny_bundle.name}")' in text and "**Casing:**" not in text
    for name in [*manifest.files, MANIFEST_NAME]:  # the manifest too: the card is written after it
        assert f"| `{name}` | `{sha256_file(tiny_bundle / name)}` |" in text
    assert "README.md" not in manifest.files  # the manifest cannot hold the hash of a file holding its hash
    assert NerModel.load(tiny_bundle).predict(["John Smith lives in Paris ."]) is not None


def test_an_edited_card_leaves_the_bundle_valid_and_a_casing_bundle_warns(
    tiny_bundle: Path, casing_bundle: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, copy)
    (copy / "README.md").write_text("---\nlicense: mit\n---\n# edited on the Hub\n", encoding="utf-8")
    assert len(NerModel.load(copy).predict(["Maria Lopez works in London ."])) == 1
    casing_card = (casing_bundle / "README.md").read_text(encoding="utf-8")
    assert "**Casing:**" in casing_card and "token_type_ids" in casing_card
