"""Every CLI command through click's CliRunner; user mistakes give one line and a non-zero exit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import needs_torch

from ner_export.cli import cli
from ner_export.runtime import NerModel
from ner_export.runtime.labels import entity_scores
from ner_export.runtime.manifest import sha256_file


def _run(*args: str, input: str | bytes | None = None):
    return CliRunner().invoke(cli, [str(a) for a in args], input=input)


def _conll(path: Path) -> tuple[list[list[str]], list[list[str]]]:
    """The words and the gold tags of a CoNLL file's sentences."""
    from ner_export.runtime.conll import read_conll

    sentences = read_conll(path)
    return [list(s.words) for s in sentences], [list(s.tags) for s in sentences]


def _one_line_error(result, contains: str) -> None:
    assert result.exit_code != 0
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error:"), result.output
    assert contains in lines[0], lines[0]


def test_version_and_help() -> None:
    assert _run("--version").output.startswith("ner-export, version")
    out = _run("--help").output
    for command in ("export", "finetune", "eval", "predict", "bench", "demo"):
        assert command in out


def test_export_is_the_default_command(tiny_checkpoint: Path, conll_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "bundle"
    result = _run(tiny_checkpoint, "-o", out, "--validate-data", conll_file, "--quiet")
    assert result.exit_code == 0, result.output
    assert "bundle written to" in result.output and "model_int8.onnx" in result.output
    assert (out / "bundle.json").is_file()
    again = _run(tiny_checkpoint, "-o", out, "--quiet")
    _one_line_error(again, "--force")
    forced = _run(
        "export",
        tiny_checkpoint,
        "-o",
        out,
        "--force",
        "--per-tensor",
        "--no-fp32",
        "--validate-data",
        conll_file,
        "-q",
    )
    assert forced.exit_code == 0, forced.output
    manifest = json.loads((out / "bundle.json").read_text())
    assert [g["precision"] for g in manifest["graphs"] if g["backend"] == "onnxruntime"] == ["int8"]
    assert manifest["graphs"][0]["quantization"]["per_channel"] is False
    assert not (out / "model.onnx").exists()
    # the OpenVINO graph, when made, comes from the fp32 graph before --no-fp32 removes it
    from ner_export.export.openvino_int8 import missing_openvino

    shipped = [g["file"] for g in manifest["graphs"] if g["backend"] == "openvino"]
    assert shipped == ([] if missing_openvino() else ["model_int8_openvino.xml"]), manifest["validation"]["openvino"]


def test_export_of_a_missing_folder(tmp_path: Path) -> None:
    needs_torch()  # without the export stack, the missing extra is what the export reports first
    _one_line_error(_run(tmp_path / "nope"), "no such directory")


def test_predict_texts_and_input_file(tiny_bundle: Path, tmp_path: Path) -> None:
    result = _run("predict", tiny_bundle, "John Smith lives in Paris.", "Zoë Müller 🙂 met Reuters.")
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert [r["text"] for r in rows] == ["John Smith lives in Paris.", "Zoë Müller 🙂 met Reuters."]
    for row in rows:
        for entity in row["entities"]:
            assert row["text"][entity["start"] : entity["end"]] == entity["text"]
            assert set(entity) == {"text", "label", "start", "end", "score"}
    plain = tmp_path / "in.txt"
    plain.write_text("John Smith lives in Paris.\nMaria Lopez works for Reuters.\n", encoding="utf-8")
    assert len(_run("predict", tiny_bundle, "--input", plain, "--aggregation", "max").output.splitlines()) == 2
    options = _run(
        "predict", tiny_bundle, "John Smith", "--word-split", "pipeline", "--precision", "fp32", "--threads", 1
    )
    assert options.exit_code == 0 and json.loads(options.output)["text"] == "John Smith"
    _one_line_error(_run("predict", tiny_bundle, "x", "--precision", "fp16"), "no fp16 graph")
    jsonl = tmp_path / "in.jsonl"
    jsonl.write_text('{"text": "John Smith"}\n{"text": "Paris", "id": 7}\n', encoding="utf-8")
    rows = [json.loads(line) for line in _run("predict", tiny_bundle, "--input", jsonl).output.splitlines()]
    assert [r["text"] for r in rows] == ["John Smith", "Paris"]
    stdin = _run("predict", tiny_bundle, "--input", "-", input="Paris\n")
    assert stdin.exit_code == 0 and json.loads(stdin.stdout)["text"] == "Paris"


def test_predict_bad_input_lines(tiny_bundle: Path, tmp_path: Path) -> None:
    bad_json = tmp_path / "bad.jsonl"
    bad_json.write_text('{"text": "ok"}\n{"txt": "no text"}\n["list"]\n{"text": "fine"}\n', encoding="utf-8")
    stopped = CliRunner().invoke(cli, ["predict", str(tiny_bundle), "--input", str(bad_json)])
    assert stopped.exit_code == 1 and [json.loads(line)["text"] for line in stopped.stdout.splitlines()] == ["ok"]
    assert stopped.stderr.startswith(f"Error: {bad_json}:2: no 'text' field") and len(stopped.stderr.splitlines()) == 1
    skipped = CliRunner().invoke(cli, ["predict", str(tiny_bundle), "--input", str(bad_json), "--skip-bad"])
    assert skipped.exit_code == 0
    assert [json.loads(line)["text"] for line in skipped.stdout.splitlines()] == ["ok", "fine"]
    assert "bad.jsonl:2" in skipped.stderr and "bad.jsonl:3" in skipped.stderr
    bad_utf8 = tmp_path / "bad.txt"
    bad_utf8.write_bytes(b"fine\n\xff\xfe broken\n")
    result = CliRunner().invoke(cli, ["predict", str(tiny_bundle), "--input", str(bad_utf8)])
    assert result.exit_code == 1 and json.loads(result.stdout)["text"] == "fine"
    assert result.stderr.startswith(f"Error: {bad_utf8}:2: not valid UTF-8: byte 0xFF at byte 1 of the line")
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n")
    _one_line_error(_run("predict", tiny_bundle, "--input", empty), "empty")


def test_predict_user_mistakes(tiny_bundle: Path, tmp_path: Path) -> None:
    _one_line_error(_run("predict", tmp_path / "absent", "x"), "not a directory")
    _one_line_error(_run("predict", tmp_path, "x"), "not a ner-export bundle")
    result = _run("predict", tiny_bundle)
    assert result.exit_code == 2 and "give TEXT arguments or --input FILE" in result.output
    assert _run("predict", tiny_bundle, "x", "--aggregation", "mean").exit_code == 2


def test_eval_bundle_and_checkpoint(tiny_bundle: Path, tiny_checkpoint: Path, conll_file: Path, tmp_path: Path) -> None:
    """eval scores the model's own tags against the file's: the runtime's for a bundle, PyTorch's for a
    checkpoint. On a file tagged with the model's own predictions it must report a perfect score."""
    from ner_export.finetune import Sentence, checkpoint_context, load_checkpoint, read_conll, tag_words, write_conll
    from ner_export.runtime.labels import entity_report

    sentences = read_conll(conll_file)
    words, gold = [list(s.words) for s in sentences], [list(s.tags) for s in sentences]
    bundle_tags = NerModel.load(tiny_bundle).predict_words(words)
    expected = entity_report(gold, bundle_tags)
    report = tmp_path / "scores.json"
    result = _run("eval", tiny_bundle, "--data", conll_file, "--json", report)
    assert result.exit_code == 0, result.output
    micro = expected["micro"]
    assert micro.predicted_entities > 0  # the random tiny model tags entities (wrongly, on this file)
    assert f"entity-level micro F1: {micro.f1:.4f}" in result.output
    scores = json.loads(report.read_text())
    assert scores["kind"] == "bundle" and scores["sentences"] == 4 and scores["target"] == str(tiny_bundle)
    assert (scores["f1"], scores["precision"], scores["recall"]) == (micro.f1, micro.precision, micro.recall)
    assert scores["per_type"] == {k: v.__dict__ for k, v in expected.items() if k != "micro"}

    own = tmp_path / "own.conll"
    write_conll(own, [Sentence(tuple(w), tuple(t)) for w, t in zip(words, bundle_tags, strict=True)])
    result = _run("eval", tiny_bundle, "--data", own, "--json", report)
    assert result.exit_code == 0 and "entity-level micro F1: 1.0000" in result.output
    assert json.loads(report.read_text())["per_type"]["PER"]["true_entities"] == expected["PER"].predicted_entities

    model, tokenizer = load_checkpoint(str(tiny_checkpoint))
    context, window = checkpoint_context(model.config)
    pytorch_tags = tag_words(model, tokenizer, words, 32, window, context)
    result = _run("eval", tiny_checkpoint, "--data", conll_file)
    assert result.exit_code == 0 and f"micro F1: {entity_report(gold, pytorch_tags)['micro'].f1:.4f}" in result.output
    write_conll(own, [Sentence(tuple(w), tuple(t)) for w, t in zip(words, pytorch_tags, strict=True)])
    result = _run("eval", tiny_checkpoint, "--data", own)
    assert result.exit_code == 0 and "entity-level micro F1: 1.0000" in result.output

    _one_line_error(_run("eval", tmp_path, "--data", conll_file), "neither a bundle")
    bad = tmp_path / "bad.conll"
    bad.write_text("John B-PER\nlonely\n")
    _one_line_error(_run("eval", tiny_bundle, "--data", bad), "bad.conll:2")


def test_finetune_command(tiny_checkpoint: Path, conll_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "ft"
    result = _run(
        "finetune",
        "--train",
        conll_file,
        "--dev",
        conll_file,
        "--out",
        out,
        "--base-model",
        tiny_checkpoint,
        "--epochs",
        1,
        "--batch-size",
        2,
        "-q",
    )
    assert result.exit_code == 0, result.output
    assert "checkpoint written to" in result.output and (out / "model.safetensors").is_file()
    # the context chosen for a file without -DOCSTART- lines is printed even with -q
    assert "context: none (chosen automatically: no -DOCSTART- line separates documents" in result.output
    _one_line_error(
        _run("finetune", "--train", tmp_path / "none.txt", "--dev", conll_file, "--out", tmp_path / "x", "-q"),
        "no such file",
    )


def test_bench_command_small(tiny_bundle: Path, tiny_checkpoint: Path, conll_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "bench"
    result = _run(
        "bench",
        tiny_bundle,
        "--checkpoint",
        tiny_checkpoint,
        "--data",
        conll_file,
        "--out",
        out,
        "--latency-sentences",
        4,
        "--no-cold-start",
        "-q",
    )
    assert result.exit_code == 0, result.output
    assert f"results written to {out / 'bench.json'}, {out / 'bench.md'}, {out / 'bench.png'}" in result.output
    data = json.loads((out / "bench.json").read_text(encoding="utf-8"))
    words, gold = _conll(conll_file)
    assert data["dataset"] == {
        "path": str(conll_file),
        "sentences": len(words),
        "tokens": sum(len(w) for w in words),
        "sha256": sha256_file(conll_file),
    }
    assert data["settings"]["latency_sentences"] == 4 and data["settings"]["context"] == "none"
    measured = data["systems"]
    assert all(row["cold_start_s"] is None for row in measured.values()), "--no-cold-start"
    tags = NerModel.load(tiny_bundle).predict_words(words)
    assert measured["runtime_int8"]["f1_presplit"] == pytest.approx(entity_scores(gold, tags).f1)
    table = (out / "bench.md").read_text(encoding="utf-8")
    for name, row in measured.items():  # the Markdown table shows the JSON's F1s
        raw = "n/a" if row["f1_rawtext"] is None else f"{row['f1_rawtext']:.4f}"
        assert f"| {name} | {row['f1_presplit']:.4f} | {raw} |" in table, name
    assert (out / "bench.png").read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    _one_line_error(
        _run("bench", tiny_bundle, "--checkpoint", tiny_checkpoint, "--data", tmp_path / "absent.txt", "-q"),
        "absent.txt",
    )


def test_demo_command_on_the_tiny_model(tiny_checkpoint: Path, tmp_path: Path) -> None:
    result = _run("demo", "--workdir", tmp_path / "demo", "--base-model", tiny_checkpoint, "--epochs", 1, "-q")
    assert result.exit_code == 0, result.output
    assert "entities found by the bundle" in result.output and "| ner-export int8" in result.output
    assert (tmp_path / "demo" / "bundle" / "bundle.json").is_file()
    # trained with casing (the default): the checkpoint is marked for stock tools, and the demo says how to load it
    from ner_export.finetune import CASING_MODEL_TYPE

    config = json.loads((tmp_path / "demo" / "checkpoint" / "config.json").read_text(encoding="utf-8"))
    assert config["model_type"] == CASING_MODEL_TYPE and config["ner_export_base_model_type"] == "bert"
    assert "ner_export.finetune.ner_pipeline(" in result.output


def test_predict_command_does_not_import_torch(tiny_bundle: Path) -> None:
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from ner_export.cli import cli\n"
        f"cli.main(['predict', {str(tiny_bundle)!r}, 'John Smith lives in Paris.'], standalone_mode=False)\n"
        "print('torch' in sys.modules, 'transformers' in sys.modules, 'optimum' in sys.modules, file=sys.stderr)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(done.stdout)["text"] == "John Smith lives in Paris."
    assert done.stderr.strip().splitlines()[-1] == "False False False"


def test_repaired_tags_are_a_one_line_warning(tiny_bundle: Path, tmp_path: Path) -> None:
    data = tmp_path / "repair.conll"
    data.write_text("\n".join(["John B-PER", "x O", ""] * 5 + ["the O", "Paris I-LOC", ""]) + "\n")
    result = CliRunner().invoke(cli, ["eval", str(tiny_bundle), "--data", str(data)])
    assert result.exit_code == 0, result.output
    assert (
        result.stderr.strip()
        == f"warning: {data}:17: an I- tag that does not continue an entity of its type was read as B-, "
        "as conlleval does (1 such tag(s) in the file)"
    )


def test_console_script_prints_usage_errors_as_one_line(tiny_bundle: Path) -> None:
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "ner_export", "predict", str(tiny_bundle), "x", "--batch-size", "0"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        "Error: Invalid value for '--batch-size': 0 is not in the range x>=1. (see: ner-export predict --help)"
    ]
    done = subprocess.run(
        [sys.executable, "-m", "ner_export", "predict", str(tiny_bundle / "absent"), "x"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1 and len(done.stderr.strip().splitlines()) == 1


def test_finetune_context_auto_reads_conll2003_as_documents(
    tiny_checkpoint: Path, conll_file: Path, tmp_path: Path
) -> None:
    """CoNLL-2003's train.txt marks no documents, yet it is news cut into sentences: `--context auto` trains
    with document context (the whole file measured, 64 of its sentences trained on), says why, and the
    checkpoint records it."""
    train = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "conll2003" / "train.txt"
    if not train.is_file():
        pytest.skip(f"CoNLL-2003 is not at {train} (it is not redistributable; see shared/README.md)")
    out = tmp_path / "model"
    args = ["--base-model", tiny_checkpoint, "--epochs", 1, "--max-train-sentences", 64, "--max-length", 32, "-q"]
    result = _run("finetune", "--train", train, "--dev", conll_file, "--out", out, *args)
    assert result.exit_code == 0, result.output
    reason = "chosen automatically: no -DOCSTART- line marks documents, but consecutive sentences are related"
    assert f"context: document ({reason}" in result.output, result.output
    recorded = json.loads((out / "training_args.json").read_text(encoding="utf-8"))
    assert (recorded["context"], recorded["context_chosen"]) == ("auto", "document")
    assert recorded["context_reason"].startswith(reason)
    assert json.loads((out / "config.json").read_text(encoding="utf-8"))["ner_export_context"] == "document"


def test_finetune_defaults_are_the_library_recipe() -> None:
    """The CLI repeats TrainConfig's defaults for --help; they must not drift apart."""
    from dataclasses import fields

    from ner_export.finetune import TrainConfig

    names = {"lr": "learning_rate"}
    library = {f.name: f.default for f in fields(TrainConfig) if isinstance(f.default, (int, float, str))}
    checked = 0
    for param in cli.commands["finetune"].params:
        field = names.get(param.name, param.name)
        if field in library and field not in ("force", "progress"):
            assert param.default == library[field], (
                f"--{param.name}: CLI {param.default!r} != TrainConfig {library[field]!r}"
            )
            checked += 1
    # epochs, batch size, lr, max length, context, casing, target tokens, grouping, seed, warmup ratio, and the
    # data reading: data format, offsets, skip bad
    assert checked == 13


def test_decoding_option_reaches_predict_and_eval(tiny_bundle: Path, tiny_checkpoint: Path, conll_file: Path) -> None:
    """The random tiny model has invalid argmax sequences, so the two decodings give different output."""
    texts = [
        "Maria Lopez works for Reuters in London, said the minister on Monday.",
        "The Bank of Tokyo and the French company agreed in Berlin.",
        "new york city , united states of america ; north river university club",
        "the world cup in germany , france and the united states",
    ]

    for decoding in ("constrained", "argmax"):
        result = _run("predict", tiny_bundle, *texts, "--decoding", decoding)
        assert result.exit_code == 0, result.output
        expected = NerModel.load(tiny_bundle, decoding=decoding).predict(texts)
        assert [json.loads(line)["entities"] for line in result.output.splitlines()] == [
            [e.to_dict() for e in row] for row in expected
        ]
    assert (
        _run("predict", tiny_bundle, *texts, "--decoding", "argmax").output
        != _run("predict", tiny_bundle, *texts).output
    )
    words, gold = _conll(conll_file)
    for target, precision in ((tiny_bundle, "int8"), (tiny_checkpoint, "fp32")):  # fp32: the graph PyTorch's equals
        scored = _run("eval", target, "--data", conll_file, "--decoding", "argmax")
        assert scored.exit_code == 0, scored.output
        tags = NerModel.load(tiny_bundle, precision=precision, decoding="argmax").predict_words(words)
        assert f"entity-level micro F1: {entity_scores(gold, tags).f1:.4f}" in scored.output, scored.output
    assert _run("predict", tiny_bundle, "x", "--decoding", "viterbi").exit_code != 0


def test_an_option_combination_the_library_refuses_is_a_usage_error(conll_file: Path, tmp_path: Path) -> None:
    args = ["--train", conll_file, "--dev", conll_file, "--out", tmp_path / "o", "--context", "none"]
    result = _run("finetune", *args, "--target-tokens", 16)
    assert result.exit_code == 2 and "needs context='document'" in result.output
    result = _run("bench", tmp_path, "--checkpoint", tmp_path, "--data", conll_file, "--systems", "pytorch,tensorrt")
    assert result.exit_code == 2 and "unknown system(s) tensorrt" in result.output
    assert _run("finetune", *args, "--warmup-ratio", 1.5).exit_code == 2


def test_debug_mode_shows_the_traceback_and_its_cause(tiny_bundle: Path, tmp_path: Path) -> None:
    import os
    import shutil
    import subprocess
    import sys

    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, bundle)
    (bundle / "bundle.json").write_text("{not json", encoding="utf-8")
    argv = [sys.executable, "-m", "ner_export", "predict", str(bundle), "John"]
    quiet = subprocess.run(argv, capture_output=True, text=True)
    lines = quiet.stderr.strip().splitlines()
    assert quiet.returncode == 1 and len(lines) == 1 and lines[0].startswith(f"Error: {bundle / 'bundle.json'}: ")
    debug = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, "NER_EXPORT_DEBUG": "1"})
    assert debug.returncode == 1 and "Traceback" in debug.stderr
    assert "JSONDecodeError" in debug.stderr and "ner_export.runtime.errors.BundleError" in debug.stderr


def test_finetune_context_choices_are_the_library_ones() -> None:
    from ner_export.finetune import TRAIN_CONTEXTS

    (option,) = [p for p in cli.commands["finetune"].params if p.name == "context"]
    assert tuple(option.type.choices) == TRAIN_CONTEXTS and option.default == "auto"
