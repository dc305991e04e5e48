"""`ner-export convert`: CoNLL <-> span files through the CLI, round trips exact, documents kept both ways."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from ner_export.cli import cli
from ner_export.runtime.conll import read_conll

SAMPLE = Path(__file__).resolve().parents[1] / "finetune" / "sample"
DOCUMENTS = """-DOCSTART- O

Acme B-ORG
backs O
Danish B-MISC
plan O
. O

Maria B-PER
Lopez I-PER

-DOCSTART- O

OSLO B-LOC
2026-03-14 O
"""


def _run(*args: object):
    return CliRunner().invoke(cli, [str(a) for a in args])


@pytest.mark.parametrize("suffix", [".jsonl", ".ndjson", ".json"])
@pytest.mark.parametrize("split", ["train", "dev", "test"])
def test_the_sample_round_trips_exactly_through_the_cli(tmp_path: Path, split: str, suffix: str) -> None:
    source = SAMPLE / f"{split}.txt"
    spans, back = tmp_path / f"{split}{suffix}", tmp_path / f"{split}.txt"
    there = _run("convert", source, spans)
    assert there.exit_code == 0, there.output
    sentences = read_conll(source)
    assert f"wrote {len(sentences)} records (" in there.stdout and there.stderr == ""
    again = _run("convert", spans, back)
    assert again.exit_code == 0, again.output
    assert back.read_bytes() == source.read_bytes()
    assert f"convert data: {spans}: spans (entities), {len(sentences)} records" in again.stderr


def test_docstart_sections_become_doc_ids_and_come_back(tmp_path: Path) -> None:
    source = tmp_path / "docs.conll"
    source.write_text(DOCUMENTS, encoding="utf-8")
    assert _run("convert", source, tmp_path / "docs.jsonl").exit_code == 0
    records = [json.loads(line) for line in (tmp_path / "docs.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [(r["text"], r["doc_id"]) for r in records] == [
        ("Acme backs Danish plan .", 0),
        ("Maria Lopez", 0),
        ("OSLO 2026-03-14", 1),
    ]
    assert records[0]["entities"][1] == {"start": 11, "end": 17, "label": "MISC", "text": "Danish"}
    result = _run("convert", tmp_path / "docs.jsonl", tmp_path / "back.txt")
    assert result.exit_code == 0 and "wrote 3 sentences (4 entities, 2 document(s))" in result.stdout
    assert (tmp_path / "back.txt").read_text(encoding="utf-8") == DOCUMENTS


def test_named_documents_and_other_tools_shapes_become_docstart_sections(tmp_path: Path) -> None:
    label_studio = [
        {
            "data": {"text": "Merkel 🎉 visited Paris", "doc_id": "a"},
            "annotations": [{"result": [{"value": {"start": 18, "end": 23, "labels": ["LOC"]}}]}],
        },
        {"data": {"text": "Lyon won", "doc_id": "b"}, "annotations": [{"result": []}]},
    ]
    source = tmp_path / "tasks.json"
    source.write_text(json.dumps(label_studio, ensure_ascii=False), encoding="utf-8")
    assert _run("convert", source, tmp_path / "bad.txt").exit_code == 1  # code points: 'Paris' is at 17
    result = _run("convert", source, tmp_path / "out.txt", "--offsets", "utf16")
    assert result.exit_code == 0, result.output
    expected = "-DOCSTART- O\n\nMerkel O\n🎉 O\nvisited O\nParis B-LOC\n\n-DOCSTART- O\n\nLyon O\nwon O\n"
    assert (tmp_path / "out.txt").read_text(encoding="utf-8") == expected


def test_bad_records_stop_the_conversion_or_are_skipped_and_listed(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    lines = [
        {"text": "John lives in Paris", "spans": [{"start": 0, "end": 4, "label": "PER"}]},
        {"text": "broken", "spans": [{"start": 3, "end": 1, "label": "PER"}]},
        {"text": "Lyon", "spans": [{"start": 0, "end": 4, "label": "B-LOC"}]},
    ]
    source.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    stopped = _run("convert", source, tmp_path / "out.conll")
    assert stopped.exit_code == 1 and stopped.stderr.strip().splitlines() == [
        f"Error: {source}:2: spans[0]: start 3 is not before end 1: {json.dumps(lines[1])!r}"
    ]
    assert not (tmp_path / "out.conll").exists()
    skipped = _run("convert", source, tmp_path / "out.conll", "--skip-bad")
    assert skipped.exit_code == 0, skipped.output
    err = skipped.stderr.splitlines()
    assert err[0].startswith(f"skipped {source}:2: spans[0]: start 3 is not before end 1")
    assert err[1].startswith(f"skipped {source}:3: spans[0]: the label 'B-LOC' is a tag")
    used = "spans (spans), 1 records, 1 entities, 1 document(s); 2 bad record(s) skipped"
    assert err[2] == f"convert data: {source}: {used}"
    assert (tmp_path / "out.conll").read_text(encoding="utf-8") == "John B-PER\nlives O\nin O\nParis O\n"


def test_user_mistakes(tmp_path: Path) -> None:
    conll = SAMPLE / "dev.txt"
    same_kind = _run("convert", conll, tmp_path / "out.conll")
    assert same_kind.exit_code == 2 and "a CoNLL file converts to a span file" in same_kind.output
    assert _run("convert", conll, tmp_path / "x.jsonl", "--skip-bad").exit_code == 2
    assert _run("convert", conll, tmp_path / "x.jsonl", "--offsets", "utf16").exit_code == 2
    (tmp_path / "x.jsonl").write_text("", encoding="utf-8")
    exists = _run("convert", conll, tmp_path / "x.jsonl")
    assert exists.exit_code == 1 and "pass --force" in exists.output
    assert _run("convert", conll, tmp_path / "x.jsonl", "--force").exit_code == 0
    both = _run("convert", tmp_path / "x.jsonl", tmp_path / "y.json")
    assert both.exit_code == 2 and "a span file converts to a CoNLL file" in both.output
    as_spans = _run("convert", conll, tmp_path / "z.conll", "--data-format", "spans")  # dev.txt is not JSON
    assert as_spans.exit_code == 1 and f"{conll}:1: not valid JSON" in as_spans.output
    missing = _run("convert", tmp_path / "none.txt", tmp_path / "none.jsonl")
    assert missing.exit_code == 1 and "no such file" in missing.output.lower()
