"""One span record at a time: shape detection, every kind of bad record, UTF-16 offsets, document names."""

from __future__ import annotations

from typing import Any

import pytest

from ner_export.runtime.errors import InputError
from ner_export.runtime.span_records import Span, detect_shape, entities_shape, parse_record, utf16_index

TEXT = "Maria Lopez works for Reuters."


@pytest.mark.parametrize(
    ("record", "shape"),
    [
        ({"text": TEXT, "entities": [{"start": 0, "end": 11, "label": "PER"}]}, "entities"),
        ({"text": TEXT, "spans": []}, "spans"),
        ({"text": TEXT, "label": [[0, 11, "PER"]]}, "doccano"),
        ({"data": {"text": TEXT}, "annotations": []}, "label-studio"),
        ({"text": TEXT, "tokens": []}, None),
        (["not", "an", "object"], None),
    ],
)
def test_the_shape_comes_from_the_record_keys(record: Any, shape: str | None) -> None:
    assert detect_shape(record) == shape


def test_the_entities_item_layout_tells_doccano_from_predict_output() -> None:
    assert entities_shape({"entities": [{"start_offset": 0, "end_offset": 5, "label": "PER"}]}) == "doccano-entities"
    assert entities_shape({"entities": [{"start": 0, "end": 5, "label": "PER"}]}) == "entities"
    assert entities_shape({"entities": []}) is None


@pytest.mark.parametrize(
    ("record", "shape"),
    [
        (
            {
                "text": TEXT,
                "entities": [{"start": 22, "end": 29, "label": "ORG"}, {"start": 0, "end": 11, "label": "PER"}],
            },
            "entities",
        ),
        (
            {
                "text": TEXT,
                "spans": [{"start": 0, "end": 11, "label": "PER"}, {"start": 22, "end": 29, "label": "ORG"}],
            },
            "spans",
        ),
        ({"text": TEXT, "label": [[0, 11, "PER"], [22, 29, "ORG"]]}, "doccano"),
        (
            {
                "text": TEXT,
                "entities": [
                    {"start_offset": 0, "end_offset": 11, "label": "PER"},
                    {"start_offset": 22, "end_offset": 29, "label": "ORG"},
                ],
            },
            "doccano-entities",
        ),
        (
            {
                "data": {"text": TEXT},
                "annotations": [
                    {"was_cancelled": True, "result": [{"value": {"start": 0, "end": 5, "labels": ["LOC"]}}]},
                    {
                        "result": [
                            {
                                "type": "labels",
                                "value": {"start": 0, "end": 11, "text": "Maria Lopez", "labels": ["PER"]},
                            },
                            {"type": "relation", "from_id": "a", "to_id": "b"},
                            {"type": "labels", "value": {"start": 22, "end": 29, "labels": ["ORG"]}},
                        ]
                    },
                ],
            },
            "label-studio",
        ),
    ],
)
def test_every_shape_gives_the_same_sorted_spans(record: dict[str, Any], shape: str) -> None:
    parsed = parse_record(record, shape)
    assert parsed.text == TEXT
    assert parsed.spans == (Span(0, 11, "PER"), Span(22, 29, "ORG"))
    assert parsed.document is None


@pytest.mark.parametrize(
    ("record", "problem"),
    [
        ({"spans": []}, "no 'text' field"),
        ({"text": 5, "spans": []}, "'text' is a number, not a string"),
        ({"text": "  ", "spans": []}, "'text' holds no word"),
        ({"text": "a\ud800b", "spans": []}, "lone surrogate U+D800 at character 1"),
        ({"text": TEXT}, "no 'spans' field"),
        ({"text": TEXT, "spans": {}}, "'spans' is an object, not an array"),
        ({"text": TEXT, "spans": [[0, 5, "PER"]]}, "spans[0] is an array, not an object"),
        ({"text": TEXT, "spans": [{"start": 0, "label": "PER"}]}, "spans[0] has no 'end'"),
        ({"text": TEXT, "spans": [{"start": "0", "end": 5, "label": "PER"}]}, 'start is "0", not an integer'),
        ({"text": TEXT, "spans": [{"start": 0, "end": 5.0, "label": "PER"}]}, "end is 5.0, not an integer"),
        ({"text": TEXT, "spans": [{"start": 5, "end": 5, "label": "PER"}]}, "start 5 is not before end 5"),
        ({"text": TEXT, "spans": [{"start": 6, "end": 2, "label": "PER"}]}, "start 6 is not before end 2"),
        ({"text": TEXT, "spans": [{"start": 22, "end": 31, "label": "ORG"}]}, "[22, 31) is outside the text (30 code"),
        ({"text": TEXT, "spans": [{"start": -1, "end": 5, "label": "PER"}]}, "[-1, 5) is outside the text"),
        ({"text": TEXT, "spans": [{"start": 0, "end": 5, "label": ""}]}, "spans[0]: the label is empty"),
        ({"text": TEXT, "spans": [{"start": 0, "end": 5, "label": None}]}, "the label is null, not a string"),
        ({"text": TEXT, "spans": [{"start": 0, "end": 5, "label": "O"}]}, "the label 'O' means outside"),
        (
            {"text": TEXT, "spans": [{"start": 0, "end": 5, "label": "B-PER"}]},
            "is a tag; a span's label is the entity type ('PER')",
        ),
        ({"text": TEXT, "spans": [{"start": 0, "end": 5, "label": "NEW TYPE"}]}, "holds whitespace"),
        (
            {"text": TEXT, "spans": [{"start": 0, "end": 11, "label": "PER"}, {"start": 6, "end": 17, "label": "ORG"}]},
            "overlapping spans: [0, 11) PER and [6, 17) ORG",
        ),
        (
            {"text": TEXT, "spans": [{"start": 0, "end": 11, "label": "PER"}, {"start": 6, "end": 11, "label": "PER"}]},
            "nested spans: [6, 11) PER lies inside [0, 11) PER",
        ),
        (
            {"text": TEXT, "spans": [{"start": 0, "end": 11, "label": "PER"}, {"start": 0, "end": 11, "label": "PER"}]},
            "the span [0, 11) PER appears twice",
        ),
        (
            {"text": TEXT, "spans": [{"start": 0, "end": 5, "label": "PER", "text": "Maria Lopez"}]},
            "spans[0]: its text 'Maria Lopez' differs from the text at [0, 5), 'Maria'",
        ),
        ({"text": TEXT, "doc_id": [1], "spans": []}, "'doc_id' is an array, not a document name"),
        ({"text": TEXT, "meta": {"doc_id": True}, "spans": []}, "'meta.doc_id' is a boolean, not a document name"),
    ],
)
def test_a_bad_record_says_what_is_wrong(record: dict[str, Any], problem: str) -> None:
    with pytest.raises(InputError, match=None) as caught:
        parse_record(record, "spans")
    assert problem in str(caught.value)


@pytest.mark.parametrize(
    ("task", "problem"),
    [
        ({"data": {"text": TEXT}, "annotations": []}, "no annotation: the task was not labelled"),
        (
            {"data": {"text": TEXT}, "annotations": [{"was_cancelled": True, "result": []}]},
            "every annotation was cancelled",
        ),
        ({"data": {"text": TEXT}}, "no 'annotations' field"),
        ({"data": {}, "annotations": []}, "no 'data.text' field"),
        ({"data": {"text": TEXT}, "annotations": [{"id": 1}]}, "no 'annotations[0].result' field"),
        (
            {
                "data": {"text": TEXT},
                "annotations": [{"result": [{"value": {"start": 0, "end": 5, "labels": ["A", "B"]}}]}],
            },
            'annotations[0].result[0].value.labels is ["A", "B"], not one label in an array',
        ),
    ],
)
def test_a_label_studio_task_without_a_usable_annotation_is_bad(task: dict[str, Any], problem: str) -> None:
    with pytest.raises(InputError) as caught:
        parse_record(task, "label-studio")
    assert problem in str(caught.value)


def test_a_record_of_the_wrong_shape_lacks_the_files_span_key() -> None:
    with pytest.raises(InputError, match="no 'label' field"):
        parse_record({"text": TEXT, "spans": []}, "doccano")
    with pytest.raises(InputError, match=r"label\[0\] is \[0, 5\], not \[start, end, label\]"):
        parse_record({"text": TEXT, "label": [[0, 5]]}, "doccano")


EMOJI_TEXT = "🎉 Fans in Tasmania cheered 𝐀𝐁 Lyon United."  # two characters outside the BMP before the entities


def test_utf16_offsets_are_converted_to_code_points() -> None:
    # UTF-16 counts each character outside the BMP as two units
    record = {
        "text": EMOJI_TEXT,
        "spans": [{"start": 11, "end": 19, "label": "LOC"}, {"start": 33, "end": 44, "label": "ORG"}],
    }
    parsed = parse_record(record, "spans", offsets="utf16")
    assert [EMOJI_TEXT[s.start : s.end] for s in parsed.spans] == ["Tasmania", "Lyon United"]
    assert parsed.spans == (Span(10, 18, "LOC"), Span(30, 41, "ORG"))
    # read as code points, the same offsets are one character off, and the second span passes the end
    with pytest.raises(InputError, match=r"spans\[1\]: \[33, 44\) is outside the text \(42 code points\)"):
        parse_record(record, "spans")
    shifted = parse_record({"text": EMOJI_TEXT, "spans": record["spans"][:1]}, "spans")
    assert [EMOJI_TEXT[s.start : s.end] for s in shifted.spans] == ["asmania "]


def test_a_span_text_says_when_the_other_offset_unit_would_match() -> None:
    record = {"text": EMOJI_TEXT, "spans": [{"start": 11, "end": 19, "label": "LOC", "text": "Tasmania"}]}
    with pytest.raises(InputError, match="the offsets count UTF-16 code units: read the file with offsets utf16"):
        parse_record(record, "spans")
    assert parse_record(record, "spans", offsets="utf16").spans == (Span(10, 18, "LOC"),)
    by_code_points = {"text": EMOJI_TEXT, "spans": [{"start": 10, "end": 18, "label": "LOC", "text": "Tasmania"}]}
    with pytest.raises(InputError, match="the offsets count code points: read the file with offsets codepoints"):
        parse_record(by_code_points, "spans", offsets="utf16")


def test_utf16_offsets_that_split_a_character_or_pass_the_end_are_bad() -> None:
    with pytest.raises(InputError, match=r"\[1, 6\) cuts a character outside the BMP in half"):
        parse_record({"text": EMOJI_TEXT, "spans": [{"start": 1, "end": 6, "label": "X"}]}, "spans", offsets="utf16")
    units = len(EMOJI_TEXT.encode("utf-16-le")) // 2
    assert units == len(EMOJI_TEXT) + 3
    with pytest.raises(InputError, match=f"outside the text \\({units} UTF-16 code units\\)"):
        parse_record(
            {"text": EMOJI_TEXT, "spans": [{"start": 0, "end": units + 1, "label": "X"}]}, "spans", offsets="utf16"
        )


def test_utf16_index() -> None:
    assert utf16_index("plain ascii and é") is None
    assert utf16_index("a🎉b") == [0, 1, -1, 2, 3]


@pytest.mark.parametrize(
    ("record", "document"),
    [
        ({"doc_id": "d1"}, "d1"),
        ({"document": 7}, 7),
        ({"meta": {"doc_id": "m"}}, "m"),
        ({"doc_id": None, "document": "second"}, "second"),
        ({"meta": {"source": "x"}}, None),
    ],
)
def test_a_record_names_its_document(record: dict[str, Any], document: str | int | None) -> None:
    assert parse_record({"text": TEXT, "spans": [], **record}, "spans").document == document


def test_a_label_studio_task_names_its_document_in_data() -> None:
    task = {"data": {"text": TEXT, "doc_id": "ls"}, "annotations": [{"result": []}]}
    assert parse_record(task, "label-studio").document == "ls"


def test_unknown_shape_or_offset_unit_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="shape must be one of"):
        parse_record({"text": TEXT}, "conll")
    with pytest.raises(ValueError, match="offsets must be one of"):
        parse_record({"text": TEXT, "spans": []}, "spans", offsets="bytes")
