"""CoNLL <-> span files: the shipped sample round-trips byte for byte, and both give the same training examples."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ner_export.runtime.conll import Sentence, read_conll
from ner_export.runtime.conll_spans import conll_text, conll_to_spans, sentence_records, spans_to_conll
from ner_export.runtime.errors import DataFormatError
from ner_export.runtime.labeled_data import read_labeled

SAMPLE = Path(__file__).resolve().parents[1] / "finetune" / "sample"
DOCUMENTS = """-DOCSTART- -X- O O

Acme NNP B-NP B-ORG
backs VBZ B-VP O
Danish JJ B-NP B-MISC
plan NN I-NP O
. . O O

Maria NNP B-NP B-PER
Ostergard NNP I-NP I-PER

-DOCSTART- -X- O O

OSLO NNP B-NP B-LOC
2026-03-14 CD I-NP O
"""


def _examples(sentences: list[Sentence]) -> list[tuple[tuple[str, ...], tuple[str, ...], int]]:
    return [(s.words, s.tags, s.document) for s in sentences]


@pytest.mark.parametrize("split", ["train", "dev", "test"])
@pytest.mark.parametrize("suffix", [".jsonl", ".json"])
def test_the_sample_round_trips_byte_for_byte(tmp_path: Path, split: str, suffix: str) -> None:
    source = SAMPLE / f"{split}.txt"
    spans = tmp_path / f"{split}{suffix}"
    written = conll_to_spans(source, spans)
    assert written == len(read_conll(source))
    back = tmp_path / f"{split}.txt"
    report = spans_to_conll(spans, back)
    assert back.read_bytes() == source.read_bytes()
    assert (report.records, report.bad, report.misaligned) == (written, (), ())


def test_a_conll_file_and_its_span_file_give_the_same_sentences(tmp_path: Path) -> None:
    for split in ("train", "dev", "test"):
        conll_to_spans(SAMPLE / f"{split}.txt", tmp_path / f"{split}.jsonl")
        from_conll = read_labeled(SAMPLE / f"{split}.txt")
        from_spans = read_labeled(tmp_path / f"{split}.jsonl")
        assert _examples(from_spans.sentences) == _examples(from_conll.sentences)
        assert from_spans.report.spans == from_conll.report.spans


def test_a_record_is_the_joined_words_with_predicts_entities(tmp_path: Path) -> None:
    sentence = Sentence(("Maria", "Ostergard", "(", "U.S.", ")"), ("B-PER", "I-PER", "O", "B-LOC", "O"))
    (record,) = sentence_records([sentence])
    assert record == {
        "text": "Maria Ostergard ( U.S. )",
        "entities": [
            {"start": 0, "end": 15, "label": "PER", "text": "Maria Ostergard"},
            {"start": 18, "end": 22, "label": "LOC", "text": "U.S."},
        ],
    }


def test_documents_become_doc_ids_and_come_back_as_documents(tmp_path: Path) -> None:
    conll = tmp_path / "docs.conll"
    conll.write_text(DOCUMENTS, encoding="utf-8")
    spans = tmp_path / "docs.jsonl"
    conll_to_spans(conll, spans)
    records = [json.loads(line) for line in spans.read_text(encoding="utf-8").splitlines()]
    assert [r["doc_id"] for r in records] == [0, 0, 1]
    data = read_labeled(spans)
    assert _examples(data.sentences) == _examples(read_conll(conll))
    assert data.report.documents == 2
    back = tmp_path / "back.conll"
    spans_to_conll(spans, back)
    assert back.read_text(encoding="utf-8") == (
        "-DOCSTART- O\n\nAcme B-ORG\nbacks O\nDanish B-MISC\nplan O\n. O\n\nMaria B-PER\nOstergard I-PER\n\n"
        "-DOCSTART- O\n\nOSLO B-LOC\n2026-03-14 O\n"
    )
    assert _examples(read_conll(back)) == _examples(read_conll(conll))


def test_one_document_needs_no_mark() -> None:
    sentences = [Sentence(("a",), ("O",)), Sentence(("b",), ("B-X",))]
    assert conll_text(sentences) == "a O\n\nb B-X\n"
    assert all("doc_id" not in r for r in sentence_records(sentences))


def test_a_word_holding_a_unicode_space_is_refused_with_its_line(tmp_path: Path) -> None:
    conll = tmp_path / "nbsp.conll"
    conll.write_text("New O\n\nSão B-LOC\n10\u00a0000 O\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"nbsp.conll:4: the word holds a space character \(U\+00A0\)"):
        conll_to_spans(conll, tmp_path / "out.jsonl")


def test_the_same_training_examples_from_either_format(tiny_checkpoint: Path, tmp_path: Path) -> None:
    from ner_export.finetune import load_tokenizer, training_features

    tokenizer = load_tokenizer(str(tiny_checkpoint))
    conll = tmp_path / "docs.conll"
    conll.write_text(DOCUMENTS + "\n" + (SAMPLE / "dev.txt").read_text(encoding="utf-8"), encoding="utf-8")
    conll_to_spans(conll, tmp_path / "docs.json")
    from_conll = read_labeled(conll).sentences
    from_spans = read_labeled(tmp_path / "docs.json").sentences
    labels = sorted({t for s in from_conll for t in s.tags})
    label2id = {label: i for i, label in enumerate(labels)}
    for context, target_tokens in (("none", 0), ("document", 0), ("document", 24)):
        ours = training_features(tokenizer, from_spans, label2id, 48, context, target_tokens, casing=True)
        theirs = training_features(tokenizer, from_conll, label2id, 48, context, target_tokens, casing=True)
        assert ours == theirs
