"""CLI details: click's suggestion for a mistyped command, help when run alone, path
errors as one clean line, documented exit statuses and output fields, a help text on every option, and
eval taking predict's word options."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_cli import _one_line_error, _run

from ner_export.cli import cli


def _flat(text: str) -> str:
    return " ".join(text.split())


def test_a_mistyped_command_gets_clicks_suggestion(tiny_bundle: Path) -> None:
    import subprocess
    import sys

    result = _run("predcit", tiny_bundle, "x")
    assert result.exit_code == 2 and "No such command 'predcit'. Did you mean 'predict'?" in result.output
    done = subprocess.run([sys.executable, "-m", "ner_export", "predcit", str(tiny_bundle), "x"], capture_output=True)
    assert done.returncode == 2 and done.stdout == b""
    assert done.stderr.decode().splitlines() == [
        "Error: No such command 'predcit'. Did you mean 'predict'? (see: ner-export --help)"
    ]
    assert _run("foo").exit_code == 2 and "No such command 'foo'." in _run("foo").output


def test_no_arguments_prints_the_help_and_exits_0() -> None:
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "ner_export"], capture_output=True, text=True)
    assert done.returncode == 0 and done.stderr == ""
    assert done.stdout.startswith("Usage: ner-export") and "Commands:" in done.stdout and "Error" not in done.stdout
    assert _run().exit_code == 0


def test_a_missing_or_unwritable_path_is_one_clean_line(tiny_bundle: Path, tmp_path: Path) -> None:
    missing = tmp_path / "nonexistent.txt"
    result = _run("predict", tiny_bundle, "--input", missing)
    _one_line_error(result, f"Error: {missing}: no such file")
    assert "Errno" not in result.output
    errors = tmp_path / "no-such-folder" / "errors.jsonl"
    result = _run("predict", tiny_bundle, "x", "--errors", errors)
    _one_line_error(result, f"Error: {errors}: No such file or directory")
    assert "Errno" not in result.output


def test_help_documents_exit_status_output_fields_and_every_option() -> None:
    import click

    top = _flat(_run("--help").output)
    assert "Exit status: 0 on success; 1 on an error you can fix" in top and "2 on a usage error" in top
    predict = _flat(_run("predict", "--help").output)
    for described in ("argument | line | row", "entities", "text[start:end]", "score", "--errors FILE"):
        assert described in predict, described
    missing = [
        f"{name} {param.opts[0]}"
        for name, command in cli.commands.items()
        for param in command.params
        if isinstance(param, click.Option) and not (param.help or "").strip()
    ]
    assert missing == []
    export = _flat(_run("export", "--help").output)
    assert "safer int8 configurations are tried in order (docs/export.md: The int8 accuracy gate)" in export
    page = (Path(__file__).parent.parent / "docs" / "export.md").read_text(encoding="utf-8")
    assert "\n## The int8 accuracy gate\n" in page
    readme = (Path(__file__).parent.parent / "README.md").read_text(encoding="utf-8")
    assert "**Exit status**: 0 on success; 1 on an error you can fix" in _flat(readme)
    assert "2 on a usage error" in _flat(readme)


EVAL_SENTENCES = [
    "Smithing johnson's u.s. corp-group (reuters) said: 2024 was new.",
    "Maria Lopezia works for Reutersing in Londoner , said the ministered on Mondays .",
    "The Banking of Tokyoite and the Frenchman companies agreed in Berlinia .",
]


def test_eval_takes_predicts_aggregation_word_split_and_decoding(
    tiny_bundle: Path, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    """On a file tagged with the bundle's own `max` tags, eval --aggregation max scores 1.0 and first does not:
    the option reaches the model. `simple` is `first` for words; the words are the file's under either split."""
    from ner_export.finetune import Sentence, write_conll
    from ner_export.runtime import NerModel
    from ner_export.runtime.labels import entity_scores

    words = [text.split() for text in EVAL_SENTENCES]
    for decoding in ("constrained", "argmax"):
        tags = NerModel.load(tiny_bundle, decoding=decoding).predict_words(words, aggregation="max")
        data = tmp_path / f"own-{decoding}.conll"
        write_conll(data, [Sentence(tuple(w), tuple(t)) for w, t in zip(words, tags, strict=True)])
        f1 = {}
        for aggregation in ("first", "average", "max", "simple"):
            for word_split in ("text", "pipeline"):
                out = tmp_path / "scores.json"
                args = ["--aggregation", aggregation, "--word-split", word_split, "--decoding", decoding]
                result = _run("eval", tiny_bundle, "--data", data, "--json", out, *args)
                assert result.exit_code == 0, result.output
                f1[aggregation, word_split] = json.loads(out.read_text())["f1"]
        assert f1["max", "text"] == 1.0 and f1["first", "text"] < 1.0
        assert f1["simple", "text"] == f1["first", "text"]
        assert all(f1[a, "pipeline"] == f1[a, "text"] for a in ("first", "average", "max", "simple"))
    refused = _run("eval", tiny_checkpoint, "--data", data, "--aggregation", "average")
    assert refused.exit_code == 2 and "a checkpoint is scored by each word's first token" in refused.output
    # `simple` on a checkpoint is its first-token scoring: the same report, the F1 of the fp32 graph's tags
    # (which are PyTorch's), decoded alike
    scores = {}
    for aggregation in ("simple", "first"):
        out = tmp_path / f"checkpoint-{aggregation}.json"
        result = _run("eval", tiny_checkpoint, "--data", data, "--aggregation", aggregation, "--json", out)
        assert result.exit_code == 0, result.output
        scores[aggregation] = (result.output, json.loads(out.read_text())["f1"])
    assert scores["simple"] == scores["first"]
    fp32_tags = NerModel.load(tiny_bundle, precision="fp32").predict_words(words)
    expected = entity_scores(tags, fp32_tags).f1
    assert 0 < expected < 1 and scores["simple"][1] == pytest.approx(expected)
    assert f"entity-level micro F1: {expected:.4f}" in scores["simple"][0]
