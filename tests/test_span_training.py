"""Training on span files: the context reason names what marks documents, and the token that carries a word."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ner_export.finetune import Relatedness, choose_context


@pytest.mark.parametrize(
    ("documents", "relatedness", "chosen", "reason"),
    [
        (3, None, "document", "chosen automatically: the training file's records name 3 documents (doc_id), so"),
        (1, None, "none", "chosen automatically: no doc_id divides the training file's records into documents, so"),
        (
            1,
            Relatedness(0.6, 0.1, 100),
            "document",
            "no doc_id divides the training file's records into documents, but",
        ),
    ],
)
def test_the_context_reason_of_a_span_file_names_its_doc_ids(
    documents: int, relatedness: Relatedness | None, chosen: str, reason: str
) -> None:
    mode, why = choose_context("auto", documents, relatedness, "spans")
    assert mode == chosen and reason in why and "-DOCSTART-" not in why
    assert choose_context("none", 2, None, "spans") == (
        "none",
        "as asked; the training file's records name 2 documents (doc_id)",
    )
    assert "-DOCSTART- lines" in choose_context("auto", 2)[1]  # a CoNLL file's reason is unchanged


def test_training_labels_the_token_pre_split_reading_reads_and_raw_text_differs_only_after_punctuation(
    tiny_checkpoint: Path,
) -> None:
    """A word is trained at its first sub-word, the token `predict_words` reads; raw text reads a chunk at
    its first letter-or-digit token, which differs only for a word whose first token is punctuation
    (docs/span-data.md, "Which token carries a word")."""
    from ner_export.finetune import load_tokenizer, training_features
    from ner_export.runtime.conll import Sentence
    from ner_export.runtime.decoding import text_words
    from ner_export.runtime.entities import EntityDecoder

    tokenizer = load_tokenizer(str(tiny_checkpoint))
    words = ("(paris),", "'s", "john", "smith", "+44")
    tags = ("B-LOC", "O", "B-PER", "I-PER", "O")
    [(ids, labels, _)] = training_features(tokenizer, [Sentence(words, tags)], {t: i for i, t in enumerate(tags)}, 64)
    trained = [k - 1 for k, label in enumerate(labels) if label != -100]  # past [CLS]

    encoding = tokenizer(list(words), is_split_into_words=True, add_special_tokens=False).encodings[0]
    token_labels = tuple(f"T{k}" for k in range(len(encoding.ids)))  # each token votes for its own label
    decoder = EntityDecoder(token_labels, decoding="argmax", word_split="text", unk_id=-1)
    read = decoder.word_tags(len(words), encoding, np.eye(len(token_labels), dtype=np.float32), "first")
    assert [int(tag[1:]) for tag in read] == trained  # what predict_words reads is what training labelled

    text = " ".join(words)
    raw = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    assert raw["input_ids"] == encoding.ids  # the same tokens either way for this WordPiece tokenizer
    starts, _ = text_words(text, np.asarray(raw["offset_mapping"], dtype=np.int64).reshape(-1, 2))
    raw_read = np.flatnonzero(starts).tolist()
    assert len(raw_read) == len(trained)
    differ = [words[i] for i, (a, b) in enumerate(zip(trained, raw_read, strict=True)) if a != b]
    assert differ == ["(paris),", "'s", "+44"]
