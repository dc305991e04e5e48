"""Casing through token_type_ids: the classes, and the same inputs in training, PyTorch, pipeline and runtime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import needs_torch

from ner_export.runtime import NerModel
from ner_export.runtime.casing import case_class, case_ids
from ner_export.runtime.manifest import BundleManifest

SENTENCES = [
    ["John", "Smith", "visited", "PARIS", "and", "paris", "."],
    ["REUTERS", "said", "Acme", "Corp", "hired", "him", "in", "Berlin", "."],
    ["the", "u.s.", "and", "the", "U.S.", "agreed", "on", "Monday", "."],
]


@pytest.mark.parametrize(
    "piece, expected",
    [
        ("paris", 0),
        ("Paris", 1),
        ("PARIS", 2),
        ("P", 1),
        ("iPhone", 0),
        ("U.S.", 2),
        ("1996", 0),
        (".", 0),
        ("", 0),
        ("Élan", 1),
        ("ÉTÉ", 2),
    ],
)
def test_case_class(piece: str, expected: int) -> None:
    assert case_class(piece) == expected


def test_raw_text_and_pre_split_words_give_the_same_classes(tiny_checkpoint: Path) -> None:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(tiny_checkpoint / "tokenizer.json"))
    tokenizer.no_padding()
    for words in SENTENCES:
        split = tokenizer.encode(words, is_pretokenized=True, add_special_tokens=False)
        text = " ".join(words)
        raw = tokenizer.encode(text, add_special_tokens=False)
        assert split.ids == raw.ids
        assert case_ids(words, split.offsets, split.word_ids) == case_ids(text, raw.offsets)
        assert len(set(case_ids(text, raw.offsets))) > 1


def test_the_manifest_records_casing(casing_bundle: Path, tiny_bundle: Path) -> None:
    assert BundleManifest.read(casing_bundle).casing is True
    assert BundleManifest.read(tiny_bundle).casing is False


def test_runtime_tags_words_like_pytorch(casing_checkpoint: Path, casing_bundle: Path) -> None:
    from ner_export.finetune import load_checkpoint, tag_words

    model, tokenizer = load_checkpoint(str(casing_checkpoint))
    expected = tag_words(model, tokenizer, SENTENCES)
    assert NerModel.load(casing_bundle, precision="fp32").predict_words(SENTENCES) == expected


def test_the_int8_graph_reads_casing_too(casing_bundle: Path) -> None:
    runtime = NerModel.load(casing_bundle, precision="int8")
    texts = [" ".join(words) for words in SENTENCES]
    encodings = runtime._encode(texts)
    cased = runtime.logits(encodings, types=[case_ids(t, e.offsets) for t, e in zip(texts, encodings, strict=True)])
    flat = runtime.logits(encodings, types=[[0] * len(e.ids) for e in encodings])
    assert not all(np.allclose(a, b) for a, b in zip(cased, flat, strict=True))


def test_runtime_reads_raw_text_like_the_casing_pipeline(
    casing_checkpoint: Path, casing_bundle: Path, assert_same_entities
) -> None:
    from ner_export.finetune import load_checkpoint, ner_pipeline

    model, tokenizer = load_checkpoint(str(casing_checkpoint))
    reference = ner_pipeline(model, tokenizer, aggregation_strategy="first", device="cpu")
    runtime = NerModel.load(casing_bundle, precision="fp32", word_split="pipeline", decoding="argmax")
    assert assert_same_entities(reference, runtime, [" ".join(words) for words in SENTENCES]) > 3


def test_casing_reaches_the_model(casing_checkpoint: Path, casing_bundle: Path) -> None:
    """The same lowercased ids score differently once capitalised, in the runtime and the casing pipeline."""
    from ner_export.finetune import ner_pipeline

    runtime = NerModel.load(casing_bundle, precision="fp32")
    encodings = runtime._encode(["JOHN SMITH visited PARIS", "john smith visited paris"])
    assert encodings[0].ids == encodings[1].ids
    upper, lower = runtime.logits(
        encodings,
        types=[
            case_ids(t, e.offsets)
            for t, e in zip(["JOHN SMITH visited PARIS", "john smith visited paris"], encodings, strict=True)
        ],
    )
    assert not np.allclose(upper, lower)
    by_path = ner_pipeline(str(casing_checkpoint), aggregation_strategy="none", device="cpu")
    scores = [
        [round(float(e["score"]), 5) for e in by_path(text)]
        for text in ("JOHN SMITH visited PARIS", "john smith visited paris")
    ]
    assert scores[0] != scores[1]


def test_logits_need_the_token_types(casing_bundle: Path) -> None:
    runtime = NerModel.load(casing_bundle, precision="fp32")
    encoding = runtime._encode(["John Smith"])
    with pytest.raises(ValueError, match="trained with casing"):
        runtime.logits(encoding)
    text = "John Smith"
    assert runtime.logits(encoding, types=[case_ids(text, encoding[0].offsets)])[0].shape[0] == len(encoding[0].ids)


def test_a_bundle_claiming_casing_needs_a_token_type_input(casing_bundle: Path) -> None:
    from ner_export.runtime import BundleError
    from ner_export.runtime.session import check_graph

    manifest = BundleManifest.read(casing_bundle)

    class _Port:
        def __init__(self, name: str, shape: list | None = None) -> None:
            self.name, self.shape = name, shape

    class _Session:  # a graph exported from a model without token types
        def get_inputs(self) -> list[_Port]:
            return [_Port("input_ids"), _Port("attention_mask")]

        def get_outputs(self) -> list[_Port]:
            return [_Port("logits", [None, None, len(manifest.labels)])]

    with pytest.raises(BundleError, match="token_type_ids"):
        check_graph(_Session(), manifest, casing_bundle / "model.onnx")


def test_a_base_without_token_types_is_refused_with_the_way_out() -> None:
    needs_torch()
    from transformers import DistilBertConfig, DistilBertForTokenClassification

    from ner_export.finetune import add_casing_rows
    from ner_export.runtime import CheckpointError

    model = DistilBertForTokenClassification(
        DistilBertConfig(vocab_size=50, dim=16, n_layers=1, n_heads=2, hidden_dim=32, num_labels=3)
    )
    with pytest.raises(CheckpointError, match="--no-casing"):
        add_casing_rows(model, "distil-base")


def test_context_windows_carry_casing_like_pytorch(
    casing_checkpoint: Path, casing_bundle: Path, tmp_path: Path
) -> None:
    """Neighbouring sentences are cut with their token types; long sentences read in windows keep theirs."""
    import dataclasses
    import shutil

    from ner_export.finetune import load_checkpoint, tag_words

    bundle = tmp_path / "bundle"
    shutil.copytree(casing_bundle, bundle)
    dataclasses.replace(BundleManifest.read(bundle), context="document").write(bundle)
    runtime = NerModel.load(bundle, precision="fp32")
    model, tokenizer = load_checkpoint(str(casing_checkpoint))
    long_sentence = ["Acme", "CORP", "hired", "John", "Smith"] * 30  # longer than the 128-token window
    sentences = [*SENTENCES, long_sentence, *SENTENCES]
    documents = [0, 0, 0, 0, 1, 1, 1]
    expected = tag_words(
        model, tokenizer, sentences, max_length=runtime.manifest.max_length, context="document", documents=documents
    )
    assert expected != tag_words(model, tokenizer, sentences, max_length=runtime.manifest.max_length)
    assert runtime.predict_words(sentences, documents=documents) == expected
