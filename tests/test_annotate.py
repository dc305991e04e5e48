"""`ner-export annotate` with the local engine: every format in and out, counts, errors, shards, resume.

The resume tests compare a resumed folder with an uninterrupted run file by file: shard files and
`_errors.jsonl` byte for byte, `_manifest.json` except its `run` section (timings, engine). One test
kills a real `ner-export annotate` process with SIGKILL halfway.
"""

from __future__ import annotations

import datetime
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from ner_export.annotate import AnnotateConfig, annotate
from ner_export.cli import cli
from ner_export.inputs import read_records
from ner_export.runtime.errors import InputError, OutputExistsError

pa = pytest.importorskip("pyarrow", reason="the annotate extra (pyarrow) is not installed")
import pyarrow.parquet as pq  # noqa: E402

WORDS = "john smith lives in paris . maria lopez works for reuters in london the french minister said on monday".split()


def _sentence(i: int) -> str:
    n = 3 + (i * 7) % 23
    return " ".join(WORDS[(i + k * 3) % len(WORDS)] for k in range(n)).capitalize()


def _corpus(folder: Path, fmt: str, n: int = 40) -> Path:
    """A small corpus with pass-through fields, blank lines and bad records, in one format."""
    folder.mkdir(parents=True, exist_ok=True)
    if fmt == "text":
        path = folder / "corpus.txt"
        lines = [_sentence(i).encode() for i in range(n)]
        lines[3] = b"{Note} Angela Merkel visited Paris."
        lines[7] = b"caf\xe9 in Paris"  # not UTF-8: an error record
        lines[9] = b"John\rSmith"  # a lone CR stays inside the text
        path.write_bytes(b"\n".join(line + (b"\n" if i % 10 == 4 else b"") for i, line in enumerate(lines)) + b"\n")
    elif fmt == "jsonl":
        path = folder / "corpus.jsonl"
        rows = [json.dumps({"id": i, "text": _sentence(i), "meta": {"n": i % 3}}) for i in range(n)]
        rows[5] = '{"id": 5, "text": "broken'
        rows[11] = '{"id": 11, "body": "no text"}'
        rows[12] = '{"id": 12, "text": "bad \\ud800 x"}'
        rows[13] = '{"id": 13, "text": "emoji \\ud83d\\ude00 in Paris"}'
        path.write_text(
            "\n".join(r + ("\n" if i % 9 == 2 else "") for i, r in enumerate(rows)) + "\n", encoding="utf-8"
        )
    elif fmt == "json":
        path = folder / "corpus.json"
        items: list = [{"id": i, "text": _sentence(i)} if i % 4 else _sentence(i) for i in range(n)]
        items[6] = 42
        path.write_text(json.dumps(items, indent=1), encoding="utf-8")
    else:
        path = folder / "corpus.parquet"
        table = pa.table(
            {
                "id": pa.array(range(n), pa.int32()),
                "text": [None if i == 8 else _sentence(i) for i in range(n)],
                "day": [datetime.date(2024, 1, 1) + datetime.timedelta(days=i) for i in range(n)],
            }
        )
        pq.write_table(table, path, row_group_size=9)
    return path


def _rows(out: Path) -> list[dict]:
    rows = []
    for part in sorted(out.glob("part-*")):
        if part.suffix == ".parquet":
            rows += pq.read_table(part).to_pylist()
        else:
            rows += [json.loads(line) for line in part.read_text(encoding="utf-8").splitlines()]
    return rows


def _config(bundle: Path, inputs, out: Path, **kw) -> AnnotateConfig:
    kw.setdefault("progress", False)
    return AnnotateConfig(bundle=str(bundle), inputs=tuple(str(i) for i in inputs), output=str(out), **kw)


def _same_folders(a: Path, b: Path) -> None:
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(p.name for p in b.iterdir())
    for name in names:
        if name == "_manifest.json":
            left, right = (json.loads((d / name).read_text()) for d in (a, b))
            left.pop("run"), right.pop("run")
            assert left == right
        else:
            assert (a / name).read_bytes() == (b / name).read_bytes(), name


@pytest.mark.parametrize("fmt", ["text", "jsonl", "json", "parquet"])
@pytest.mark.parametrize("output_format", ["parquet", "jsonl"])
def test_every_format_in_and_out(tiny_bundle: Path, tiny_model, tmp_path: Path, fmt: str, output_format: str) -> None:
    path = _corpus(tmp_path / "in", fmt)
    out = tmp_path / "out"
    result = annotate(
        _config(tiny_bundle, [path], out, output_format=output_format, shard_size=16, buffer_size=5, precision="fp32")
    )
    records = list(read_records(str(path)))
    good = [r for r in records if r.ok]
    bad = [r for r in records if not r.ok]
    assert bad, "every corpus holds bad records"
    assert (result.rows_in, result.rows_out, result.errors) == (len(records), len(good), len(bad))
    assert result.rows_in == result.rows_out + result.errors
    assert sorted(p.name for p in out.iterdir()) == ["_errors.jsonl", "_manifest.json"] + [
        f"part-00000-0000{k}.{output_format}" for k in range(3)
    ]

    rows = _rows(out)
    assert [(r["source"], r["row"], r["line"]) for r in rows] == [(str(path), g.row, g.line) for g in good]
    assert [r["text"] for r in rows] == [g.text for g in good]
    expected = [[e.to_dict() for e in entities] for entities in tiny_model.predict([g.text for g in good])]
    assert [r["entities"] for r in rows] == expected
    for row, record in zip(rows, good, strict=True):
        passed = {k: v for k, v in row.items() if k not in ("source", "row", "line", "text", "entities")}
        want = dict(record.fields)
        if fmt == "parquet" and output_format == "jsonl":
            want["day"] = want["day"].isoformat()
        if output_format == "parquet":  # a column per field of the shard: a field a record lacks is null
            assert set(want) <= set(passed) and all(passed[k] is None for k in set(passed) - set(want))
            passed = {k: passed[k] for k in want}
        else:
            assert list(row) == ["source", "row", "line", *record.fields, "text", "entities"]
        assert passed == want

    errors = [json.loads(line) for line in (out / "_errors.jsonl").read_text().splitlines()]
    assert errors == [r.error_dict() for r in bad]
    manifest = json.loads((out / "_manifest.json").read_text())
    assert manifest["counts"] == {
        "files": 1,
        "shards": 3,
        "rows_in": len(records),
        "rows_out": len(good),
        "errors": len(bad),
        "blank_lines": manifest["inputs"][0]["blank_lines"],
    }
    assert [s["rows_in"] for s in manifest["shards"]] == [16, 16, len(records) - 32]
    assert sum(s["rows_out"] + s["errors"] for s in manifest["shards"]) == len(records)
    assert manifest["bundle"]["precision"] == "fp32" and manifest["bundle"]["batch_invariant"] is True
    assert len(manifest["bundle"]["sha256"]) == 64 and manifest["settings"]["shard_size"] == 16
    if fmt == "parquet" and output_format == "parquet":
        schema = pq.read_schema(out / "part-00000-00000.parquet")
        assert schema.field("id").type == pa.int32() and schema.field("day").type == pa.date32()


def test_text_corpus_keeps_brace_lines_and_carriage_returns(tiny_bundle: Path, tmp_path: Path) -> None:
    path = _corpus(tmp_path / "in", "text")
    out = tmp_path / "out"
    result = annotate(_config(tiny_bundle, [path], out, output_format="jsonl"))
    rows = {r["line"]: r for r in _rows(out)}
    lines = path.read_bytes().split(b"\n")
    assert (
        rows[4]["text"] == "{Note} Angela Merkel visited Paris." and lines[3] == b"{Note} Angela Merkel visited Paris."
    )
    assert rows[11]["text"] == "John\rSmith"
    assert result.blank_lines == 4 and result.errors == 1
    (error,) = [json.loads(x) for x in (out / "_errors.jsonl").read_text().splitlines()]
    assert error["line"] == 9 and error["row"] == 7 and "not valid UTF-8" in error["reason"]


def test_many_files_and_globs(tiny_bundle: Path, tmp_path: Path) -> None:
    a = _corpus(tmp_path / "in" / "a", "jsonl", 20)
    b = _corpus(tmp_path / "in" / "b", "parquet", 12)
    (tmp_path / "in" / "empty.txt").write_text("\n\n")
    out = tmp_path / "out"
    result = annotate(
        _config(
            tiny_bundle,
            [str(tmp_path / "in" / "*" / "corpus.*"), str(tmp_path / "in" / "empty.txt")],
            out,
            shard_size=8,
        )
    )
    assert result.files == 3 and result.shards == 5 and result.blank_lines >= 2
    assert sorted(p.name for p in out.glob("part-*")) == [
        f"part-0000{f}-0000{k}.parquet" for f, k in ((0, 0), (0, 1), (0, 2), (1, 0), (1, 1))
    ]
    sources = {r["source"] for r in _rows(out)}
    assert sources == {str(a), str(b)}
    manifest = json.loads((out / "_manifest.json").read_text())
    assert [i["path"] for i in manifest["inputs"]] == [str(a), str(b), str(tmp_path / "in" / "empty.txt")]
    assert manifest["inputs"][2]["rows"] == 0


def test_mixed_types_and_reserved_names(tiny_bundle: Path, tmp_path: Path) -> None:
    path = tmp_path / "mixed.jsonl"
    path.write_text(
        '{"id": 1, "text": "Paris", "extra": {}}\n'
        '{"id": "x-2", "text": "London"}\n'
        '{"text": "Berlin", "row": 3}\n'
        '{"text": "Tokyo", "entities": []}\n',
        encoding="utf-8",
    )
    out = tmp_path / "out"
    result = annotate(_config(tiny_bundle, [path], out))
    assert (result.rows_out, result.errors) == (2, 2)
    manifest = json.loads((out / "_manifest.json").read_text())
    assert manifest["shards"][0]["json_columns"] == ["id", "extra"]
    rows = _rows(out)
    assert [(r["id"], r["extra"]) for r in rows] == [("1", "{}"), ('"x-2"', None)]
    reasons = [json.loads(x)["reason"] for x in (out / "_errors.jsonl").read_text().splitlines()]
    assert "field 'row' clashes" in reasons[0] and "field 'entities' clashes" in reasons[1]
    clash = tmp_path / "clash.parquet"
    pq.write_table(pa.table({"text": ["a"], "line": [1]}), clash)
    with pytest.raises(InputError, match="column 'line' clashes"):
        annotate(_config(tiny_bundle, [clash], tmp_path / "out2"))
    assert not (tmp_path / "out2").exists()


def test_file_level_problems_fail_before_writing(tiny_bundle: Path, tmp_path: Path) -> None:
    wide = tmp_path / "wide.txt"
    wide.write_bytes("Paris\n".encode("utf-16-le"))
    out = tmp_path / "out"
    with pytest.raises(InputError, match="UTF-16-LE"):
        annotate(_config(tiny_bundle, [wide], out))
    assert not out.exists()
    with pytest.raises(ValueError, match="--text-field 'row'"):
        annotate(_config(tiny_bundle, [wide], out, text_field="row"))
    with pytest.raises(ValueError, match="--engine ray only"):
        annotate(_config(tiny_bundle, [wide], out, address="auto"))


def test_output_folder_rules(tiny_bundle: Path, tmp_path: Path) -> None:
    path = _corpus(tmp_path / "in", "jsonl", 14)
    out = tmp_path / "out"
    first = annotate(_config(tiny_bundle, [path], out, shard_size=5))
    assert first.shards_written == 3
    with pytest.raises(OutputExistsError, match="finished annotation"):
        annotate(_config(tiny_bundle, [path], out, shard_size=5))
    again = annotate(_config(tiny_bundle, [path], out, shard_size=5, resume=True))
    assert (again.shards_written, again.shards_skipped, again.rows_in) == (0, 3, first.rows_in)
    assert "already complete" in again.summary()
    with pytest.raises(InputError, match="shard_size: 5 then, 4 now"):
        annotate(_config(tiny_bundle, [path], out, shard_size=4, resume=True))
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(OutputExistsError, match="not empty"):
        annotate(_config(tiny_bundle, [path], other))


def test_crash_between_shards_then_resume(tiny_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import ner_export.annotate.local_engine as local_engine

    path = _corpus(tmp_path / "in", "jsonl", 40)
    full = tmp_path / "full"
    annotate(_config(tiny_bundle, [path], full, shard_size=6, buffer_size=4))

    real = local_engine.write_shard
    written = []

    def crashing(out, shard, items, **kw):
        if len(written) == 3:
            # a crash halfway through the fourth shard's data file: its temporary file is left behind
            (Path(out) / f".{shard.name}.parquet.tmp-{os.getpid()}").write_bytes(b"PAR1 half")
            raise KeyboardInterrupt
        written.append(shard.name)
        return real(out, shard, items, **kw)

    monkeypatch.setattr(local_engine, "write_shard", crashing)
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        annotate(_config(tiny_bundle, [path], out, shard_size=6, buffer_size=4))
    assert sorted(p.name for p in out.glob("part-*")) == [f"{name}.parquet" for name in written]
    assert not (out / "_manifest.json").exists() and (out / "_run.json").exists()
    with pytest.raises(OutputExistsError, match="--resume"):
        annotate(_config(tiny_bundle, [path], out, shard_size=6))

    monkeypatch.setattr(local_engine, "write_shard", real)
    resumed = annotate(_config(tiny_bundle, [path], out, shard_size=6, buffer_size=4, resume=True))
    assert (resumed.shards_skipped, resumed.shards_written) == (3, 4)
    _same_folders(out, full)


# `ner-export annotate` whose 4th shard file is written half-way under its hidden name, then waits to be
# killed (the name of that partial file goes to the path in NER_EXPORT_TEST_HELD)
HOLD_FOURTH_SHARD = """
import os, threading
from pathlib import Path
import ner_export.annotate.shards as shards
from ner_export.cli import main

real_write, parts = shards.write_atomic, []

def write_atomic(path, data, **options):
    if path.parent.name != shards.RECEIPTS:
        parts.append(path)
        if len(parts) == 4:
            partial = path.with_name(f".{path.name}.tmp-{os.getpid()}")
            partial.write_bytes(data[: len(data) // 2])
            Path(os.environ["NER_EXPORT_TEST_HELD"]).write_text(partial.name)
            threading.Event().wait(300)
    real_write(path, data, **options)

shards.write_atomic = write_atomic
main()
"""


def test_resume_after_sigkill_equals_an_uninterrupted_run(tiny_bundle: Path, tmp_path: Path) -> None:
    """Kill `ner-export annotate` with SIGKILL mid-run, while it writes its 4th shard; --resume then gives
    the uninterrupted output."""
    path = tmp_path / "corpus.jsonl"
    with open(path, "w", encoding="utf-8") as handle:
        for i in range(6000):
            handle.write("\n" if i % 500 == 0 else "")
            handle.write(
                f'{{"id": {i}, "text": "bad\n' if i % 777 == 1 else json.dumps({"id": i, "text": _sentence(i)}) + "\n"
            )
    options = dict(shard_size=250, buffer_size=50)
    full = tmp_path / "full"
    annotate(_config(tiny_bundle, [path], full, **options))

    out = tmp_path / "killed"
    held = tmp_path / "held"
    command = [
        sys.executable,
        "-c",
        HOLD_FOURTH_SHARD,
        "annotate",
        str(tiny_bundle),
        "--input",
        str(path),
        "--output",
        str(out),
        "--shard-size",
        "250",
        "--buffer-size",
        "50",
        "-q",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NER_EXPORT_TEST_HELD": str(held)}
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    deadline = time.monotonic() + 120
    while not held.exists():  # the run cannot end: it waits, half of its 4th shard written, to be killed
        assert process.poll() is None, process.communicate()[1].decode()[-3000:]
        assert time.monotonic() < deadline, "the run never reached its 4th shard"
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == -signal.SIGKILL, stderr.decode()
    visible = sorted(out.glob("part-*"))
    assert len(visible) == 3 and not (out / "_manifest.json").exists()
    assert [p.name for p in out.glob(".part-*.tmp-*")] == [held.read_text()], "killed mid-write of the 4th shard"
    for part in visible:  # every visible shard is complete: all the rows its receipt counts
        receipt = json.loads((out / "_shards" / f"{part.stem}.json").read_text())
        assert pq.read_table(part).num_rows == receipt["rows_out"] and receipt["rows_out"] + receipt["errors"] == 250

    resumed = annotate(_config(tiny_bundle, [path], out, resume=True, **options))
    assert resumed.shards_skipped == len(visible) and resumed.shards_written == 24 - len(visible)
    assert resumed.rows_in == resumed.rows_out + resumed.errors == 6000
    _same_folders(out, full)
    assert not [p for p in out.iterdir() if p.name.startswith(".")]


def test_cli(tiny_bundle: Path, tmp_path: Path) -> None:
    path = _corpus(tmp_path / "in", "jsonl", 14)
    out = tmp_path / "out"
    result = CliRunner().invoke(
        cli,
        [
            "annotate",
            str(tiny_bundle),
            "--input",
            str(path),
            "--output",
            str(out),
            "--output-format",
            "jsonl",
            "--shard-size",
            "5",
            "-q",
        ],
    )
    assert result.exit_code == 0, result.output
    assert result.output.startswith("annotated 14 rows from 1 files into") and "11 rows out, 3 errors" in result.output
    assert len(list(out.glob("part-*.jsonl"))) == 3
    again = CliRunner().invoke(cli, ["annotate", str(tiny_bundle), "--input", str(path), "--output", str(out)])
    assert again.exit_code == 1 and "finished annotation" in again.output and "Traceback" not in again.output
    wide = tmp_path / "wide.txt"
    wide.write_bytes(b"\xff\xfe" + "Paris\n".encode("utf-16-le"))
    bad = CliRunner().invoke(
        cli, ["annotate", str(tiny_bundle), "--input", str(wide), "--output", str(tmp_path / "o2")]
    )
    assert bad.exit_code == 1 and "UTF-16-LE" in bad.output
    missing = CliRunner().invoke(
        cli, ["annotate", str(tiny_bundle), "--input", str(tmp_path / "*.nothing"), "--output", str(tmp_path / "o3")]
    )
    assert missing.exit_code == 1 and "no file matches" in missing.output
    local = CliRunner().invoke(
        cli, ["annotate", str(tiny_bundle), "--input", str(path), "--output", str(tmp_path / "o4"), "--actors", "2"]
    )
    assert local.exit_code == 2 and "--address and --actors apply to --engine ray only" in local.output, local.output
    assert not (tmp_path / "o4").exists()


def test_progress_bar_reports_rows(tiny_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _corpus(tmp_path / "in", "text", 30)
    annotate(_config(tiny_bundle, [path], tmp_path / "out", progress=True))
    err = capsys.readouterr().err
    assert "100%" in err and re.search(r"30(\.0)?/30(\.0)? \[", err) and "rows/s" in err
    annotate(_config(tiny_bundle, [path], tmp_path / "quiet", progress=False))
    assert capsys.readouterr().err == ""


def test_annotate_imports_no_torch(tiny_bundle: Path, tmp_path: Path) -> None:
    """A Ray worker or a slim install runs annotate with the runtime alone: no torch, no transformers."""
    path = _corpus(tmp_path / "in", "jsonl", 14)
    code = (
        "import sys\n"
        "from ner_export.annotate import AnnotateConfig, annotate\n"
        "import ner_export.annotate.ray_engine\n"
        f"annotate(AnnotateConfig(bundle={str(tiny_bundle)!r}, inputs=({str(path)!r},), "
        f"output={str(tmp_path / 'out')!r}, progress=False))\n"
        "print(sorted(m for m in ('torch', 'transformers', 'optimum') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.slow
def test_local_engine_memory_is_flat(tiny_bundle: Path, tmp_path: Path) -> None:
    """Peak RSS of a 200,000-line run stays within a few MB of a 20,000-line run's."""
    peaks = {}
    for n in (20_000, 200_000):
        path = tmp_path / f"c{n}.txt"
        path.write_text("".join(_sentence(i) + "\n" for i in range(n)), encoding="utf-8")
        code = (
            "from ner_export.annotate import AnnotateConfig, annotate\n"
            f"annotate(AnnotateConfig(bundle={str(tiny_bundle)!r}, inputs=({str(path)!r},), "
            f"output={str(tmp_path / f'o{n}')!r}, progress=False))\n"
            "print(next(l for l in open('/proc/self/status') if l.startswith('VmHWM:')).split()[1])\n"
        )
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=1800)
        assert done.returncode == 0, done.stderr
        peaks[n] = int(done.stdout.split()[-1]) / 1024
    assert peaks[200_000] < peaks[20_000] + 40, peaks


# --------------------------------------------------------------------------- the Ray engine
@pytest.fixture(scope="module")
def local_ray():
    """A Ray of 2 CPUs on this machine, listening on 127.0.0.1 only, shared by the Ray tests."""
    ray = pytest.importorskip("ray", reason="the ray extra is not installed (pip install 'ner-export[ray]')")
    from ner_export.runtime.local_ray import start_local_ray

    if ray.is_initialized():
        pytest.fail("a Ray instance leaked from an earlier test: it is still running in this process")
    start_local_ray(2, quiet=True)
    yield ray
    ray.shutdown()


def test_local_ray_listens_on_loopback_only(local_ray) -> None:
    nodes = local_ray.nodes()
    assert nodes and all(node["NodeManagerAddress"] == "127.0.0.1" for node in nodes)
    assert local_ray.get_runtime_context().gcs_address.startswith("127.0.0.1:")
    assert local_ray.cluster_resources()["CPU"] == 2


@pytest.mark.parametrize(
    ("fmt", "output_format"), [("jsonl", "parquet"), ("parquet", "jsonl"), ("text", "parquet"), ("json", "jsonl")]
)
def test_ray_engine_gives_the_local_engines_output(
    local_ray, tiny_bundle: Path, tmp_path: Path, fmt: str, output_format: str
) -> None:
    """Both engines write the same bytes on a batch-invariant graph: the default one once it is, else fp32."""
    from ner_export.runtime import BundleManifest

    default_invariant = BundleManifest.read(tiny_bundle).graph_for("cpu").batch_invariant
    path = _corpus(tmp_path / "in", fmt, 60)
    options = dict(output_format=output_format, shard_size=16, precision=None if default_invariant else "fp32")
    local = annotate(_config(tiny_bundle, [path], tmp_path / "local", **options))
    on_ray = annotate(_config(tiny_bundle, [path], tmp_path / "ray", engine="ray", actors=2, buffer_size=7, **options))
    assert (on_ray.rows_in, on_ray.rows_out, on_ray.errors) == (local.rows_in, local.rows_out, local.errors)
    assert on_ray.run["actors"] == 2 and on_ray.run["threads"] == 1
    _same_folders(tmp_path / "local", tmp_path / "ray")


def test_ray_engine_refuses_more_actors_than_cpus(local_ray, tiny_bundle: Path, tmp_path: Path) -> None:
    path = _corpus(tmp_path / "in", "text", 10)
    with pytest.raises(ValueError, match="3 actors x 1 threads need 3 CPUs; the Ray cluster has 2"):
        annotate(_config(tiny_bundle, [path], tmp_path / "out", engine="ray", actors=3))


def test_ray_engine_resumes_a_local_run(
    local_ray, tiny_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ner_export.annotate.local_engine as local_engine

    path = _corpus(tmp_path / "in", "jsonl", 40)
    full = tmp_path / "full"
    annotate(_config(tiny_bundle, [path], full, shard_size=6, precision="fp32"))
    real = local_engine.write_shard
    calls = []

    def crashing(*args, **kw):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(1)
        return real(*args, **kw)

    monkeypatch.setattr(local_engine, "write_shard", crashing)
    out = tmp_path / "out"
    with pytest.raises(KeyboardInterrupt):
        annotate(_config(tiny_bundle, [path], out, shard_size=6, precision="fp32"))
    monkeypatch.setattr(local_engine, "write_shard", real)
    resumed = annotate(
        _config(tiny_bundle, [path], out, shard_size=6, precision="fp32", engine="ray", actors=1, resume=True)
    )
    assert (resumed.shards_skipped, resumed.shards_written) == (2, 5)
    _same_folders(out, full)


@pytest.mark.slow
def test_cli_starts_and_stops_its_own_ray(tiny_bundle: Path, tmp_path: Path) -> None:
    pytest.importorskip("ray", reason="the ray extra is not installed (pip install 'ner-export[ray]')")
    path = _corpus(tmp_path / "in", "jsonl", 30)
    out = tmp_path / "out"
    command = [
        sys.executable,
        "-m",
        "ner_export",
        "annotate",
        str(tiny_bundle),
        "--input",
        str(path),
        "--output",
        str(out),
        "--engine",
        "ray",
        "--actors",
        "1",
        "-q",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "annotated 30 rows" in done.stdout and "ray engine" in done.stdout
    manifest = json.loads((out / "_manifest.json").read_text())
    assert manifest["run"]["ray_address"] == "local (127.0.0.1)" and manifest["run"]["ray_init_seconds"] > 0
