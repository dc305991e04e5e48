"""bundle.json is checked field by field: a damaged manifest is a BundleError naming the field, never a
traceback; keys a newer ner-export may add are ignored."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from ner_export.runtime import BundleError, BundleManifest, NerModel
from ner_export.runtime.manifest import MANIFEST_NAME


def _copy_with(tiny_bundle: Path, tmp_path: Path, change) -> Path:
    copy = tmp_path / "copy"
    shutil.copytree(tiny_bundle, copy)
    data = json.loads((copy / MANIFEST_NAME).read_text())
    change(data)
    (copy / MANIFEST_NAME).write_text(json.dumps(data))
    return copy


def _set(key: str, value: Any):
    return lambda data: data.__setitem__(key, value)


def _set_graph(key: str, value: Any):
    return lambda data: data["graphs"][0].__setitem__(key, value)


@pytest.mark.parametrize(
    "change, message",
    [
        (_set("files", None), r"'files' must be a JSON object, found null"),
        (_set("files", []), r"'files' must be a JSON object, found \[\]"),
        (lambda d: d["files"].__setitem__("model.onnx", "abc"), r"'files.model.onnx' must be a sha256"),
        (lambda d: d["files"].__setitem__("../outside.onnx", "0" * 64), r"'files' lists '../outside.onnx'"),
        (_set("tokenizer_file", None), r"'tokenizer_file' must be a string, found null"),
        (_set("tokenizer_file", "absent.json"), r"'tokenizer_file' 'absent.json' is not listed in 'files'"),
        (_set_graph("file", 5), r"'graphs\[0\].file' must be a string, found 5"),
        (_set_graph("file", "other.onnx"), r"'graphs\[0\].file' 'other.onnx' is not listed in 'files'"),
        (_set_graph("device", "tpu"), r"'graphs\[0\].device' must be one of cpu, cuda"),
        (_set_graph("precision", "int4"), r"'graphs\[0\].precision' must be one of int8, fp32, fp16"),
        (_set_graph("batch_invariant", "yes"), r"'graphs\[0\].batch_invariant' must be true or false"),
        (_set_graph("quantization", [1]), r"'graphs\[0\].quantization' must be a JSON object"),
        (lambda d: d["graphs"].__setitem__(0, "model.onnx"), r"'graphs\[0\]' must be a JSON object"),
        (_set("graphs", []), r"'graphs' must be a non-empty list"),
        (_set("pad_token_id", "x"), r"'pad_token_id' must be an integer >= 0, found \"x\""),
        (_set("pad_token_id", 10**6), r"'pad_token_id' must be below vocab_size"),
        (_set("max_length", 100000), r"'max_length' must be at most 128, the positions the model has"),
        (_set("max_length", 4), r"'max_length' must be an integer >= 8, found 4"),
        (_set("max_length", True), r"'max_length' must be an integer >= 8, found true"),
        (_set("context", "bogus"), r"'context' must be one of none, document, found \"bogus\""),
        (_set("casing", "no"), r"'casing' must be true or false, found \"no\""),
        (_set("vocab_size", -1), r"'vocab_size' must be an integer >= 0"),
        (_set("opset", 1.5), r"'opset' must be an integer >= 0"),
        (_set("versions", "1.0"), r"'versions' must be a JSON object"),
        (lambda d: d["labels"].append(d["labels"][1]), r"'labels' must not repeat a label \(repeated: B-LOC\)"),
        (lambda d: d["labels"].__setitem__(2, ""), r"'labels\[2\]' must be a non-empty string"),
        (lambda d: d["labels"].__setitem__(2, None), r"'labels\[2\]' must be a non-empty string, found null"),
        (lambda d: d.pop("labels"), r"'labels' is missing"),
        (lambda d: d.pop("max_length"), r"'max_length' is missing"),
        (_set("format_version", True), r"format_version True is not supported"),
        (_set_graph("backend", "tensorrt"), r"'graphs\[0\].backend' must be one of onnxruntime, openvino"),
        (_set_graph("weights", "absent.bin"), r"'graphs\[0\].weights' 'absent.bin' is not listed in 'files'"),
        (_set_graph("weights", "../x.bin"), r"'graphs\[0\].weights' must be the name of a file inside the bundle"),
        (_set_graph("weights", 3), r"'graphs\[0\].weights' must be a string, found 3"),
        (_set_graph("backend", "openvino"), r"'graphs\[0\].weights' must name the IR's weights file"),
        (
            lambda d: d["graphs"][0].update(backend="openvino", weights="vocab.txt", device="cuda"),
            r"'graphs\[0\].device' must be cpu for an openvino graph",
        ),
    ],
)
def test_a_damaged_field_is_a_bundle_error_naming_it(tiny_bundle: Path, tmp_path: Path, change, message: str) -> None:
    copy = _copy_with(tiny_bundle, tmp_path, change)
    with pytest.raises(BundleError, match=f"^{copy / MANIFEST_NAME}: .*{message}"):
        BundleManifest.read(copy)
    with pytest.raises(BundleError, match=message):
        NerModel.load(copy)


def test_unknown_keys_are_ignored(tiny_bundle: Path, tmp_path: Path) -> None:
    """Forward compatibility: a newer ner-export may add keys (docs/bundle.md)."""

    def add(data: dict) -> None:
        data["added_by_a_newer_version"] = {"anything": [1, 2]}
        data["graphs"][0]["added_too"] = True

    copy = _copy_with(tiny_bundle, tmp_path, add)
    assert BundleManifest.read(copy) == BundleManifest.read(tiny_bundle)
    assert NerModel.load(copy)("John Smith lives in Paris.") == NerModel.load(tiny_bundle)("John Smith lives in Paris.")


def test_max_length_limit_comes_from_the_config(tiny_bundle: Path, tmp_path: Path) -> None:
    """Without config.json (or without max_position_embeddings in it) there is no upper limit to check."""
    copy = _copy_with(tiny_bundle, tmp_path, _set("max_length", 256))
    with pytest.raises(BundleError, match="at most 128"):
        BundleManifest.read(copy)
    config = json.loads((copy / "config.json").read_text())
    del config["max_position_embeddings"]
    (copy / "config.json").write_text(json.dumps(config))
    assert BundleManifest.read(copy).max_length == 256
    (copy / "config.json").write_text("{broken")
    with pytest.raises(BundleError, match="config.json: not valid JSON"):
        BundleManifest.read(copy)


def test_position_limit() -> None:
    from ner_export.runtime.manifest import position_limit

    assert position_limit({"max_position_embeddings": 512, "model_type": "bert"}) == 512
    assert position_limit({"max_position_embeddings": 514, "model_type": "roberta", "pad_token_id": 1}) == 512
    assert position_limit({"model_type": "bert"}) is None
    assert position_limit({"max_position_embeddings": "512"}) is None


def test_the_written_manifest_reads_back_equal(tiny_bundle: Path, tmp_path: Path) -> None:
    manifest = BundleManifest.read(tiny_bundle)
    copy = tmp_path / "copy"
    shutil.copytree(tiny_bundle, copy)
    manifest.write(copy)
    assert BundleManifest.read(copy) == manifest


def test_graphs_written_before_backends_are_onnxruntime_graphs(tiny_bundle: Path, tmp_path: Path) -> None:
    """A bundle.json without `backend` and `weights` (every bundle before the OpenVINO backend) reads as
    before, and `graph_for` without a backend never returns another backend's graph."""

    def strip(data: dict) -> None:
        data["graphs"] = [g for g in data["graphs"] if g.get("backend", "onnxruntime") == "onnxruntime"]
        for graph in data["graphs"]:
            graph.pop("backend", None)
            graph.pop("weights", None)

    old = BundleManifest.read(_copy_with(tiny_bundle, tmp_path, strip))
    assert {(g.backend, g.weights) for g in old.graphs} == {("onnxruntime", "")}
    current = BundleManifest.read(tiny_bundle)
    assert old.graphs == tuple(g for g in current.graphs if g.backend == "onnxruntime")
    for precision in (None, "int8", "fp32"):
        assert current.graph_for("cpu", precision) == old.graph_for("cpu", precision)
    assert current.graph_for("cpu", "int8").file == "model_int8.onnx"
    with pytest.raises(BundleError, match=r"lists no openvino int8 graph for device 'cpu' \(it has: int8 for cpu, "):
        old.graph_for("cpu", "int8", "openvino")
    with pytest.raises(BundleError, match=r"lists no openvino graph for device 'cuda'"):
        current.graph_for("cuda", backend="openvino")
