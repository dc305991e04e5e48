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


def _assert_long_text_cut_at_the_models_length(pipe, runtime: NerModel, assert_same_entities) -> None:
    """The pipeline reads LONG up to the model's 128 positions: exactly the runtime's entities on that prefix
    (the cut falls between words, so both see the same words)."""
    encoded = pipe.tokenizer(LONG, truncation=True, return_offsets_mapping=True)
    assert len(encoded["input_ids"]) == 128
    cut = encoded["offset_mapping"][-2][1]  # the end of the last token before [SEP]
    assert cut < len(LONG) // 2 and LONG[cut] == " ", (cut, LONG[cut - 10 : cut + 10])
    assert assert_same_entities(pipe, lambda text: runtime(text[:cut]), [LONG]) > 20


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
    runtime = NerModel.load(tiny_bundle, precision="int8", word_split="pipeline", decoding="argmax")
    _assert_long_text_cut_at_the_models_length(pipe, runtime, assert_same_entities)
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
    runtime = NerModel.load(tiny_bundle, precision="int8", word_split="pipeline", decoding="argmax")
    _assert_long_text_cut_at_the_models_length(pipe, runtime, assert_same_entities)
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


# A model trained with casing: stock loaders refuse it loudly, ours resolve it.


def test_a_casing_checkpoint_and_bundle_are_marked_for_stock_tools(
    casing_checkpoint: Path, casing_bundle: Path
) -> None:
    from ner_export.finetune import CASING_MODEL_TYPE, checkpoint_casing, read_config

    for folder in (casing_checkpoint, casing_bundle):
        raw = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        assert raw["model_type"] == CASING_MODEL_TYPE and raw["ner_export_base_model_type"] == "bert"
        assert "ner_export.finetune.ner_pipeline" in raw["ner_export_note"] and "NerModel" in raw["ner_export_note"]
        assert checkpoint_casing(raw)
        resolved = read_config(folder)
        assert resolved["model_type"] == "bert" and resolved["ner_export_casing"] is True
        assert "ner_export_note" not in resolved and "ner_export_base_model_type" not in resolved
    assert BundleManifest.read(casing_bundle).model_type == "bert"


def test_stock_transformers_refuses_a_casing_checkpoint_naming_the_marker(casing_checkpoint: Path) -> None:
    needs_torch()
    import re

    from transformers import AutoModelForTokenClassification, pipeline

    from ner_export.finetune import CASING_MODEL_TYPE

    with pytest.raises(ValueError, match=re.escape(CASING_MODEL_TYPE)):
        pipeline("token-classification", model=str(casing_checkpoint))
    with pytest.raises(ValueError, match=re.escape(CASING_MODEL_TYPE)):
        AutoModelForTokenClassification.from_pretrained(casing_checkpoint)


def test_optimum_refuses_a_casing_bundle_naming_the_marker(casing_bundle: Path) -> None:
    _optimum()
    import re

    from optimum.onnxruntime import ORTModelForTokenClassification

    from ner_export.finetune import CASING_MODEL_TYPE

    with pytest.raises(ValueError, match=re.escape(CASING_MODEL_TYPE)):
        ORTModelForTokenClassification.from_pretrained(casing_bundle, file_name="model_int8.onnx")


@pytest.mark.parametrize("route", ["checkpoint path", "bundle path", "ORTModel"])
def test_ner_pipeline_resolves_the_marker_and_gives_the_runtimes_entities(
    route: str, casing_checkpoint: Path, casing_bundle: Path, assert_same_entities
) -> None:
    """Each way into `ner_pipeline` of a casing model finds the runtime's entities on raw text: the
    checkpoint against the fp32 graph, Optimum on the int8 graph against the runtime's int8."""
    needs_torch()
    from ner_export.finetune import load_config, load_tokenizer, ner_pipeline

    options = {"aggregation_strategy": "first", "device": "cpu"}
    if route == "checkpoint path":
        pipe, precision = ner_pipeline(str(casing_checkpoint), **options), "fp32"
    elif route == "bundle path":
        _optimum()
        pipe, precision = ner_pipeline(str(casing_bundle), **options), "int8"
    else:
        _optimum()
        from optimum.onnxruntime import ORTModelForTokenClassification

        ort_model = ORTModelForTokenClassification.from_pretrained(
            casing_bundle, config=load_config(casing_bundle), file_name="model_int8.onnx"
        )
        pipe, precision = ner_pipeline(ort_model, load_tokenizer(str(casing_bundle)), **options), "int8"
    runtime = NerModel.load(casing_bundle, precision=precision, word_split="pipeline", decoding="argmax")
    texts = [*SHORT, "JOHN SMITH of REUTERS visited paris .", "Acme Corp hired Maria Lopez in Berlin ."]
    assert assert_same_entities(pipe, runtime, texts) > 3


def test_an_old_style_casing_checkpoint_still_loads_and_exports(
    tiny_checkpoint: Path, casing_checkpoint: Path, conll_file: Path, tmp_path: Path
) -> None:
    """A checkpoint without the marker (model_type "bert", `ner_export_casing: true`) loads in our
    tools as the casing model it is, and exports to a bundle whose config.json is marked."""
    needs_torch()
    from conftest import export_tiny_bundle, make_casing_checkpoint

    from ner_export.finetune import (
        CASING_MODEL_TYPE,
        checkpoint_casing,
        load_checkpoint,
        ner_pipeline,
        read_config,
        write_config,
    )

    old = make_casing_checkpoint(tiny_checkpoint, tmp_path / "old", old_style=True)
    assert json.loads((old / "config.json").read_text(encoding="utf-8"))["model_type"] == "bert"
    model, _ = load_checkpoint(str(old))
    assert checkpoint_casing(model.config)
    texts = [*SHORT, "JOHN SMITH of REUTERS visited paris ."]
    options = {"aggregation_strategy": "first", "device": "cpu"}
    old_pipe, new_pipe = ner_pipeline(str(old), **options), ner_pipeline(str(casing_checkpoint), **options)
    assert [old_pipe(t) for t in texts] == [new_pipe(t) for t in texts]
    bundle = export_tiny_bundle(old, conll_file, tmp_path / "bundle")
    assert json.loads((bundle / "config.json").read_text(encoding="utf-8"))["model_type"] == CASING_MODEL_TYPE
    assert BundleManifest.read(bundle).casing is True
    runtime = NerModel.load(bundle, word_split="pipeline", decoding="argmax", precision="fp32")
    assert [[(e.label, e.start, e.end) for e in runtime(t)] for t in texts] == [
        [(e["entity_group"], e["start"], e["end"]) for e in new_pipe(t)] for t in texts
    ]
    # the documented way to mark an old checkpoint in place (docs/interop.md)
    write_config(old, read_config(old))
    assert json.loads((old / "config.json").read_text(encoding="utf-8"))["model_type"] == CASING_MODEL_TYPE
    assert read_config(old) == read_config(casing_checkpoint)
