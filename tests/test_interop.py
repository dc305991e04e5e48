"""The bundle and the checkpoint in other tools: stock transformers and Optimum load them as Hugging Face
folders, and a model trained with casing, which they cannot feed, is refused loudly instead of
running silently degraded."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import needs_torch

from ner_export.runtime import NerModel
from ner_export.runtime.manifest import BundleManifest, sha256_file

SHORT = ["John Smith of Reuters visited Paris on Monday .", "maria lopez works for the bank of tokyo in berlin ."]
LONG = "John Smith of Reuters visited Paris and London on Monday . " * 40  # several times the 128 positions


def _optimum() -> None:
    needs_torch()
    pytest.importorskip("optimum.onnxruntime", reason="needs Optimum with ONNX Runtime (the export extra)")


def test_the_bundle_holds_the_full_tokenizer_with_a_real_max_length(tiny_bundle: Path) -> None:
    manifest = BundleManifest.read(tiny_bundle)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"):
        assert manifest.files.get(name) == sha256_file(tiny_bundle / name), name
    config = json.loads((tiny_bundle / "tokenizer_config.json").read_text(encoding="utf-8"))
    assert config["model_max_length"] == 128  # the checkpoint tokenizer's, within the model's 128 positions


def test_autotokenizer_reads_the_bundle_with_its_max_length(tiny_bundle: Path) -> None:
    needs_torch()
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_bundle)
    assert tokenizer.is_fast and tokenizer.model_max_length == 128
    # the same ids as the runtime's tokenizer
    runtime = NerModel.load(tiny_bundle)
    assert tokenizer(SHORT[0])["input_ids"] == runtime._tokenizer.encode(SHORT[0]).ids


def test_optimum_runs_the_bundle_like_a_checkpoint_folder(tiny_bundle: Path, assert_same_entities) -> None:
    """ORTModel + transformers' pipeline with the bundle as the tokenizer: long texts are cut at the model's
    length instead of crashing, and short ones get the runtime's answers."""
    _optimum()
    from optimum.onnxruntime import ORTModelForTokenClassification
    from transformers import pipeline

    ort_model = ORTModelForTokenClassification.from_pretrained(tiny_bundle, file_name="model_int8.onnx")
    pipe = pipeline(
        "token-classification", model=ort_model, tokenizer=str(tiny_bundle), aggregation_strategy="first", device="cpu"
    )
    assert isinstance(pipe(LONG), list)
    runtime = NerModel.load(tiny_bundle, precision="int8", word_split="pipeline", decoding="argmax")
    assert assert_same_entities(pipe, runtime, SHORT) > 2


def test_optimums_own_pipeline_loads_the_bundle_from_its_path(tiny_bundle: Path, assert_same_entities) -> None:
    _optimum()
    from optimum.onnxruntime import pipeline

    pipe = pipeline(
        "token-classification",
        model=str(tiny_bundle),
        model_kwargs={"file_name": "model_int8.onnx"},
        aggregation_strategy="first",
    )
    assert isinstance(pipe(LONG), list)
    runtime = NerModel.load(tiny_bundle, precision="int8", word_split="pipeline", decoding="argmax")
    assert assert_same_entities(pipe, runtime, SHORT) > 2


def test_a_tokenizer_without_a_max_length_gets_the_models_positions(
    tiny_checkpoint: Path, conll_file: Path, tmp_path: Path
) -> None:
    """A base whose tokenizer declares no length (transformers then says ~1e30) exports a bundle whose
    tokenizer says the model's max_position_embeddings."""
    needs_torch()
    import shutil

    from conftest import export_tiny_bundle
    from transformers import AutoTokenizer

    checkpoint = tmp_path / "checkpoint"
    shutil.copytree(tiny_checkpoint, checkpoint)
    config_file = checkpoint / "tokenizer_config.json"
    config = json.loads(config_file.read_text(encoding="utf-8"))
    del config["model_max_length"]
    config_file.write_text(json.dumps(config), encoding="utf-8")
    assert AutoTokenizer.from_pretrained(checkpoint).model_max_length > 1e20
    bundle = export_tiny_bundle(checkpoint, conll_file, tmp_path / "bundle")
    assert AutoTokenizer.from_pretrained(bundle).model_max_length == 128
