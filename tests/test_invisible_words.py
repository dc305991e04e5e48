"""Words that tokenize to nothing (a lone zero-width character or variation selector) keep their slot.

Such a word has no sub-word to carry its label, so it is never trained on and always tagged O; what
must not happen is that it takes the label of the next word, or the next word takes its own, in
training, PyTorch tagging, export validation or `ner-export eval`. Each test compares a sentence with
such words against the same sentence without them, on the tiny random model, and first checks that
a shift would change the result, so it cannot pass by accident.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import TRAIN_CONLL

from ner_export.runtime import InvisibleLineWarning, NerModel
from ner_export.runtime.labels import to_iob2
from ner_export.runtime.manifest import BundleManifest

# each is a whole word that the tiny BERT tokenizer (like BERT's own) turns into zero sub-words
INVISIBLE_WORDS = ["\ufe0f", "\u200b", "\u200c", "\u200d", "\u2060", "\ufeff"]

SENTENCES = [
    ["john", "smith", "went", "to", "paris", "."],
    ["acme", "corp", "hired", "him", "in", "berlin", "."],
    ["he", "likes", "london", "and", "new", "york", "."],
]
# (sentence, position) where an invisible word goes in: before a name, after a name, first, last
INSERTIONS = [(0, 1), (0, 4), (1, 0), (1, 5), (2, 7)]


def _with_invisible(sentences: list[list[str]], tags: list[list[str]] | None = None, char: str = "\u200b"):
    """The sentences with `char` inserted as a word at INSERTIONS, and their tags with O in its slot."""
    words = [list(s) for s in sentences]
    new_tags = [list(t) for t in tags] if tags is not None else None
    for k, (i, at) in enumerate(INSERTIONS):
        words[i].insert(at + sum(1 for j, a in INSERTIONS[:k] if j == i and a <= at), char)
    if new_tags is not None:
        for k, (i, at) in enumerate(INSERTIONS):
            new_tags[i].insert(at + sum(1 for j, a in INSERTIONS[:k] if j == i and a <= at), "O")
        new_tags = [to_iob2(t) for t in new_tags]
    return words, new_tags


def _shifted(tags: list[list[str]], invisible_words: list[list[str]]) -> list[list[str]]:
    """What a reader that dropped the invisible words would give: the other words' tags moved left."""
    out = []
    for sentence_tags, words in zip(tags, invisible_words, strict=True):
        kept = [t for t, w in zip(sentence_tags, words, strict=True) if w not in INVISIBLE_WORDS]
        out.append(kept + ["O"] * (len(words) - len(kept)))
    return out


def test_the_invisible_words_tokenize_to_nothing(tiny_checkpoint: Path) -> None:
    from ner_export.finetune import load_tokenizer

    tokenizer = load_tokenizer(str(tiny_checkpoint))
    for char in INVISIBLE_WORDS:
        encoded = tokenizer([["john", char, "paris"]], is_split_into_words=True, add_special_tokens=False)
        assert encoded.word_ids(0) == [0, 2], f"U+{ord(char):04X} has sub-words: the tests below prove nothing"


@pytest.mark.parametrize("char", INVISIBLE_WORDS)
@pytest.mark.parametrize("context, target_tokens", [("none", 0), ("document", 0), ("document", 24)])
@pytest.mark.parametrize("casing", [False, True])
def test_training_labels_skip_the_invisible_word_and_keep_the_others(
    tiny_checkpoint: Path, char: str, context: str, target_tokens: int, casing: bool
) -> None:
    from ner_export.finetune import Sentence, load_tokenizer, training_features

    tokenizer = load_tokenizer(str(tiny_checkpoint))
    label2id = {"O": 0, "B-PER": 1, "I-PER": 2, "B-LOC": 3, "B-MISC": 4}
    clean = [
        Sentence(("John", "Smith", "in", "Paris"), ("B-PER", "I-PER", "O", "B-LOC"), 0),
        Sentence(("Berlin", "said"), ("B-LOC", "O"), 0),
    ]
    # the invisible word is tagged B-MISC, a label no other word has: a shift would show it
    invisible = [
        Sentence(("John", char, "Smith", "in", "Paris"), ("B-PER", "B-MISC", "I-PER", "O", "B-LOC"), 0),
        Sentence((char, "Berlin", "said", char), ("B-MISC", "B-LOC", "O", "B-MISC"), 0),
    ]
    expected = training_features(tokenizer, clean, label2id, 64, context, target_tokens, casing)
    got = training_features(tokenizer, invisible, label2id, 64, context, target_tokens, casing)
    assert got == expected
    assert all(4 not in labels for _, labels, _ in got)


def test_a_sentence_of_invisible_words_gives_no_training_row(tiny_checkpoint: Path) -> None:
    """A row without a labelled token makes the loss 0/0: a NaN in the progress bar and metrics.json."""
    from ner_export.finetune import Sentence, load_tokenizer, training_features

    tokenizer = load_tokenizer(str(tiny_checkpoint))
    sentences = [
        Sentence(("John",), ("B-PER",)),
        Sentence(("\u200b", "\ufe0f"), ("O", "B-PER")),
        Sentence(("x",), ("O",)),
    ]
    for context in ("none", "document"):
        rows = training_features(tokenizer, sentences, {"O": 0, "B-PER": 1}, 64, context)
        assert [[label for label in labels if label != -100] for _, labels, _ in rows] == [[1], [0]]


def test_training_on_a_file_with_invisible_words_keeps_a_finite_loss(tiny_checkpoint: Path, tmp_path: Path) -> None:
    from ner_export.finetune import TrainConfig, finetune

    data = tmp_path / "train.conll"
    data.write_text(TRAIN_CONLL + "\n\u200b O\n\ufe0f O\n\nParis B-LOC\n\u2060 O\nsaid O\n", encoding="utf-8")
    result = finetune(
        TrainConfig(
            train=str(data),
            dev=str(data),
            out=str(tmp_path / "model"),
            base_model=str(tiny_checkpoint),
            epochs=1,
            batch_size=1,
            progress=False,
        )
    )
    losses = [row["train_loss"] for row in result.epochs]
    assert losses and all(math.isfinite(loss) for loss in losses), losses
    metrics = json.loads((tmp_path / "model" / "metrics.json").read_text())
    assert all(math.isfinite(row["train_loss"]) for row in metrics["epochs"])


@pytest.mark.parametrize("context", ["none", "document"])
def test_tag_words_keeps_each_word_in_its_slot(tiny_checkpoint: Path, context: str) -> None:
    from ner_export.finetune import load_checkpoint, tag_words

    model, tokenizer = load_checkpoint(str(tiny_checkpoint))
    clean = tag_words(model, tokenizer, SENTENCES, max_length=64, context=context)
    for char in INVISIBLE_WORDS:
        words, expected = _with_invisible(SENTENCES, clean, char)
        assert _shifted(expected, words) != expected, "the tiny model's tags must vary, or this proves nothing"
        assert tag_words(model, tokenizer, words, max_length=64, context=context) == expected


@pytest.mark.parametrize("context", ["none", "document"])
def test_the_runtime_keeps_each_word_in_its_slot_like_pytorch(
    tiny_checkpoint: Path, tiny_bundle: Path, tmp_path: Path, context: str
) -> None:
    from ner_export.finetune import load_checkpoint, tag_words

    bundle = tiny_bundle
    if context == "document":
        bundle = tmp_path / "bundle"
        shutil.copytree(tiny_bundle, bundle)
        dataclasses.replace(BundleManifest.read(bundle), context="document").write(bundle)
    runtime = NerModel.load(bundle, precision="fp32")
    model, tokenizer = load_checkpoint(str(tiny_checkpoint))
    for char in INVISIBLE_WORDS:
        words, _ = _with_invisible(SENTENCES, char=char)
        expected = tag_words(model, tokenizer, words, max_length=runtime.manifest.max_length, context=context)
        assert runtime.predict_words(words) == expected
        _, from_clean = _with_invisible(SENTENCES, runtime.predict_words(SENTENCES), char)
        assert runtime.predict_words(words) == from_clean


def _own_tags_file(path: Path, tags: list[list[str]]) -> Path:
    """A CoNLL file of SENTENCES, with invisible words, gold-tagged with a model's own tags (plus O)."""
    from ner_export.finetune import Sentence, write_conll

    words, gold = _with_invisible(SENTENCES, tags, "\u200b")
    assert gold is not None and _shifted(gold, words) != gold
    assert sum(t.startswith("B-") for s in gold for t in s) >= 3, "needs entities to score"
    write_conll(path, [Sentence(tuple(w), tuple(t)) for w, t in zip(words, gold, strict=True)])
    return path


def test_eval_scores_a_file_with_invisible_words_without_shifting(
    tiny_checkpoint: Path, tiny_bundle: Path, tmp_path: Path
) -> None:
    """On a file tagged with the model's own tags, eval must find every entity: a shift would lose some."""
    from ner_export.cli import cli
    from ner_export.finetune import checkpoint_context, load_checkpoint, tag_words

    model, tokenizer = load_checkpoint(str(tiny_checkpoint))
    context, window = checkpoint_context(model.config)
    checkpoint_file = _own_tags_file(tmp_path / "ck.conll", tag_words(model, tokenizer, SENTENCES, 32, window, context))
    bundle_file = _own_tags_file(tmp_path / "bundle.conll", NerModel.load(tiny_bundle).predict_words(SENTENCES))
    for target, data in ((tiny_checkpoint, checkpoint_file), (tiny_bundle, bundle_file)):
        result = CliRunner().invoke(cli, ["eval", str(target), "--data", str(data)])
        assert result.exit_code == 0, result.output
        assert "entity-level micro F1: 1.0000" in result.output, result.output


def test_export_validation_reads_invisible_words_in_place(tiny_checkpoint: Path, tmp_path: Path) -> None:
    """Validation data with invisible words and a line of them alone: PyTorch and both graphs are scored
    against gold tags that are the model's own, so any shift in any of them costs F1."""
    from ner_export.export import ExportConfig, export_bundle
    from ner_export.finetune import load_checkpoint, tag_words

    model, tokenizer = load_checkpoint(str(tiny_checkpoint))
    data = _own_tags_file(tmp_path / "validate.conll", tag_words(model, tokenizer, SENTENCES, max_length=128))
    data.write_text(data.read_text(encoding="utf-8") + "\u200b\ufe0f\n\n\ufeff O\n", encoding="utf-8")
    with pytest.warns(InvisibleLineWarning):
        export_bundle(
            ExportConfig(
                model_dir=str(tiny_checkpoint), out=str(tmp_path / "b"), validate_data=str(data), progress=False
            )
        )
    validation = BundleManifest.read(tmp_path / "b").validation
    assert validation["sentences"] == 4 and validation["words"] == 26
    assert validation["pytorch_f1"] == 1.0 and validation["fp32_f1"] == 1.0
    assert validation["fp32_word_agreement"] == 1.0


def test_an_invisible_line_is_one_warning_line_on_the_command_line(tiny_bundle: Path, tmp_path: Path) -> None:
    from ner_export.cli import cli

    data = tmp_path / "concatenated.conll"
    data.write_text("John B-PER\nSmith I-PER\n\ufeff\nParis B-LOC\n\u200b\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["eval", str(tiny_bundle), "--data", str(data)])
    assert result.exit_code == 0, result.output
    assert result.stderr.strip() == (
        f"warning: {data}:3: a line holding only invisible characters (U+FEFF) was read as a blank line "
        "(2 such line(s) in the file)"
    )
    assert "entity-level micro F1" in result.stdout
