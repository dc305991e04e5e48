"""read_labeled: CoNLL or span files to the same sentences, documents gathered, and what was used reported."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ner_export.runtime.conll import read_conll
from ner_export.runtime.errors import DataFormatError
from ner_export.runtime.labeled_data import (
    MisalignedSpansWarning,
    SkippedRecordsWarning,
    data_format_of,
    read_labeled,
)

DATA = Path(__file__).parent / "data" / "spans"
SAMPLE = Path(__file__).resolve().parents[1] / "finetune" / "sample"
FORMATS = [
    ("entities.jsonl", "codepoints"),
    ("spans.jsonl", "codepoints"),
    ("doccano.jsonl", "codepoints"),
    ("doccano_entities.ndjson", "codepoints"),
    ("label_studio.json", "utf16"),
]
SENTENCES = [
    (
        ("Angela", "Merkel", "met", "Emmanuel", "Macron", "in", "Paris."),
        ("B-PER", "I-PER", "O", "B-PER", "I-PER", "O", "B-LOC"),
        0,
    ),
    (("Reuters", "reported", "that", "Airbus", "shares", "rose."), ("B-ORG", "O", "O", "B-ORG", "O", "O"), 0),
    (
        ("🎉", "Fans", "in", "Tasmania", "cheered", "𝐀𝐁", "Lyon", "United."),
        ("O", "O", "O", "B-LOC", "O", "O", "B-ORG", "I-ORG"),
        1,
    ),
]


def _write(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    return path


@pytest.mark.parametrize(("name", "offsets"), FORMATS)
def test_every_span_format_gives_the_same_sentences_and_documents(name: str, offsets: str) -> None:
    data = read_labeled(DATA / name, offsets=offsets)
    assert [(s.words, s.tags, s.document) for s in data.sentences] == SENTENCES
    report = data.report
    assert (report.data_format, report.records, report.spans, report.documents) == ("spans", 3, 7, 2)
    assert report.bad == () and report.misaligned == ()
    assert report.summary().endswith(", 3 records, 7 entities, 2 document(s)")


def test_a_conll_file_is_read_by_read_conll() -> None:
    data = read_labeled(SAMPLE / "dev.txt")
    assert data.sentences == read_conll(SAMPLE / "dev.txt")
    assert (data.report.data_format, data.report.shape, data.report.records) == ("conll", "", 130)
    assert data.report.spans == 306 and data.report.documents == 1


def test_the_format_follows_the_extension_unless_named(tmp_path: Path) -> None:
    assert data_format_of("train.JSONL") == "spans"
    assert data_format_of("train.conll") == "conll"
    assert data_format_of("train.txt", "spans") == "spans"
    with pytest.raises(ValueError, match="data_format must be one of auto, conll, spans"):
        data_format_of("x.txt", "csv")
    named = tmp_path / "spans.txt"
    named.write_bytes((DATA / "spans.jsonl").read_bytes())
    with pytest.raises(DataFormatError):  # never sniffed: a .txt file is CoNLL unless told otherwise
        read_labeled(named)
    assert len(read_labeled(named, data_format="spans").sentences) == 3
    with pytest.raises(DataFormatError):
        read_labeled(DATA / "spans.jsonl", data_format="conll")


def test_records_of_one_document_are_gathered_in_file_order(tmp_path: Path) -> None:
    records = [
        {"text": "a1", "spans": [], "doc_id": "A"},
        {"text": "b1", "spans": [], "doc_id": "B"},
        {"text": "loose", "spans": []},
        {"text": "a2", "spans": [], "doc_id": "A"},
        {"text": "one", "spans": [], "doc_id": 1},
        {"text": "one as text", "spans": [], "doc_id": "1"},
        {"text": "loose too", "spans": [], "meta": {}},
    ]
    data = read_labeled(_write(tmp_path / "docs.jsonl", records))
    found = [(" ".join(s.words), s.document, s.line) for s in data.sentences]
    assert found == [
        ("a1", 0, 1),
        ("a2", 0, 4),
        ("b1", 1, 2),
        ("loose", 2, 3),
        ("loose too", 2, 7),
        ("one", 3, 5),
        ("one as text", 4, 6),
    ]
    assert data.report.documents == 5


def test_skipped_records_are_reported_and_announced() -> None:
    with pytest.warns(SkippedRecordsWarning, match=r"bad.jsonl:2: overlapping spans.*10 bad record\(s\) skipped"):
        data = read_labeled(DATA / "bad.jsonl", skip_bad=True)
    assert [" ".join(s.words) for s in data.sentences] == ["Maria Lopez works for Reuters.", "London is bigger."]
    assert (data.report.records, data.report.spans, len(data.report.bad)) == (2, 3, 10)
    assert data.report.summary().endswith("; 10 bad record(s) skipped")
    assert data.report.to_dict()["bad_records"][0]["line"] == 2
    with pytest.raises(DataFormatError, match=r"bad.jsonl:2: overlapping spans"):
        read_labeled(DATA / "bad.jsonl")


def test_misaligned_spans_are_reported_counted_and_announced(tmp_path: Path) -> None:
    records = [
        {"text": "the Paris-based firm", "spans": [{"start": 4, "end": 9, "label": "LOC"}]},
        {"text": "in Paris, today", "spans": [{"start": 3, "end": 8, "label": "LOC"}]},
        {"text": "the Paris-based firm", "spans": [{"start": 10, "end": 15, "label": "X"}]},
    ]
    path = _write(tmp_path / "cut.jsonl", records)
    with pytest.warns(
        MisalignedSpansWarning, match=r"cut.jsonl:1: span \[4, 9\) LOC 'Paris' cuts 'Paris-based'.*\(2 such"
    ):
        data = read_labeled(path)
    assert [s.tags for s in data.sentences] == [("O", "B-LOC", "O"), ("O", "B-LOC", "O"), ("O", "O", "O")]
    assert data.report.spans == 2  # the dropped span labels no word
    assert [(m.line, m.misaligned.labelled) for m in data.report.misaligned] == [(1, True), (3, False)]
    assert data.report.to_dict()["misaligned_spans"][1] == {
        "source": str(path),
        "row": 2,
        "line": 3,
        "start": 10,
        "end": 15,
        "label": "X",
        "text": "based",
        "words": "Paris-based",
        "labelled": False,
    }
    assert data.report.summary().endswith("; 2 span(s) not aligned with words")
    assert data.report.counts() == {
        "path": str(path),
        "data_format": "spans",
        "shape": "spans",
        "records": 3,
        "spans": 2,
        "documents": 1,
        "bad_records": 0,
        "misaligned_spans": 2,
    }


def test_unknown_offset_unit_is_refused() -> None:
    with pytest.raises(ValueError, match="offsets must be one of"):
        read_labeled(DATA / "spans.jsonl", offsets="utf8")


def test_the_data_warnings_live_in_the_one_tree_and_still_import_from_here() -> None:
    from ner_export.runtime import errors, labeled_data

    for name in ("SkippedRecordsWarning", "MisalignedSpansWarning"):
        assert getattr(labeled_data, name) is getattr(errors, name)
        assert issubclass(getattr(errors, name), errors.NerExportWarning) and name in errors.__all__
        assert name in (errors.__doc__ or "")


def test_a_skipped_records_warning_holds_every_skipped_record_and_a_summary_reads_counts() -> None:
    from ner_export.runtime.labeled_data import report_summary

    with pytest.warns(SkippedRecordsWarning) as caught:
        data = read_labeled(DATA / "bad.jsonl", skip_bad=True)
    (warning,) = [w.message for w in caught if isinstance(w.message, SkippedRecordsWarning)]
    assert warning.records == tuple(b.message for b in data.report.bad) and len(warning.records) == 10
    assert warning.records[0].startswith(f"{DATA / 'bad.jsonl'}:2: overlapping spans")
    assert report_summary(data.report.counts()) == data.report.summary()
