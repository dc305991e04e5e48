"""Every span shape an annotation tool exports, end to end through the CLI on the tiny model: finetune on
the file, distil the result into one layer on the same file, and evaluate both on it (the bad records of
each kind are tested where they are read: tests/test_span_records.py, tests/test_cli_spans.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from ner_export.cli import cli

DATA = Path(__file__).parent / "data" / "spans"
SHAPES = [  # (file, --offsets, the shape the reader must detect)
    ("entities.jsonl", "codepoints", "entities"),
    ("spans.jsonl", "codepoints", "spans"),
    ("doccano.jsonl", "codepoints", "doccano"),
    ("doccano_entities.ndjson", "codepoints", "doccano-entities"),
    ("label_studio.json", "utf16", "label-studio"),
]


def _run(*args: object):
    result = CliRunner().invoke(cli, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result


@pytest.mark.parametrize(("name", "offsets", "shape"), SHAPES)
def test_finetune_distill_and_eval_on_each_shape(
    name: str, offsets: str, shape: str, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    data = DATA / name
    # enough steps at a high rate for the tiny model to learn its three records by heart
    options = ["--offsets", offsets, "--epochs", 40, "--batch-size", 1, "--lr", "3e-3", "--warmup-ratio", 0, "-q"]
    trained = _run(
        "finetune",
        "--train",
        data,
        "--dev",
        data,
        "--base-model",
        tiny_checkpoint,
        "--out",
        tmp_path / "model",
        *options,
    )
    assert f"train data: {data}: spans ({shape}), 3 records," in trained.stderr
    metrics = json.loads((tmp_path / "model" / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["data"]["train"]["records"] == 3 and metrics["data"]["train"]["bad_records"] == 0
    labels = json.loads((tmp_path / "model" / "config.json").read_text(encoding="utf-8"))["label2id"]
    assert {label.split("-", 1)[-1] for label in labels} - {"O"} <= {"PER", "LOC", "ORG", "MISC"}

    _run(
        "distill",
        tmp_path / "model",
        "--train",
        data,
        "--dev",
        data,
        "--layers",
        1,
        "--out",
        tmp_path / "student",
        *options,
    )
    student = json.loads((tmp_path / "student" / "config.json").read_text(encoding="utf-8"))
    assert student["num_hidden_layers"] == 1 and student["ner_export_distillation"]["layers_kept"] == [0]

    f1 = {}
    for model in ("model", "student"):
        scored = _run("eval", tmp_path / model, "--data", data, "--offsets", offsets)
        last = scored.stdout.strip().splitlines()[-1]
        assert last.startswith("entity-level micro F1: "), scored.output
        f1[model] = float(last.rsplit(" ", 1)[1])
    assert f1["model"] >= 0.8, f"the model did not learn its own training records: {f1}"
    assert f1["student"] >= 0.5, f"the student did not learn from its teacher: {f1}"
