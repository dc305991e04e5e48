"""Distillation on the tiny model: a 2-layer teacher into a 1-layer student that exports and runs, an
ensemble, unlabeled texts, the same student from the same seed, and one clear line per bad input."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import export_tiny_bundle, make_tiny_checkpoint, needs_torch

from ner_export.finetune import DistillConfig, DistillError, DistillResult, distill
from ner_export.finetune._distill_config import chosen_layers
from ner_export.runtime.manifest import sha256_file

TEXTS = ["John Smith lives in Paris .", "Maria Lopez works for Reuters in London .", "The French minister said"]


def _teacher(base: Path, data: Path, out: Path, seed: int = 42) -> Path:
    from ner_export.finetune import TrainConfig, finetune

    config = TrainConfig(
        train=str(data),
        dev=str(data),
        out=str(out),
        base_model=str(base),
        epochs=2,
        batch_size=2,
        learning_rate=3e-3,
        warmup_ratio=0.0,
        seed=seed,
        progress=False,
    )
    finetune(config)
    return out


def _distill(teachers: list[Path], data: Path, out: Path, **options: Any) -> DistillResult:
    settings: dict[str, Any] = {"layers": 1, "epochs": 2, "batch_size": 2, "learning_rate": 3e-3, "warmup_ratio": 0.0}
    settings.update(options)
    files = {"train": str(data), "dev": str(data), "out": str(out)}
    return distill(DistillConfig(teachers=tuple(str(t) for t in teachers), **files, progress=False, **settings))


def _cli(*args: Any):
    from ner_export.cli import cli

    return CliRunner().invoke(cli, [str(a) for a in args])


def _one_line_error(result: Any, contains: str) -> None:
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 1, result.output
    assert len(lines) == 1 and lines[0].startswith("Error:") and contains in lines[0], result.output


@pytest.fixture(scope="module")
def teacher(tiny_checkpoint: Path, conll_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    needs_torch()
    return _teacher(tiny_checkpoint, conll_file, tmp_path_factory.mktemp("teacher") / "model")


@pytest.fixture(scope="module")
def student(teacher: Path, conll_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("student") / "model"
    result = _distill([teacher], conll_file, out, test=str(conll_file))
    assert result.layers == (0,) and result.test_f1 is not None and len(result.epochs) == 2
    return out


def test_layer_choices() -> None:
    def config(layers: int, choice: str) -> DistillConfig:
        return DistillConfig(teachers=("t",), train="t", dev="d", out="o", layers=layers, layer_choice=choice)

    assert chosen_layers(config(3, "bottom"), 6, "t") == [0, 1, 2]
    assert chosen_layers(config(3, "even"), 6, "t") == [0, 3, 5]
    assert chosen_layers(config(2, "even"), 12, "t") == [0, 11]
    assert chosen_layers(config(1, "even"), 6, "t") == [0]
    assert chosen_layers(config(3, "5,0,2"), 6, "t") == [0, 2, 5]
    with pytest.raises(DistillError, match="has 6 layers; a student must have fewer"):
        chosen_layers(config(6, "bottom"), 6, "t")
    with pytest.raises(DistillError, match="no layer 7"):
        chosen_layers(config(2, "0,7"), 6, "t")


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("layers", 0, "layers"),
        ("temperature", 0.0, "temperature"),
        ("soft_weight", 1.5, "soft_weight"),
        ("layer_choice", "top", "layer_choice"),
        ("layer_choice", "0,0", "distinct"),
        ("layer_choice", "0,1,2", "names 3 layers but layers=2"),
        ("teachers", (), "teachers"),
        ("unlabeled", "texts.txt", "soft_weight above 0"),
    ],
)
def test_bad_config_values(field: str, value: Any, message: str) -> None:
    settings: dict[str, Any] = {"teachers": ("t",), "layers": 2, field: value}
    if field == "unlabeled":
        settings["soft_weight"] = 0.0
    with pytest.raises(ValueError, match=message):
        DistillConfig(train="t", dev="d", out="o", **settings)


def test_the_student_keeps_the_teachers_reading_and_records_where_it_came_from(student: Path, teacher: Path) -> None:
    from ner_export.finetune import load_checkpoint, read_config

    config, teacher_config = read_config(student), read_config(teacher)
    assert config["num_hidden_layers"] == 1 and teacher_config["num_hidden_layers"] == 2
    for key in ("ner_export_casing", "ner_export_context", "max_length_trained", "id2label", "type_vocab_size"):
        assert config[key] == teacher_config[key], key
    record = config["ner_export_distillation"]
    assert record["teachers"] == [
        {
            "path": str(teacher.resolve()),
            "weights_sha256": {"model.safetensors": sha256_file(teacher / "model.safetensors")},
            "layers": 2,
            "dev_f1": json.loads((teacher / "metrics.json").read_text())["best_dev_f1"],
        }
    ]
    assert record["layers_kept"] == [0] and record["temperature"] == 2.0
    assert record["soft_weight"] == 0.5 and record["gold_weight"] == 0.5
    assert record["data"]["train"]["sentences"] == 4 and record["data"]["unlabeled"] is None
    metrics = json.loads((student / "metrics.json").read_text())
    assert metrics["distillation"] == record and len(metrics["epochs"]) == 2 and "test" in metrics
    assert metrics["best_dev_f1"] == max(row["dev_f1"] for row in metrics["epochs"])
    args = json.loads((student / "training_args.json").read_text())
    assert args["layers_kept"] == [0] and args["teachers"] == [str(teacher)] and args["max_length"] == 64
    assert (student / "README.md").is_file()  # the model card every checkpoint gets
    model, _ = load_checkpoint(str(student))  # an ordinary checkpoint
    assert len(model.base_model.encoder.layer) == 1


def test_the_student_exports_runs_in_the_runtime_and_is_benched_as_a_student(
    student: Path, teacher: Path, tiny_bundle: Path, conll_file: Path, tmp_path: Path
) -> None:
    from ner_export.runtime import BundleManifest, NerModel

    bundle = export_tiny_bundle(student, conll_file, tmp_path / "bundle")
    manifest = BundleManifest.read(bundle)
    assert manifest.source["checkpoint"] == str(student.resolve()) and manifest.casing
    bundle_config = json.loads((bundle / "config.json").read_text())  # listed, with its sha256, in the manifest
    assert "config.json" in manifest.files and bundle_config["num_hidden_layers"] == 1
    assert bundle_config["ner_export_distillation"]["layers_kept"] == [0]
    assert manifest.source["distillation"] == bundle_config["ner_export_distillation"]  # in bundle.json itself
    model = NerModel.load(bundle)
    assert len(model.predict(TEXTS)) == 3
    assert len(model.predict_words([text.split() for text in TEXTS])[1]) == 8
    from ner_export.benchmarks.frontier import FrontierConfig, run_frontier

    frontier = FrontierConfig((str(tiny_bundle), str(bundle)), str(conll_file), out=str(tmp_path), progress=False)
    measured = run_frontier(replace(frontier, latency_sentences=2, warmup=0)).data["bundles"]
    reference, distilled = measured.values()
    assert (reference["layers"], reference["distilled_from"]) == (2, None)
    assert distilled["layers"] == 1 and distilled["distilled_from"]["teachers"] == [str(teacher.resolve())]


def test_an_ensemble_averages_its_teachers(
    teacher: Path, tiny_checkpoint: Path, conll_file: Path, tmp_path: Path
) -> None:
    import numpy as np

    from ner_export.finetune import load_checkpoint
    from ner_export.finetune._distill_data import labelled_rows
    from ner_export.finetune._teacher import teacher_probabilities
    from ner_export.runtime.conll import read_conll

    second = _teacher(tiny_checkpoint, conll_file, tmp_path / "second", seed=7)
    result = _distill([teacher, second], conll_file, tmp_path / "student", epochs=1)
    record = json.loads((tmp_path / "student" / "metrics.json").read_text())["distillation"]
    assert [t["path"] for t in record["teachers"]] == [str(teacher.resolve()), str(second.resolve())]
    assert result.best_epoch == 1
    first_model, tokenizer = load_checkpoint(str(teacher))
    second_model, _ = load_checkpoint(str(second))
    rows = labelled_rows(tokenizer, read_conll(conll_file), first_model.config.label2id, 64, "none", True)
    both = teacher_probabilities([first_model, second_model], rows, 2.0, 0)
    alone = [teacher_probabilities([m], rows, 2.0, 0) for m in (first_model, second_model)]
    for mean, a, b in zip(both, *alone, strict=True):
        np.testing.assert_allclose(mean, (a + b) / 2, atol=1e-6)
        np.testing.assert_allclose(mean.sum(axis=1), 1.0, atol=1e-5)


def test_unlabeled_texts_from_jsonl_and_text_files(teacher: Path, conll_file: Path, tmp_path: Path) -> None:
    jsonl = tmp_path / "texts.jsonl"
    jsonl.write_text("".join(json.dumps({"text": t, "id": i}) + "\n" for i, t in enumerate(TEXTS)) + "[1, 2]\n")
    result = _distill([teacher], conll_file, tmp_path / "from-jsonl", epochs=1, unlabeled=str(jsonl))
    assert result.unlabeled is not None
    assert (result.unlabeled["texts"], result.unlabeled["skipped_records"]) == (3, 1)
    assert result.unlabeled["tokens"] >= 18 and result.unlabeled["windows"] == 3
    text = tmp_path / "texts.txt"
    text.write_text("\n".join(TEXTS * 10 + [" ".join(TEXTS * 8)]) + "\n")  # the last text is longer than a window
    run = _cli(
        "distill", teacher, "--train", conll_file, "--dev", conll_file, "--out", tmp_path / "from-text",
        "--layers", 1, "--epochs", 1, "--unlabeled", text, "--max-unlabeled", 31, "-q",
    )  # fmt: skip
    assert run.exit_code == 0, run.output
    assert "unlabeled: 31 texts" in run.output and "student kept teacher layers 0" in run.output
    record = json.loads((tmp_path / "from-text" / "config.json").read_text())["ner_export_distillation"]
    assert record["data"]["unlabeled"]["texts"] == 31 and record["data"]["unlabeled"]["windows"] > 31
    assert record["data"]["unlabeled"]["sha256"] == sha256_file(text)


def test_unlabeled_windows_follow_the_runtime(teacher: Path, tmp_path: Path) -> None:
    from ner_export.finetune import load_tokenizer
    from ner_export.finetune._distill_data import unlabeled_rows

    tokenizer = load_tokenizer(str(teacher))
    path = tmp_path / "long.txt"
    path.write_text("Smithing (Reuters), in Paris " * 20 + "\n")
    read = unlabeled_rows(tokenizer, str(path), 16, "none", True)
    assert read.texts == 1 and len(read.rows) > 1
    words = 0
    for row in read.rows:
        assert len(row.ids) <= 16 and row.ids[0] == tokenizer.cls_token_id and row.ids[-1] == tokenizer.sep_token_id
        assert set(row.labels) == {-100} and row.types is not None and len(row.types) == len(row.ids)
        tokens = tokenizer.convert_ids_to_tokens([row.ids[k] for k in row.positions])
        assert not any(t.startswith("##") or t in ("(", ")", ",") for t in tokens), tokens
        words += len(row.positions)
    assert words == 80  # every word once, by its first core token: "Smithing", "Reuters", "in", "Paris"


def test_the_same_seed_gives_the_same_student(teacher: Path, conll_file: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    for name in ("a", "b"):
        _distill([teacher], conll_file, tmp_path / name, epochs=1, seed=3)
    first, second = (load_file(tmp_path / name / "model.safetensors") for name in ("a", "b"))
    assert first.keys() == second.keys()
    assert all(first[key].equal(second[key]) for key in first)
    _distill([teacher], conll_file, tmp_path / "c", epochs=1, seed=4)
    other = load_file(tmp_path / "c" / "model.safetensors")
    assert not all(first[key].equal(other[key]) for key in first)


def test_gold_only_needs_no_teacher_outputs(teacher: Path, conll_file: Path, tmp_path: Path) -> None:
    result = _distill([teacher], conll_file, tmp_path / "gold", epochs=1, soft_weight=0.0)
    assert result.teacher_seconds < 1.0
    record = json.loads((tmp_path / "gold" / "config.json").read_text())["ner_export_distillation"]
    assert (record["soft_weight"], record["gold_weight"]) == (0.0, 1.0)


def test_bad_inputs_give_one_clear_line(teacher: Path, tiny_bundle: Path, conll_file: Path, tmp_path: Path) -> None:
    other_labels = make_tiny_checkpoint(tmp_path / "other", labels=["O", "B-PER", "I-PER"])

    def run(*teachers: Path, layers: int = 1, train: Path = conll_file) -> Any:
        more = [arg for t in teachers[1:] for arg in ("--teacher", t)]
        options = ["--train", train, "--dev", conll_file, "--out", tmp_path / "out", "--layers", layers, "-q"]
        return _cli("distill", teachers[0], *more, *options)

    _one_line_error(run(teacher, other_labels), "does not read text like teacher")
    _one_line_error(run(teacher, layers=2), "has 2 layers; a student must have fewer (--layers 2)")
    _one_line_error(run(tiny_bundle), "a bundle (bundle.json), not a checkpoint")
    _one_line_error(run(teacher, train=tmp_path / "absent.conll"), "absent.conll: no such file")
    _one_line_error(run(tmp_path / "nowhere"), "no such teacher checkpoint folder")
    _one_line_error(run(other_labels), "the train file has labels the teacher does not know: B-LOC")
    assert not (tmp_path / "out").exists()
    usage = _cli("distill", "--train", conll_file, "--dev", conll_file, "--out", tmp_path / "out", "--layers", 1)
    assert usage.exit_code == 2 and "name a teacher checkpoint" in usage.output


def test_the_students_card_parses_and_says_it_was_distilled(student: Path, teacher: Path) -> None:
    huggingface_hub = pytest.importorskip("huggingface_hub")

    card = huggingface_hub.ModelCard.load(student / "README.md")
    assert card.data.model_name == student.name and "knowledge-distillation" in card.data.tags
    assert f"(distilled checkpoint), distilled from `{teacher.name}`" in card.text
    assert "| teacher layers kept | 0 |" in card.text
    assert {r.dataset_split for r in card.data.eval_results} == {"validation", "test"}


def test_a_student_learns_from_span_files_skipping_bad_records(teacher: Path, conll_file: Path, tmp_path: Path) -> None:
    spans = tmp_path / "train.jsonl"
    assert _cli("convert", conll_file, spans).exit_code == 0
    lines = spans.read_text(encoding="utf-8").splitlines()
    lines.insert(1, "not json")
    spans.write_text("\n".join(lines) + "\n", encoding="utf-8")
    args = ["distill", teacher, "--train", spans, "--dev", conll_file, "--layers", 1, "--epochs", 1, "-q"]
    _one_line_error(_cli(*args, "--out", tmp_path / "stopped"), f"{spans}:2: not valid JSON")
    result = _cli(*args, "--out", tmp_path / "student", "--skip-bad")
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines()[:2] == [
        f"skipped {spans}:2: not valid JSON (Expecting value at column 1): 'not json'",
        f"train data: {spans}: spans (entities), 4 records, 10 entities, 1 document(s); 1 bad record(s) skipped",
    ]
    assert "student kept teacher layers 0" in result.stdout
    metrics = json.loads((tmp_path / "student" / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["data"]["train"]["bad_records"] == 1 and metrics["data"]["dev"]["data_format"] == "conll"
    assert "- train: train.jsonl, 4 records, 10 entities, 1 bad record(s) skipped" in (
        tmp_path / "student" / "README.md"
    ).read_text(encoding="utf-8")


def test_a_students_bundle_card_says_it_was_distilled(
    student: Path, teacher: Path, tiny_bundle: Path, tmp_path: Path
) -> None:
    huggingface_hub = pytest.importorskip("huggingface_hub")
    from ner_export.export.bundle_card import write_bundle_card
    from ner_export.export.validate import ValidationReport
    from ner_export.runtime import BundleManifest

    manifest = BundleManifest.read(tiny_bundle)  # any bundle's measurements: the card tells them as given
    report = ValidationReport(**manifest.validation)
    (tmp_path / "model_int8.onnx").write_bytes(b"graph")
    write_bundle_card(tmp_path, student, "student-bundle", manifest, report)
    card = huggingface_hub.ModelCard.load(tmp_path / "README.md")
    assert "knowledge-distillation" in card.data.tags and "onnx" in card.data.tags
    assert f"(int8 ONNX bundle), distilled from `{teacher.name}`" in card.text
    test_f1 = json.loads((student / "metrics.json").read_text(encoding="utf-8"))["test"]["f1"]
    assert f"| checkpoint test F1 (PyTorch) | {test_f1:.4f} on " in card.text
    assert [r.dataset_split for r in card.data.eval_results] == ["validation"]  # the gate's score, not PyTorch's
