"""The shared input reader (`ner_export.inputs`): formats, encodings, keys and bad records.

Each reading rule has a test here: a `{`-led line in a .txt file is text, a .json
array is read as JSON, UTF-16/32 are named, a lone \\r stays in its line, a lone surrogate is a bad
record, blank lines take no row, and every record keeps its line number and pass-through fields.
"""

from __future__ import annotations

import codecs
import io
import json
import sys
import warnings
from pathlib import Path

import pytest

from ner_export.inputs import (
    Position,
    expand_inputs,
    read_records,
    resolve_format,
    scan_source,
)
from ner_export.runtime.errors import DataNotFoundError, InputError, NerExportWarning


def _write(path: Path, data: bytes | str) -> Path:
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


def _read(path: Path, fmt: str = "auto", **kw) -> list:
    return list(read_records(str(path), fmt, **kw))


def test_brace_line_in_a_txt_file_is_text(tmp_path: Path) -> None:
    path = _write(tmp_path / "brace.txt", "{Note} Angela Merkel visited Paris.\nJohn lives in London.\n")
    records = _read(path)
    assert [(r.row, r.line, r.text, r.error) for r in records] == [
        (0, 1, "{Note} Angela Merkel visited Paris.", None),
        (1, 2, "John lives in London.", None),
    ]


def test_jsonl_records_keep_fields_rows_and_lines(tmp_path: Path) -> None:
    lines = [
        '{"id": 7, "text": "Angela Merkel visited Paris.", "meta": {"lang": "en"}}',
        "",
        '"a bare string is a text"',
        '{"id": 8, "body": "no text field"}',
        '{"id": 9, "text": 12}',
        "[1, 2]",
        '{"id": 10, "text": "broken',
        "   ",
        '{"text": "last", "id": 11}',
    ]
    path = _write(tmp_path / "in.jsonl", "\n".join(lines) + "\n")
    records = _read(path)
    assert [r.row for r in records] == list(range(7))  # blank lines take no row
    assert [r.line for r in records] == [1, 3, 4, 5, 6, 7, 9]
    good = [r for r in records if r.ok]
    assert [(r.text, r.fields) for r in good] == [
        ("Angela Merkel visited Paris.", {"id": 7, "meta": {"lang": "en"}}),
        ("a bare string is a text", {}),
        ("last", {"id": 11}),
    ]
    errors = {r.line: r.error for r in records if not r.ok}
    assert "no 'text' field" in errors[4] and "'id', 'body'" in errors[4]
    assert errors[5] == "'text' is a number, expected a string"
    assert errors[6] == "expected a JSON object or string, found an array"
    assert errors[7].startswith("not valid JSON")
    bad = next(r for r in records if r.line == 7)
    assert bad.where == f"{path}:7"
    assert bad.error_dict() == {
        "source": str(path),
        "row": 5,
        "line": 7,
        "reason": bad.error,
        "excerpt": '{"id": 10, "text": "broken',
    }


def test_text_field_option(tmp_path: Path) -> None:
    path = _write(tmp_path / "in.jsonl", '{"id": 1, "body": "Paris", "text": "kept as a field"}\n')
    (record,) = _read(path, text_field="body")
    assert record.text == "Paris" and record.fields == {"id": 1, "text": "kept as a field"}


def test_lone_carriage_return_stays_inside_the_line(tmp_path: Path) -> None:
    path = _write(tmp_path / "cr.txt", b"John\rSmith lives in Paris.\r\nsecond line\nthird\r")
    records = _read(path)
    assert [(r.line, r.text) for r in records] == [
        (1, "John\rSmith lives in Paris."),
        (2, "second line"),
        (3, "third\r"),
    ]
    jsonl = _write(tmp_path / "cr.jsonl", b'{"text": "a"}\r\n{"text": "b"}\n')
    assert [r.text for r in _read(jsonl)] == ["a", "b"]


def test_blank_lines_are_counted_but_take_no_row(tmp_path: Path) -> None:
    path = _write(tmp_path / "blank.txt", "first\n\n   \n\t\r\nsecond\n\n")
    records = _read(path)
    assert [(r.row, r.line, r.text) for r in records] == [(0, 1, "first"), (1, 5, "second")]
    scan = scan_source(str(path), "text", shard_size=10)
    assert (scan.rows, scan.blank_lines) == (2, 4)
    # a line of Unicode whitespace is a text (of no entities), not a blank line
    nbsp = _write(tmp_path / "nbsp.txt", "\u00a0\n")
    assert [r.text for r in _read(nbsp)] == ["\u00a0"]


def test_utf8_bom_is_dropped(tmp_path: Path) -> None:
    path = _write(tmp_path / "bom.txt", codecs.BOM_UTF8 + b"Paris\nLondon\n")
    assert [r.text for r in _read(path)] == ["Paris", "London"]
    jsonl = _write(tmp_path / "bom.jsonl", codecs.BOM_UTF8 + b'{"text": "Paris"}\n')
    assert [r.text for r in _read(jsonl)] == ["Paris"]
    array = _write(tmp_path / "bom.json", codecs.BOM_UTF8 + b'["Paris"]')
    assert [r.text for r in _read(array)] == ["Paris"]


@pytest.mark.parametrize(
    ("encoding", "bom", "named"),
    [
        ("utf-16-le", codecs.BOM_UTF16_LE, "UTF-16-LE"),
        ("utf-16-be", codecs.BOM_UTF16_BE, "UTF-16-BE"),
        ("utf-32-le", codecs.BOM_UTF32_LE, "UTF-32-LE"),
        ("utf-32-be", codecs.BOM_UTF32_BE, "UTF-32-BE"),
    ],
)
@pytest.mark.parametrize("with_bom", [True, False])
@pytest.mark.parametrize("suffix", [".txt", ".jsonl", ".json"])
def test_utf16_and_utf32_are_named(
    tmp_path: Path, encoding: str, bom: bytes, named: str, with_bom: bool, suffix: str
) -> None:
    text = (
        '{"text": "Angela Merkel visited Paris."}\n'
        if suffix == ".jsonl"
        else "Angela Merkel visited Paris.\nJohn lives in London.\n"
    )
    if suffix == ".json":
        text = '["Angela Merkel visited Paris."]'
    path = _write(tmp_path / f"wide{suffix}", (bom if with_bom else b"") + text.encode(encoding))
    with pytest.raises(InputError) as info:
        _read(path)
    message = str(info.value)
    assert named in message and str(path) in message and "UTF-8" in message
    assert ("byte order mark" in message) and (("without a byte order mark" in message) != with_bom)
    with pytest.raises(InputError, match=named):
        scan_source(str(path), resolve_format(str(path)), shard_size=10)


def test_nul_bytes_of_no_known_pattern(tmp_path: Path) -> None:
    path = _write(tmp_path / "bin.txt", b"ab\x00cdefgh\x00ij\n")
    with pytest.raises(InputError, match="NUL bytes"):
        _read(path)


def test_undecodable_line_is_one_error_record(tmp_path: Path) -> None:
    path = _write(tmp_path / "latin1.txt", b"Paris\ncaf\xe9 Paris\nLondon\n")
    records = _read(path)
    assert [r.text for r in records] == ["Paris", None, "London"]
    assert records[1].error == "not valid UTF-8: byte 0xE9 at byte 4 of the line" and records[1].line == 2
    assert records[1].excerpt == "caf\\xe9 Paris"


def test_lone_surrogates_are_bad_records(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "s.jsonl",
        '{"text": "Angela Merkel visited Paris."}\n'
        '{"text": "bad \\ud800 x"}\n'
        '{"text": "emoji \\ud83d\\ude00 ok"}\n'
        '{"text": "fine", "note": ["x", "\\udc00"]}\n'
        '{"text": "John lives in London."}\n',
    )
    records = _read(path)
    assert [r.ok for r in records] == [True, False, True, False, True]
    assert records[1].error == "'text' holds a lone surrogate U+D800 at character 4, which is not text"
    assert records[1].excerpt == '{"text": "bad \\ud800 x"}'
    assert records[2].text == "emoji \U0001f600 ok"
    assert "field 'note'[1]" in records[3].error and "U+DC00" in records[3].error
    array = _write(tmp_path / "s.json", '["ok", "bad \\udbff"]')
    assert [r.ok for r in _read(array)] == [True, False]


def test_json_array_of_objects_and_strings(tmp_path: Path) -> None:
    items = [{"id": 1, "text": "Paris"}, "London", {"id": 3, "body": "x"}, 5, {"text": "Berlin", "tags": ["a"]}]
    path = _write(tmp_path / "in.json", json.dumps(items, indent=2))
    records = _read(path)
    assert [(r.row, r.line, r.text) for r in records] == [
        (0, None, "Paris"),
        (1, None, "London"),
        (2, None, None),
        (3, None, None),
        (4, None, "Berlin"),
    ]
    assert records[0].fields == {"id": 1} and records[4].fields == {"tags": ["a"]}
    assert (
        "no 'text' field" in records[2].error and records[3].error == "expected a JSON object or string, found a number"
    )
    assert _read(_write(tmp_path / "empty.json", " [ ] ")) == []


def test_json_array_crossing_many_read_chunks(tmp_path: Path) -> None:
    items = [{"id": i, "text": f"text number {i} " + "x" * (i % 97)} for i in range(5000)]
    items[1234] = {"id": 1234, "text": "long " * 40_000}  # one element longer than several read chunks
    items[2000] = {"id": 2000, "text": "n", "value": 12345678901234567890}
    path = _write(tmp_path / "big.json", json.dumps(items))
    records = _read(path)
    assert [r.text for r in records] == [item["text"] for item in items]
    assert records[2000].fields == {"id": 2000, "value": 12345678901234567890}


def test_json_file_that_is_not_an_array(tmp_path: Path) -> None:
    lines = _write(tmp_path / "lines.json", '{"text": "a"}\n{"text": "b"}\n')
    with pytest.raises(InputError, match="expected a JSON array.*--format jsonl"):
        _read(lines)
    assert [r.text for r in _read(lines, "jsonl")] == ["a", "b"]
    with pytest.raises(InputError, match="empty"):
        _read(_write(tmp_path / "empty.json", "  \n"))


@pytest.mark.parametrize(
    ("content", "good", "problem"),
    [
        ('["a", "b", oops, "c"]', ["a", "b"], "Expecting value at line 1 column 12"),
        ('["a", "b",]', ["a", "b"], "trailing comma"),
        ('["a" "b"]', ["a"], "expected ',' or ']' at line 1 column 6"),
        ('["a", "b"', ["a", "b"], "expected ',' or ']'"),
        ('["a"] ["b"]', ["a"], "unexpected data after the closing ']'"),
        ('[\n"a",\n"unterminated', ["a"], "Unterminated string"),
    ],
)
def test_malformed_json_array_reports_where_it_broke(
    tmp_path: Path, content: str, good: list[str], problem: str
) -> None:
    records = _read(_write(tmp_path / "bad.json", content))
    assert [r.text for r in records[:-1]] == good
    last = records[-1]
    assert not last.ok and last.row == len(good) and "malformed" in last.error and problem in last.error, last.error


def test_format_choice(tmp_path: Path) -> None:
    assert resolve_format("a.jsonl") == resolve_format("b.NDJSON") == "jsonl"
    assert (
        resolve_format("a.txt") == "text"
        and resolve_format("a.json") == "json"
        and resolve_format("a.parquet") == "parquet"
    )
    assert resolve_format("notes.csv", "jsonl") == "jsonl"
    with pytest.warns(NerExportWarning, match=r"notes\.csv: extension '\.csv' not known; read as text"):
        assert resolve_format("notes.csv") == "text"
    with pytest.raises(ValueError):
        resolve_format("a.txt", "xml")
    # an unknown extension whose content starts with { is still text: no guessing from content
    path = _write(tmp_path / "data.log", '{"text": "x"}\n')
    with pytest.warns(NerExportWarning):
        assert [r.text for r in _read(path)] == ['{"text": "x"}']


class _Pipe(io.RawIOBase):
    """A non-seekable byte stream, like a pipe on stdin."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        chunk = self._data.read(min(len(buffer), 1000))
        buffer[: len(chunk)] = chunk
        return len(chunk)


def test_stdin_is_streamed_and_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    lines = "".join(json.dumps({"n": i, "text": f"line {i}"}) + "\n" for i in range(3000))
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BufferedReader(_Pipe(lines.encode()))))
    records = list(read_records("-", "jsonl"))
    assert [(r.source, r.row, r.line, r.text) for r in records[:2]] == [
        ("<stdin>", 0, 1, "line 0"),
        ("<stdin>", 1, 2, "line 1"),
    ]
    assert len(records) == 3000 and records[-1].fields == {"n": 2999}
    monkeypatch.setattr(
        sys, "stdin", io.TextIOWrapper(io.BufferedReader(_Pipe(codecs.BOM_UTF16_LE + "x\n".encode("utf-16-le"))))
    )
    with pytest.raises(InputError, match="<stdin>.*UTF-16-LE"):
        list(read_records("-", "text"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(NerExportWarning, match="stdin as text"):
            resolve_format("-")


def _parquet(path: Path, table) -> Path:
    import pyarrow.parquet as pq

    pq.write_table(table, path, row_group_size=7)
    return path


def test_parquet_records_and_types(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    import datetime

    table = pa.table(
        {
            "id": pa.array(range(20), pa.int32()),
            "text": [None if i == 5 else f"text {i}" for i in range(20)],
            "when": [datetime.date(2024, 1, 1 + i) for i in range(20)],
        }
    )
    path = _parquet(tmp_path / "in.parquet", table)
    records = _read(path)
    assert [r.row for r in records] == list(range(20)) and all(r.line is None for r in records)
    assert records[3].text == "text 3" and records[3].fields == {"id": 3, "when": datetime.date(2024, 1, 4)}
    assert records[5].error == "'text' is null, expected a string" and records[5].where == f"{path} row 5"
    assert [r.row for r in read_records(str(path), start=Position(9), limit=6)] == list(range(9, 15))
    with pytest.raises(InputError, match="no column 'body'.*id, text, when"):
        _read(path, text_field="body")
    with pytest.raises(InputError, match="column 'id' is int32, expected strings"):
        _read(path, text_field="id")
    with pytest.raises(InputError, match="not a readable Parquet file"):
        _read(_write(tmp_path / "fake.parquet", b"not parquet at all"))


@pytest.mark.parametrize("fmt", ["text", "jsonl", "json", "parquet"])
@pytest.mark.parametrize("shard_size", [1, 3, 7, 50])
def test_reading_from_scanned_positions_gives_the_same_records(tmp_path: Path, fmt: str, shard_size: int) -> None:
    texts = [f"sentence {i} in Paris" for i in range(23)]
    if fmt == "text":
        path = _write(tmp_path / "in.txt", "\n".join(t if i % 4 else t + "\n\n" for i, t in enumerate(texts)) + "\n")
    elif fmt == "jsonl":
        path = _write(
            tmp_path / "in.jsonl",
            "".join(json.dumps({"i": i, "text": t}) + ("\n\n" if i % 5 == 0 else "\n") for i, t in enumerate(texts))
            + "{bad\n",
        )
    elif fmt == "json":
        path = _write(tmp_path / "in.json", json.dumps([{"i": i, "text": t} for i, t in enumerate(texts)]))
    else:
        pa = pytest.importorskip("pyarrow")
        path = _parquet(tmp_path / "in.parquet", pa.table({"i": list(range(23)), "text": texts}))
    everything = _read(path, fmt)
    scan = scan_source(str(path), fmt, shard_size=shard_size)
    assert scan.rows == len(everything)
    assert [p.row for p in scan.starts] == list(range(0, scan.rows, shard_size))
    pieces = [r for start in scan.starts for r in read_records(str(path), fmt, start=start, limit=shard_size)]
    assert pieces == everything
    # a start given only by its row works too (walks to it)
    assert list(read_records(str(path), fmt, start=Position(4), limit=3)) == everything[4:7]


def test_expand_inputs(tmp_path: Path) -> None:
    (tmp_path / "b.jsonl").write_text("")
    (tmp_path / "a.txt").write_text("")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.parquet").write_text("")
    (tmp_path / "_manifest.json").write_text("")
    (tmp_path / ".hidden.txt").write_text("")
    (tmp_path / "notes.csv").write_text("")
    root = str(tmp_path)
    assert expand_inputs([root]) == [f"{root}/a.txt", f"{root}/b.jsonl", f"{root}/sub/c.parquet"]
    assert expand_inputs([f"{root}/*.txt", f"{root}/*.jsonl", f"{root}/a.txt"]) == [f"{root}/a.txt", f"{root}/b.jsonl"]
    assert expand_inputs([f"{root}/notes.csv"]) == [f"{root}/notes.csv"]
    with pytest.raises(DataNotFoundError, match="no file matches"):
        expand_inputs([f"{root}/*.xml"])
    with pytest.raises(DataNotFoundError, match="no such file"):
        expand_inputs([f"{root}/missing.txt"])


@pytest.mark.slow
def test_a_million_lines_stream_in_flat_memory(tmp_path: Path) -> None:
    """Reading 1,000,000 JSONL lines holds one line at a time: peak traced memory stays far below the file."""
    import tracemalloc

    path = tmp_path / "million.jsonl"
    with open(path, "w", encoding="utf-8") as handle:
        for i in range(1_000_000):
            handle.write(json.dumps({"id": i, "text": f"Angela Merkel visited Paris on day {i}."}) + "\n")
    size = path.stat().st_size
    tracemalloc.start()
    count = 0
    for record in read_records(str(path)):
        count += record.ok
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert count == 1_000_000
    assert peak < 5_000_000 < size / 10, (peak, size)
