"""Document context: window packing, training labels on target words only, runtime = PyTorch."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import pytest

from ner_export.runtime import NerModel
from ner_export.runtime.context import pack_with_context
from ner_export.runtime.manifest import BundleManifest


def _sentences(*lengths: int) -> list[list[int]]:
    """Sentences of the given lengths whose token ids tell sentence and position apart (s*100 + k)."""
    return [[s * 100 + k for k in range(n)] for s, n in enumerate(lengths)]


def test_target_sits_in_the_middle_with_context_split_evenly() -> None:
    ids = _sentences(10, 4, 10)
    window = pack_with_context(ids, [0, 0, 0], budget=10)[1]
    assert window.ids[window.target_start : window.target_end] == tuple(ids[1])
    assert window.ids[: window.target_start] == (7, 8, 9)  # the previous sentence's last tokens
    assert window.ids[window.target_end :] == (200, 201, 202)  # the next sentence's first tokens


def test_a_side_that_runs_out_gives_its_share_to_the_other() -> None:
    ids = _sentences(2, 4, 20)
    first, second, _ = pack_with_context(ids, [0, 0, 0], budget=12)
    assert first.target_start == 0 and first.ids == (0, 1, 100, 101, 102, 103, *range(200, 206))
    assert second.ids[: second.target_start] == (0, 1) and len(second.ids) == 12


def test_context_never_crosses_a_document_boundary() -> None:
    ids = _sentences(3, 3, 3, 3)
    windows = pack_with_context(ids, [0, 0, 1, 1], budget=100)
    assert windows[1].ids == (0, 1, 2, 100, 101, 102)
    assert windows[2].ids == (200, 201, 202, 300, 301, 302) and windows[2].target_start == 0


def test_a_target_longer_than_the_window_is_cut_without_context() -> None:
    ids = _sentences(3, 9, 3)
    window = pack_with_context(ids, [0, 0, 0], budget=5)[1]
    assert window.ids == (100, 101, 102, 103, 104) and (window.target_start, window.target_end) == (0, 5)


def test_every_window_fits_the_budget_and_holds_its_whole_target() -> None:
    ids = _sentences(7, 1, 0, 12, 5, 3, 9)
    documents = [0, 0, 0, 0, 1, 1, 2]
    for budget in (1, 4, 12, 13, 40):
        for own, window in zip(ids, pack_with_context(ids, documents, budget), strict=True):
            assert len(window.ids) <= budget
            assert window.ids[window.target_start : window.target_end] == tuple(own[:budget])


def test_bad_arguments_are_value_errors() -> None:
    with pytest.raises(ValueError, match="2 sentences but 1 document"):
        pack_with_context([[1], [2]], [0], 8)
    with pytest.raises(ValueError, match="budget"):
        pack_with_context([[1]], [0], 0)


def test_training_labels_only_the_target_sentence(tiny_checkpoint: Path) -> None:
    from ner_export.finetune import Sentence, load_tokenizer, training_features

    tokenizer = load_tokenizer(str(tiny_checkpoint))
    sentences = [
        Sentence(("john", "smith"), ("B-PER", "I-PER")),
        Sentence(("in", "paris"), ("O", "B-LOC")),
        Sentence(("reuters",), ("B-ORG",)),
    ]
    label2id = {"O": 0, "B-PER": 1, "I-PER": 2, "B-LOC": 3, "B-ORG": 4}
    features = training_features(tokenizer, sentences, label2id, 64, "document")
    ids, labels, _ = features[1]
    tokens = tokenizer.convert_ids_to_tokens(ids)
    assert tokens == ["[CLS]", "john", "smith", "in", "paris", "reuters", "[SEP]"]
    assert labels == [-100, -100, -100, 0, 3, -100, -100]  # neighbours are read, never labelled
    assert [[label for label in row if label != -100] for _, row, _ in features] == [[1, 2], [0, 3], [4]]


def test_sentences_are_grouped_within_their_document_up_to_the_target_size() -> None:
    from ner_export.finetune import group_sentences

    assert group_sentences([3, 4, 10, 2, 2, 5], [0, 0, 0, 1, 1, 1], 8) == [[0, 1], [2], [3, 4], [5]]
    assert group_sentences([], [], 8) == []


def test_packed_targets_label_every_word_once_and_read_the_rest_as_context(tiny_checkpoint: Path) -> None:
    from ner_export.finetune import Sentence, load_tokenizer, training_features

    tokenizer = load_tokenizer(str(tiny_checkpoint))
    sentences = [
        Sentence(("john", "smith"), ("B-PER", "I-PER"), 0),
        Sentence(("in", "paris"), ("O", "B-LOC"), 0),
        Sentence(("reuters",), ("B-ORG",), 0),
        Sentence(("in", "berlin"), ("O", "B-LOC"), 1),
    ]
    label2id = {"O": 0, "B-PER": 1, "I-PER": 2, "B-LOC": 3, "B-ORG": 4}
    features = training_features(tokenizer, sentences, label2id, 64, "document", target_tokens=4)
    assert len(features) == 3  # "john smith in paris" | "reuters" | "in berlin" (another document)
    ids, labels, _ = features[0]
    assert tokenizer.convert_ids_to_tokens(ids) == ["[CLS]", "john", "smith", "in", "paris", "reuters", "[SEP]"]
    assert labels == [-100, 1, 2, 0, 3, -100, -100]  # both sentences labelled, their neighbour read only
    ids, labels, _ = features[1]
    assert labels == [-100, -100, -100, -100, -100, 4, -100]
    ids, labels, _ = features[2]
    assert tokenizer.convert_ids_to_tokens(ids) == ["[CLS]", "in", "berlin", "[SEP]"]  # no context across documents
    assert labels == [-100, 0, 3, -100]


@pytest.fixture(scope="module")
def context_bundle(tiny_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny bundle with its manifest saying it was trained with document context."""
    out = tmp_path_factory.mktemp("context") / "bundle"
    shutil.copytree(tiny_bundle, out)
    dataclasses.replace(BundleManifest.read(out), context="document").write(out)
    return out


DOCUMENT = [
    ["john", "smith", "went", "to", "paris", "."],
    ["acme", "corp", "hired", "him", "in", "berlin", "."],
    ["he", "likes", "london", "and", "new", "york", "."],
]


def test_runtime_reads_sentences_with_their_neighbours_like_pytorch(
    tiny_checkpoint: Path, context_bundle: Path
) -> None:
    from ner_export.finetune import load_checkpoint, tag_words

    model, tokenizer = load_checkpoint(str(tiny_checkpoint))
    runtime = NerModel.load(context_bundle, precision="fp32")
    sentences = DOCUMENT * 3
    documents = [0, 0, 0, 1, 1, 1, 2, 2, 2]
    expected = tag_words(
        model, tokenizer, sentences, max_length=runtime.manifest.max_length, context="document", documents=documents
    )
    alone = tag_words(model, tokenizer, sentences, max_length=runtime.manifest.max_length)
    assert expected != alone, "the tiny model must react to context, or this test proves nothing"
    assert runtime.predict_words(sentences, documents=documents) == expected
    # in order, batch by batch, a document at a time: the same tags
    assert runtime.predict_words(sentences, batch_size=2, documents=documents) == expected
    assert runtime.predict_words(DOCUMENT) == expected[:3]


def test_runtime_without_context_ignores_documents(tiny_bundle: Path) -> None:
    runtime = NerModel.load(tiny_bundle, precision="fp32")
    assert runtime.predict_words(DOCUMENT, documents=[0, 1, 2]) == [runtime.predict_words([s])[0] for s in DOCUMENT]


def test_runtime_context_rejects_mismatched_documents(context_bundle: Path) -> None:
    runtime = NerModel.load(context_bundle, precision="fp32")
    with pytest.raises(ValueError, match="3 sentences but 2 document ids"):
        runtime.predict_words(DOCUMENT, documents=[0, 1])


def test_context_model_reads_long_texts_with_half_window_overlap(context_bundle: Path, tiny_bundle: Path) -> None:
    window = BundleManifest.read(tiny_bundle).max_length - 2  # [CLS] and [SEP]
    assert NerModel.load(tiny_bundle).stride == window // 4
    assert NerModel.load(context_bundle).stride == window // 2


@pytest.mark.parametrize("with_context", [True, False])
def test_sentences_longer_than_the_window_are_read_in_windows_like_the_runtime(
    tiny_checkpoint: Path, tiny_bundle: Path, context_bundle: Path, with_context: bool
) -> None:
    from ner_export.finetune import load_checkpoint, tag_words

    model, tokenizer = load_checkpoint(str(tiny_checkpoint))
    runtime = NerModel.load(context_bundle if with_context else tiny_bundle, precision="fp32")
    long_sentence = (DOCUMENT[0] + DOCUMENT[1] + DOCUMENT[2]) * 12  # 240 words, about twice the window
    sentences = [DOCUMENT[0], long_sentence, DOCUMENT[1]]
    expected = tag_words(
        model,
        tokenizer,
        sentences,
        max_length=runtime.manifest.max_length,
        context="document" if with_context else "none",
    )
    assert len(expected[1]) == len(long_sentence) and any(tag != "O" for tag in expected[1][-20:]), (
        "the tail must be read, not cut off"
    )
    assert runtime.predict_words(sentences) == expected
