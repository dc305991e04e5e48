"""`ner-export predict` on files and stdin: one bad record loses nothing,
formats are never guessed from content, every row joins back to its input, output streams."""

from __future__ import annotations

import codecs
import json
import os
import select
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from ner_export.cli import cli
from ner_export.runtime import NerModel


def _predict(bundle: Path, *args: object, input: str | bytes | None = None):
    return CliRunner().invoke(cli, ["predict", str(bundle), *map(str, args)], input=input)


def _rows(result) -> list[dict]:
    return [json.loads(line) for line in result.stdout.splitlines()]


def _write(path: Path, data: str | bytes) -> Path:
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


SURROGATE_JSONL = (
    '{"text": "Angela Merkel visited Paris."}\n{"text": "bad \\ud800 x"}\n{"text": "John lives in London."}\n'
)


# --------------------------------------------------------------------------- item 1: bad text loses nothing
def test_a_lone_surrogate_line_is_skipped_and_every_other_line_kept(tiny_bundle: Path, tmp_path: Path) -> None:
    path = _write(tmp_path / "s.jsonl", SURROGATE_JSONL)
    result = _predict(tiny_bundle, "--input", path, "--skip-bad", "--precision", "fp32")  # fp32: batch-invariant
    assert result.exit_code == 0, result.output
    rows = _rows(result)
    assert [(r["line"], r["text"]) for r in rows] == [(1, "Angela Merkel visited Paris."), (3, "John lives in London.")]
    expected = NerModel.load(tiny_bundle, precision="fp32").predict([r["text"] for r in rows])
    assert [r["entities"] for r in rows] == [[e.to_dict() for e in row] for row in expected]
    assert result.stderr.splitlines()[0] == (
        f"skipped {path}:2: 'text' holds a lone surrogate U+D800 at character 4, which is not text"
    )
    assert "2 row(s) written, 1 bad record(s) skipped (3 records in)" in result.stderr


def test_without_skip_bad_the_rows_before_the_bad_line_are_written(tiny_bundle: Path, tmp_path: Path) -> None:
    path = _write(tmp_path / "s.jsonl", SURROGATE_JSONL)
    result = _predict(tiny_bundle, "--input", path)
    assert result.exit_code == 1
    assert [r["line"] for r in _rows(result)] == [1]
    assert result.stderr.splitlines() == [
        f"Error: {path}:2: 'text' holds a lone surrogate U+D800 at character 4, which is not text; "
        "stopped there, 1 row(s) before it written (--skip-bad skips bad records)"
    ]


def test_an_argument_that_is_not_utf8_is_bad_input(tiny_bundle: Path) -> None:
    """Real argv bytes: Python hands the CLI surrogate escapes, which must not reach the tokenizer."""
    argv = [sys.executable, "-m", "ner_export", "predict", str(tiny_bundle), b"caf\xe9 Paris", "John Smith"]
    stopped = subprocess.run(argv, capture_output=True)
    assert stopped.returncode == 1 and stopped.stdout == b""
    assert stopped.stderr.decode().splitlines() == [
        "Error: argument 1: not valid UTF-8: byte 0xE9 at character 3; stopped there, 0 row(s) before it written "
        "(--skip-bad skips bad records)"
    ]
    skipped = subprocess.run([*argv, "--skip-bad"], capture_output=True)
    assert skipped.returncode == 0, skipped.stderr
    rows = [json.loads(line) for line in skipped.stdout.decode().splitlines()]
    assert [(r["argument"], r["text"]) for r in rows] == [(2, "John Smith")]
    assert skipped.stderr.decode().splitlines()[0] == "skipped argument 1: not valid UTF-8: byte 0xE9 at character 3"
    # a lone surrogate given through the API-level str (no bytes behind it) is named as such
    lone = _predict(tiny_bundle, "ok", "bad \ud800", "--skip-bad")
    assert lone.exit_code == 0 and [r["argument"] for r in _rows(lone)] == [1]
    assert "skipped argument 2: a lone surrogate U+D800 at character 4" in lone.stderr


def test_output_starts_before_stdin_closes(tiny_bundle: Path) -> None:
    """A producer writes one line and waits for its answer: predict must answer without waiting for EOF."""
    command = [sys.executable, "-m", "ner_export", "predict", str(tiny_bundle), "--input", "-", "--format", "jsonl"]
    pipes = dict(stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    with subprocess.Popen(command, env={**os.environ, "HF_HUB_OFFLINE": "1"}, **pipes) as process:
        try:
            assert process.stdin is not None and process.stdout is not None
            answers = []
            for n, text in enumerate(["John Smith lives in Paris.", "Maria Lopez works for Reuters."], start=1):
                process.stdin.write(json.dumps({"id": n, "text": text}).encode() + b"\n")
                process.stdin.flush()
                ready, _, _ = select.select([process.stdout], [], [], 60)
                assert ready, f"no output for line {n} within 60 s while stdin stayed open"
                answers.append(json.loads(process.stdout.readline()))
            assert [(a["line"], a["id"], a["text"]) for a in answers] == [
                (1, 1, "John Smith lives in Paris."),
                (2, 2, "Maria Lopez works for Reuters."),
            ]
            process.stdin.close()
            assert process.wait(60) == 0 and process.stdout.read() == b""
        finally:
            process.kill()


# --------------------------------------------------------------------------- item 3: formats are never guessed
def test_a_text_line_starting_with_a_brace_is_text(tiny_bundle: Path, tmp_path: Path) -> None:
    path = _write(tmp_path / "brace.txt", "{Note} Angela Merkel visited Paris.\nJohn lives in London.\n")
    for extra in ((), ("--skip-bad",)):
        result = _predict(tiny_bundle, "--input", path, *extra)
        assert result.exit_code == 0 and result.stderr == "", result.output
        assert [(r["line"], r["text"]) for r in _rows(result)] == [
            (1, "{Note} Angela Merkel visited Paris."),
            (2, "John lives in London."),
        ]


def test_a_json_array_is_read_as_json(tiny_bundle: Path, tmp_path: Path) -> None:
    path = _write(tmp_path / "in.json", json.dumps([{"id": "a", "text": "John Smith"}, "Paris", {"text": "Tokyo"}]))
    result = _predict(tiny_bundle, "--input", path)
    assert result.exit_code == 0, result.output
    assert [(r.get("id"), r["row"], r["text"]) for r in _rows(result)] == [
        ("a", 0, "John Smith"),
        (None, 1, "Paris"),
        (None, 2, "Tokyo"),
    ]
    objects = _write(tmp_path / "lines.json", '{"text": "a"}\n{"text": "b"}\n')
    refused = _predict(tiny_bundle, "--input", objects)
    assert refused.exit_code == 1 and "pass --format jsonl" in refused.stderr
    assert [r["text"] for r in _rows(_predict(tiny_bundle, "--input", objects, "--format", "jsonl"))] == ["a", "b"]


@pytest.mark.parametrize(
    "data, encoding",
    [
        ("John lives in Paris.\nMaria works.\n".encode("utf-16-le"), "UTF-16-LE without a byte order mark"),
        (codecs.BOM_UTF16_LE + "John lives in Paris.\n".encode("utf-16-le"), "UTF-16-LE (it starts with"),
        ("John lives in Paris.\n".encode("utf-16-be"), "UTF-16-BE without a byte order mark"),
        (codecs.BOM_UTF32_LE + "John\n".encode("utf-32-le"), "UTF-32-LE (it starts with"),
    ],
)
def test_utf16_and_utf32_are_named(tiny_bundle: Path, tmp_path: Path, data: bytes, encoding: str) -> None:
    path = _write(tmp_path / "wide.txt", data)
    result = _predict(tiny_bundle, "--input", path, "--skip-bad")
    assert result.exit_code == 1 and result.stdout == ""
    assert result.stderr.startswith(f"Error: {path}: the file") and encoding in result.stderr
    assert len(result.stderr.splitlines()) == 1


def test_lines_split_on_newline_and_crlf_only(tiny_bundle: Path, tmp_path: Path) -> None:
    path = _write(tmp_path / "cr.txt", b"John lives\rin Paris\r\nMaria works\n")
    result = _predict(tiny_bundle, "--input", path)
    assert [(r["line"], r["text"]) for r in _rows(result)] == [(1, "John lives\rin Paris"), (2, "Maria works")]


def test_an_unknown_extension_is_read_as_text_and_says_so(tiny_bundle: Path, tmp_path: Path) -> None:
    path = _write(tmp_path / "notes.dat", '{"text": "a"}\nParis\n')
    result = _predict(tiny_bundle, "--input", path)
    assert result.exit_code == 0 and [r["text"] for r in _rows(result)] == ['{"text": "a"}', "Paris"]
    assert result.stderr.startswith(f"warning: {path}: extension '.dat' not known; read as text")
    stdin = _predict(tiny_bundle, "--input", "-", input="Paris\n")
    assert stdin.exit_code == 0 and "reading stdin as text" in stdin.stderr
    quiet = _predict(tiny_bundle, "--input", "-", "--format", "text", input="Paris\n")
    assert quiet.exit_code == 0 and quiet.stderr == "" and _rows(quiet)[0]["text"] == "Paris"


# --------------------------------------------------------------------------- item 4: rows join back to the input
def test_rows_carry_their_line_and_the_inputs_other_fields(tiny_bundle: Path, tmp_path: Path) -> None:
    lines = [
        '{"id": 1, "text": "John Smith lives in Paris.", "meta": {"lang": "en", "tags": [1, 2]}}',
        "",
        '{"id": 2, "txt": "no text field"}',
        "   ",
        '{"id": 3, "text": "Maria works for Reuters.", "score": null}',
        "{broken json",
        '"a bare string"',
        '{"id": 4, "line": 9, "text": "a field named like the key"}',
        '{"id": 5, "text": "last"}',
    ]
    path = _write(tmp_path / "in.jsonl", "\n".join(lines) + "\n")
    errors = tmp_path / "errors.jsonl"
    result = _predict(tiny_bundle, "--input", path, "--errors", errors)
    assert result.exit_code == 0, result.output
    rows = _rows(result)
    assert [list(r) for r in rows] == [
        ["line", "id", "meta", "text", "entities"],
        ["line", "id", "score", "text", "entities"],
        ["line", "text", "entities"],
        ["line", "id", "text", "entities"],
    ]
    assert [(r["line"], r.get("id")) for r in rows] == [(1, 1), (5, 3), (7, None), (9, 5)]
    assert rows[0]["meta"] == {"lang": "en", "tags": [1, 2]} and rows[1]["score"] is None
    for row in rows:
        assert lines[row["line"] - 1].find(json.dumps(row["text"])[1:-1]) >= 0  # the row's text is on its line
    reported = [json.loads(line) for line in errors.read_text().splitlines()]
    assert [(e["line"], e["row"]) for e in reported] == [(3, 1), (6, 3), (8, 5)]
    assert reported[0]["reason"] == "no 'text' field (the object has: 'id', 'txt')"
    assert reported[1]["reason"].startswith("not valid JSON")
    assert reported[2]["reason"] == "field 'line' clashes with the output key of that name; rename it"
    non_blank = sum(1 for line in lines if line.strip())
    assert len(rows) + len(reported) == non_blank == 7
    assert result.stderr.splitlines() == [
        f"4 row(s) written, 3 bad record(s) skipped, listed in {errors} (7 records in)"
    ]


def test_text_field_names_the_text_in_and_out(tiny_bundle: Path, tmp_path: Path) -> None:
    path = _write(tmp_path / "in.jsonl", '{"body": "John Smith", "text": "kept as a field"}\n')
    result = _predict(tiny_bundle, "--input", path, "--text-field", "body")
    assert result.exit_code == 0, result.output
    assert [(k, v) for k, v in _rows(result)[0].items() if k != "entities"] == [
        ("line", 1),
        ("text", "kept as a field"),
        ("body", "John Smith"),
    ]
    refused = _predict(tiny_bundle, "--input", path, "--text-field", "entities")
    assert refused.exit_code == 2 and "output keys" in refused.output


def test_arguments_and_a_file_in_one_call(tiny_bundle: Path, tmp_path: Path) -> None:
    path = _write(tmp_path / "in.txt", "Paris\n\nLondon\n")
    result = _predict(tiny_bundle, "John", "Maria", "--input", path)
    assert [(list(r)[0], list(r.values())[0], r["text"]) for r in _rows(result)] == [
        ("argument", 1, "John"),
        ("argument", 2, "Maria"),
        ("line", 1, "Paris"),
        ("line", 3, "London"),
    ]


def test_parquet_input_keeps_its_columns(tiny_bundle: Path, tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow", reason="Parquet input needs pyarrow (the annotate extra)")
    import pyarrow.parquet as pq

    path = tmp_path / "in.parquet"
    pq.write_table(pa.table({"doc": [10, 11], "text": ["John Smith", "Paris"]}), path)
    rows = _rows(_predict(tiny_bundle, "--input", path))
    assert [(r["row"], r["doc"], r["text"]) for r in rows] == [(0, 10, "John Smith"), (1, 11, "Paris")]


# --------------------------------------------------------------------------- item 1: memory stays flat
def _peak_rss_kb(bundle: Path, path: Path) -> tuple[int, int]:
    code = (
        "import resource, sys\n"
        "from ner_export.cli import main\n"
        "bundle, path = sys.argv[1:]\n"
        "sys.argv = ['ner-export', 'predict', bundle, '--input', path, '--format', 'text', '--threads', '1']\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as exc:\n"
        "    print(exc.code, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n"
    )
    lines = 0
    with subprocess.Popen(
        [sys.executable, "-c", code, str(bundle), str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    ) as process:
        assert process.stdout is not None and process.stderr is not None
        for _ in process.stdout:
            lines += 1
        status, peak = process.stderr.read().decode().split()[-2:]
    assert status == "0"
    return lines, int(peak)


@pytest.mark.slow
def test_memory_stays_flat_over_a_million_lines(tiny_bundle: Path, tmp_path: Path) -> None:
    """Peak RSS of predict on 1,000,000 lines is that of 20,000 lines, give or take allocator noise."""
    sizes = {}
    for n in (20_000, 1_000_000):
        path = tmp_path / f"{n}.txt"
        with open(path, "w", encoding="utf-8") as handle:
            for i in range(n):
                handle.write(f"Paris {i}\n" if i % 7 else "\n")
        started = time.monotonic()
        lines, peak_kb = _peak_rss_kb(tiny_bundle, path)
        assert lines == n - len(range(0, n, 7))  # blank lines are not records
        sizes[n] = peak_kb
        print(f"{n} lines: peak RSS {peak_kb / 1024:.0f} MB, {time.monotonic() - started:.0f} s")
    assert sizes[1_000_000] - sizes[20_000] < 30 * 1024, sizes


# --------------------------------------------------------------------------- the streaming loop itself
class _CountingModel:
    """Stands in for a NerModel: no entities, and a log of the texts of each predict call."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def predict(self, texts: list[str], batch_size: int = 32) -> list[list]:
        self.calls.append(list(texts))
        return [[] for _ in texts]


def _records(texts, fail_after: int | None = None, answered: threading.Event | None = None):
    """Records of `texts`; with `answered`, each line after the first is read only once the row before it
    is out (`answered` set), as a producer that waits for each answer would write it."""
    from ner_export.inputs import Record
    from ner_export.runtime import InputError

    for i, text in enumerate(texts):
        if fail_after is not None and i == fail_after:
            raise InputError(f"in.txt: cannot read line {i + 1} onwards")
        if i and answered is not None:
            if not answered.wait(30):
                raise AssertionError(f"line {i} was not answered within 30 s while line {i + 1} waited for it")
            answered.clear()
        yield Record("in.txt", i, i + 1, text, {})


def test_a_chunk_closes_after_max_wait_so_slow_input_is_answered_line_by_line() -> None:
    from ner_export.annotate.stream import predict_stream

    model, written = _CountingModel(), []
    answered = threading.Event()

    def write(line: str) -> None:
        written.append(json.loads(line)["text"])
        answered.set()

    # the next line is read only after the row before it is out: only a chunk closed by max_wait gets there
    records = _records(["a", "b", "c"], answered=answered)
    counts = predict_stream(model, records, write, max_wait=0.05, chunk_size=100)
    assert written == ["a", "b", "c"] and model.calls == [["a"], ["b"], ["c"]]
    assert (counts.records, counts.written, counts.skipped) == (3, 3, 0)
    fast = _CountingModel()
    predict_stream(fast, _records([str(i) for i in range(10)]), lambda line: None, chunk_size=4)
    assert [len(call) for call in fast.calls] == [4, 4, 2]


def test_a_reading_failure_comes_after_the_rows_read_before_it() -> None:
    from ner_export.annotate.stream import predict_stream
    from ner_export.runtime import InputError

    model, written = _CountingModel(), []
    with pytest.raises(InputError, match="cannot read line 3 onwards"):
        predict_stream(model, _records(["a", "b", "c"], fail_after=2), written.append, chunk_size=100)
    assert [json.loads(line)["line"] for line in written] == [1, 2]
