"""Span files through finetune, distill, eval and export: read by extension, bad records stop the run with
their file and line or are skipped and listed, and what each file gave is stated."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from ner_export.cli import cli
from ner_export.runtime.conll import read_conll, write_conll
from ner_export.runtime.labels import entity_chunks


def _run(*args: object):
    return CliRunner().invoke(cli, [str(a) for a in args])


def _seqeval(gold: list[list[str]], predicted: list[list[str]]) -> dict[str, float]:
    from seqeval.metrics import f1_score, precision_score, recall_score

    scores = {}
    for average in ("micro", "macro"):
        for name, metric in (("precision", precision_score), ("recall", recall_score), ("f1", f1_score)):
            scores[f"{average}_{name}"] = metric(gold, predicted, average=average, zero_division=0)
    return scores


@pytest.fixture(scope="module")
def gold_files(tiny_bundle: Path, conll_file: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, ...]:
    """Gold data the random tiny model scores between 0 and 1 on (its own tags on every other sentence,
    the file's on the rest), as CoNLL, converted to a span file, and back to CoNLL, through the CLI."""
    from ner_export.runtime import NerModel

    sentences = read_conll(conll_file)
    own = NerModel.load(tiny_bundle).predict_words([list(s.words) for s in sentences])
    mixed = [replace(s, tags=tuple(own[i])) if i % 2 == 0 else s for i, s in enumerate(sentences)]
    folder = tmp_path_factory.mktemp("spans")
    conll, spans, back = folder / "gold.conll", folder / "gold.jsonl", folder / "back.conll"
    write_conll(conll, mixed)
    assert _run("convert", conll, spans).exit_code == 0
    assert _run("convert", spans, back).exit_code == 0
    return conll, spans, back


def test_eval_of_conll_converted_both_ways_gives_seqevals_numbers(
    tiny_bundle: Path, tiny_checkpoint: Path, gold_files: tuple[Path, ...], tmp_path: Path
) -> None:
    """A bundle is scored on a span file by exact spans of its raw-text predictions, a checkpoint by the tags
    of the records' words; on CoNLL data written as spans both are seqeval's numbers on the CoNLL file."""
    from ner_export.finetune import checkpoint_context, load_checkpoint, tag_words
    from ner_export.runtime import NerModel

    conll, spans, back = gold_files
    sentences = read_conll(conll)
    words, gold = [list(s.words) for s in sentences], [list(s.tags) for s in sentences]
    entities = sum(len(entity_chunks(tags)) for tags in gold)
    model, tokenizer = load_checkpoint(str(tiny_checkpoint))
    context, window = checkpoint_context(model.config)
    predictions = {
        tiny_bundle: NerModel.load(tiny_bundle).predict_words(words),
        tiny_checkpoint: tag_words(model, tokenizer, words, 32, window, context),
    }
    report = tmp_path / "scores.json"
    for target, predicted in predictions.items():
        expected = _seqeval(gold, predicted)
        assert 0 < expected["micro_f1"] < 1 and 0 < expected["macro_f1"] < 1
        for data in (conll, spans, back):
            result = _run("eval", target, "--data", data, "--json", report)
            assert result.exit_code == 0, result.output
            scores = json.loads(report.read_text(encoding="utf-8"))
            found = (scores["precision"], scores["recall"], scores["f1"])
            assert found == pytest.approx((expected["micro_precision"], expected["micro_recall"], expected["micro_f1"]))
            by_span = target == tiny_bundle and data == spans
            assert scores["scoring"] == ("spans" if by_span else "words")
            assert f"{'span' if by_span else 'entity'}-level micro F1: {expected['micro_f1']:.4f}" in result.stdout
            if by_span:
                macro = (scores["macro_precision"], scores["macro_recall"], scores["macro_f1"])
                assert macro == pytest.approx(
                    (expected["macro_precision"], expected["macro_recall"], expected["macro_f1"])
                )
                assert "\n   macro " in result.stdout
            if data == spans:
                lines = result.stdout.splitlines()
                how = "exact character spans" if by_span else "IOB2 tags of each word"
                assert lines[0].startswith("scored 4 records: ") and how in lines[0]
                used = f"spans (entities), 4 records, {entities} entities, 1 document(s)"
                assert result.stderr == f"eval data: {spans}: {used}\n"
            else:
                assert result.stderr == "" and result.stdout.startswith(" " * 9 + "precision")


def test_eval_stops_at_a_bad_record_or_skips_and_lists_it(
    tiny_bundle: Path, gold_files: tuple[Path, ...], tmp_path: Path
) -> None:
    spans = tmp_path / "gold.ndjson"
    lines = gold_files[1].read_text(encoding="utf-8").splitlines()
    lines.insert(1, '{"text": "John", "entities": [{"start": 0, "end": 9, "label": "PER"}]}')
    spans.write_text("\n".join(lines) + "\n", encoding="utf-8")
    entities = sum(len(entity_chunks(s.tags)) for s in read_conll(gold_files[0]))
    stopped = _run("eval", tiny_bundle, "--data", spans)
    assert stopped.exit_code == 1 and stopped.stdout == ""
    assert stopped.stderr.splitlines() == [
        f"Error: {spans}:2: entities[0]: [0, 9) is outside the text (4 code points): {lines[1]!r}"
    ]
    skipped = _run("eval", tiny_bundle, "--data", spans, "--skip-bad")
    assert skipped.exit_code == 0, skipped.output
    assert skipped.stderr.splitlines() == [
        f"skipped {spans}:2: entities[0]: [0, 9) is outside the text (4 code points): {lines[1]!r}",
        f"eval data: {spans}: spans (entities), 4 records, {entities} entities, 1 document(s); 1 bad record(s) skipped",
    ]
    as_conll = _run("eval", tiny_bundle, "--data", spans, "--data-format", "conll")
    assert as_conll.exit_code == 1 and f"{spans}:1:" in as_conll.stderr  # a JSON line is no CoNLL line


def test_finetune_reads_span_files_and_states_what_each_gave(
    tiny_checkpoint: Path, gold_files: tuple[Path, ...], tmp_path: Path
) -> None:
    _, spans, _ = gold_files
    train = tmp_path / "train.jsonl"
    records = [json.loads(line) for line in spans.read_text(encoding="utf-8").splitlines()]
    named = [{**record, "doc_id": f"story {i // 2}"} for i, record in enumerate(records)]
    lines = [json.dumps(record) for record in named]
    lines.insert(2, json.dumps({"text": "Paris", "entities": [{"start": 0, "end": 5, "label": "O"}]}))
    train.write_text("\n".join(lines) + "\n", encoding="utf-8")
    args = ["finetune", "--train", train, "--dev", spans, "--base-model", tiny_checkpoint, "--epochs", 1, "-q"]
    stopped = _run(*args, "--out", tmp_path / "stopped")
    assert stopped.exit_code == 1 and len(stopped.stderr.splitlines()) == 1
    assert stopped.stderr.startswith(f"Error: {train}:3: entities[0]: the label 'O' means outside any entity")
    assert not (tmp_path / "stopped").exists()

    out = tmp_path / "model"
    result = _run(*args, "--out", out, "--skip-bad", "--batch-size", 2)
    assert result.exit_code == 0, result.output
    entities = sum(len(r["entities"]) for r in records)
    assert result.stderr.splitlines() == [
        f"skipped {train}:3: entities[0]: the label 'O' means outside any entity; a span's label is an entity type: "
        f"{lines[2]!r}",
        f"train data: {train}: spans (entities), 4 records, {entities} entities, 2 document(s); "
        "1 bad record(s) skipped",
        f"dev data: {spans}: spans (entities), 4 records, {entities} entities, 1 document(s)",
    ]
    reason = "chosen automatically: the training file's records name 2 documents (doc_id), so each sentence is read"
    assert f"context: document ({reason}" in result.stdout
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert (metrics["data"]["train"]["bad_records"], metrics["data"]["train"]["records"]) == (1, 4)
    args_used = json.loads((out / "training_args.json").read_text(encoding="utf-8"))
    assert (args_used["data_format"], args_used["offsets"], args_used["skip_bad"]) == ("auto", "codepoints", True)


def test_export_validates_on_a_span_file(tiny_checkpoint: Path, gold_files: tuple[Path, ...], tmp_path: Path) -> None:
    _, spans, _ = gold_files
    data = tmp_path / "validation.json"  # a JSON array, Label Studio's container, with one bad record
    records = [json.loads(line) for line in spans.read_text(encoding="utf-8").splitlines()]
    data.write_text(json.dumps([*records[:2], {"text": "Paris"}, *records[2:]], indent=1), encoding="utf-8")
    args = ["export", tiny_checkpoint, "--validate-data", data, "--no-openvino", "-q"]
    stopped = _run(*args, "-o", tmp_path / "stopped")
    assert stopped.exit_code == 1 and "record 3: no 'entities' field" in stopped.stderr
    assert len(stopped.stderr.splitlines()) == 1 and not (tmp_path / "stopped").exists()
    result = _run(*args, "-o", tmp_path / "bundle", "--skip-bad")
    assert result.exit_code == 0, result.output
    err = result.stderr.splitlines()
    assert err[0].startswith(f"skipped {data}:") and "record 3: no 'entities' field" in err[0]
    assert err[1].startswith(f"validation data: {data}: spans (entities), 4 records,")
    assert err[1].endswith("; 1 bad record(s) skipped") and "validated on 4 sentences" in result.stdout
    validation = json.loads((tmp_path / "bundle" / "bundle.json").read_text(encoding="utf-8"))["validation"]
    assert validation["data_report"]["bad_records"] == 1 and validation["sentences"] == 4
