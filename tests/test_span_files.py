"""Span files: every shipped format read alike, records placed by their line, bad records stopped or skipped."""

from __future__ import annotations

from pathlib import Path

import pytest

from ner_export.runtime.errors import DataFormatError, DataNotFoundError
from ner_export.runtime.span_files import is_span_file, read_span_file
from ner_export.runtime.span_records import Span

DATA = Path(__file__).parent / "data" / "spans"
FORMATS = [
    ("entities.jsonl", "entities", "codepoints"),
    ("spans.jsonl", "spans", "codepoints"),
    ("doccano.jsonl", "doccano", "codepoints"),
    ("doccano_entities.ndjson", "doccano-entities", "codepoints"),
    ("label_studio.json", "label-studio", "utf16"),
]
EXPECTED = [
    ("a", [("Angela Merkel", "PER"), ("Emmanuel Macron", "PER"), ("Paris", "LOC")]),
    ("a", [("Reuters", "ORG"), ("Airbus", "ORG")]),
    ("b", [("Tasmania", "LOC"), ("Lyon United", "ORG")]),
]


@pytest.mark.parametrize(("name", "shape", "offsets"), FORMATS)
def test_every_format_reads_to_the_same_records(name: str, shape: str, offsets: str) -> None:
    read = read_span_file(DATA / name, offsets=offsets)
    assert read.shape == shape
    assert read.bad == ()
    assert read.spans == 7
    found = [(r.document, [(r.text[s.start : s.end], s.label) for s in r.spans]) for r in read.records]
    assert found == EXPECTED
    assert [r.row for r in read.records] == [0, 1, 2]


def test_records_of_a_json_array_keep_the_line_they_start_on() -> None:
    read = read_span_file(DATA / "label_studio.json", offsets="utf16")
    lines = (DATA / "label_studio.json").read_text(encoding="utf-8").split("\n")
    assert [lines[r.line - 1] for r in read.records] == ["  {"] * 3
    assert [lines[r.line] for r in read.records] == [f'    "id": {n},' for n in (1, 2, 3)]


def test_label_studio_offsets_read_as_code_points_are_caught_by_the_span_text() -> None:
    with pytest.raises(DataFormatError, match="record 3: .*the offsets count UTF-16 code units") as caught:
        read_span_file(DATA / "label_studio.json")
    assert str(caught.value).startswith(f"{DATA / 'label_studio.json'}:")


BAD = DATA / "bad.jsonl"
BAD_LINES = {
    2: "overlapping spans: [0, 11) PER and [6, 17) ORG",
    3: "nested spans: [8, 13) LOC lies inside [0, 13) ORG",
    4: "spans[0]: start 5 is not before end 5",
    5: "spans[0]: [0, 40) is outside the text (13 code points)",
    6: "no 'text' field",
    7: "spans[0]: the label is empty",
    8: "no 'spans' field (the file's first record has it)",
    9: "not valid JSON (Expecting value at column 37)",
    12: "expected a JSON object, got an array",
    13: "spans[0]: the label 'B-LOC' is a tag; a span's label is the entity type ('LOC')",
}


def test_a_bad_record_stops_the_reading_with_one_line_naming_file_and_line() -> None:
    with pytest.raises(DataFormatError) as caught:
        read_span_file(BAD)
    message = str(caught.value)
    assert message.startswith(f'{BAD}:2: overlapping spans: [0, 11) PER and [6, 17) ORG: \'{{"text"')
    assert "\n" not in message
    assert (caught.value.path, caught.value.line_number) == (str(BAD), 2)


def test_skip_bad_lists_every_bad_record_and_keeps_the_good_ones() -> None:
    read = read_span_file(BAD, skip_bad=True)
    assert {b.line: b.reason for b in read.bad} == BAD_LINES
    assert [r.line for r in read.records] == [1, 11]
    assert [r.row for r in read.records] == [0, 9]  # the blank line 10 is no record
    assert read.spans == 3
    report = read.bad[0].error_dict()
    assert set(report) == {"source", "row", "line", "reason", "excerpt"}
    assert report["row"] == 1 and report["excerpt"].startswith('{"text": "Maria Lopez')


def test_the_first_record_without_a_span_key_stops_the_file_even_with_skip_bad(tmp_path: Path) -> None:
    path = tmp_path / "plain.jsonl"
    path.write_text('{"text": "Paris is big.", "tokens": []}\n', encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"plain.jsonl:1: no span key: the first record must name its spans"):
        read_span_file(path, skip_bad=True)


def test_the_shape_is_detected_from_the_first_object(tmp_path: Path) -> None:
    path = tmp_path / "late.jsonl"
    path.write_text('not json\n{"text": "Paris is big.", "label": [[0, 5, "LOC"]]}\n', encoding="utf-8")
    read = read_span_file(path, skip_bad=True)
    assert read.shape == "doccano" and read.records[0].spans == (Span(0, 5, "LOC"),)
    assert [b.line for b in read.bad] == [1]


def test_an_entities_file_settles_its_item_layout_at_its_first_entity(tmp_path: Path) -> None:
    path = tmp_path / "doccano.jsonl"
    lines = [
        '{"text": "No one here.", "entities": []}',
        '{"text": "Paris is big.", "entities": [{"start_offset": 0, "end_offset": 5, "label": "LOC"}]}',
        '{"text": "Lyon is big.", "entities": [{"start": 0, "end": 4, "label": "LOC"}]}',
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    read = read_span_file(path, skip_bad=True)
    assert read.shape == "doccano-entities"
    assert [r.line for r in read.records] == [1, 2]
    assert [b.reason for b in read.bad] == ["entities[0] has no 'start_offset'"]


def test_json_lines_that_are_not_utf8_are_bad_records(tmp_path: Path) -> None:
    path = tmp_path / "latin1.jsonl"
    good = b'{"text": "Paris is big.", "spans": []}\n'
    path.write_bytes(b"\xef\xbb\xbf" + good + '{"text": "Zürich", "spans": []}\n'.encode("latin-1"))
    read = read_span_file(path, skip_bad=True)
    assert len(read.records) == 1
    assert read.bad[0].reason == "not valid UTF-8 (byte 0xFC at byte 11)"


@pytest.mark.parametrize(
    ("content", "line", "problem"),
    [
        ('{"text": "a", "spans": []}', 1, "a .json span file holds one JSON array of records"),
        ('[\n  {"text": "a", "spans": []},\n  {"text": "b", "spans": [}\n]', 3, "not valid JSON (Expecting value"),
        ('[\n  {"text": "a", "spans": []}\n  {"text": "b"}\n]', 3, "expected ',' or ']' after a record"),
        ('[\n  {"text": "a", "spans": []}\n]\n]', 4, "text after the array's closing ']'"),
        ('[\n  {"text": "a", "spans": []},', 2, "not valid JSON (Expecting value"),
        ("[]", 1, "the file holds no usable record"),
    ],
)
def test_a_broken_json_array_stops_the_file_at_its_line(tmp_path: Path, content: str, line: int, problem: str) -> None:
    path = tmp_path / "broken.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataFormatError, match=None) as caught:
        read_span_file(path, skip_bad=True)
    assert caught.value.line_number == line
    assert problem in caught.value.problem


def test_a_bad_array_record_names_its_number(tmp_path: Path) -> None:
    path = tmp_path / "tasks.json"
    path.write_text(
        '[\n  {"text": "a b", "spans": []},\n  {"text": "a b", "spans": [{"start": 0}]}\n]', encoding="utf-8"
    )
    with pytest.raises(DataFormatError, match=r"tasks.json:3: record 2: spans\[0\] has no 'end'"):
        read_span_file(path)


def test_a_file_of_bad_records_only_or_no_records_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "empty.jsonl"
    path.write_text("\n\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match="the file holds no usable record"):
        read_span_file(path)
    path.write_text("[1]\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match=r"no usable record \(1 bad record\(s\) skipped\)"):
        read_span_file(path, skip_bad=True)


def test_a_missing_file_and_an_unknown_offset_unit() -> None:
    with pytest.raises(DataNotFoundError, match="no such file"):
        read_span_file(DATA / "missing.jsonl")
    with pytest.raises(ValueError, match="offsets must be one of codepoints, utf16"):
        read_span_file(BAD, offsets="bytes")


@pytest.mark.parametrize(
    ("name", "expected"), [("a.jsonl", True), ("a.NDJSON", True), ("a.json", True), ("a.txt", False)]
)
def test_span_files_are_known_by_their_extension(name: str, expected: bool) -> None:
    assert is_span_file(name) is expected
