"""Fine-tuning: label alignment, the loss going down, a checkpoint the pipeline can load."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from ner_export.finetune import (
    TRAIN_CONTEXTS,
    TrainConfig,
    TrainResult,
    choose_context,
    finetune,
    first_subword_mask,
    load_tokenizer,
    training_features,
)
from ner_export.runtime import CheckpointError, NerExportError


def _finetune(train: Path, dev: Path, out: Path, base: Path, test: Path | None = None, **options: Any) -> TrainResult:
    """Fine-tune quietly on CoNLL files from a base model folder."""
    files = {"train": str(train), "dev": str(dev), "out": str(out), "test": str(test) if test else None}
    return finetune(TrainConfig(**files, base_model=str(base), progress=False, **options))


def test_first_subword_mask() -> None:
    assert first_subword_mask([None, 0, 0, 1, 2, 2, None]) == [False, True, False, True, True, False, False]


def test_only_the_first_subword_carries_the_label(tiny_checkpoint: Path) -> None:
    from ner_export.finetune import Sentence

    tokenizer = load_tokenizer(str(tiny_checkpoint))
    sentence = Sentence(("Smithing", "in", "Paris"), ("B-PER", "O", "B-LOC"))
    ((ids, labels, types),) = training_features(tokenizer, [sentence], {"O": 0, "B-PER": 1, "B-LOC": 2}, 64)
    tokens = tokenizer.convert_ids_to_tokens(ids)
    assert tokens[:4] == ["[CLS]", "smith", "##ing", "in"]
    assert labels[0] == -100 and labels[-1] == -100
    assert labels[1:4] == [1, -100, 0]
    assert [label for label in labels if label != -100] == [1, 0, 2]
    assert types is None  # no casing: token_type_ids left to the model's default


def test_casing_classes_follow_the_original_characters_of_each_token(tiny_checkpoint: Path) -> None:
    from ner_export.finetune import Sentence

    tokenizer = load_tokenizer(str(tiny_checkpoint))
    sentence = Sentence(("Smithing", "in", "PARIS", "paris"), ("B-PER", "O", "B-LOC", "B-LOC"))
    ((ids, labels, types),) = training_features(
        tokenizer, [sentence], {"O": 0, "B-PER": 1, "B-LOC": 2}, 64, casing=True
    )
    assert tokenizer.convert_ids_to_tokens(ids) == ["[CLS]", "smith", "##ing", "in", "paris", "paris", "[SEP]"]
    assert types == [0, 1, 0, 0, 2, 0, 0]  # "Smith" capital, "ing" not, PARIS all capitals; specials 0


@pytest.fixture(scope="module")
def trained(tiny_checkpoint: Path, conll_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("trained") / "model"
    _finetune(
        conll_file,
        conll_file,
        out,
        tiny_checkpoint,
        test=conll_file,
        epochs=10,
        batch_size=1,
        learning_rate=3e-3,
        warmup_ratio=0.0,
    )
    return out


def test_training_lowers_the_loss_and_writes_metrics(trained: Path) -> None:
    metrics = json.loads((trained / "metrics.json").read_text())
    losses = [row["train_loss"] for row in metrics["epochs"]]
    assert len(losses) == 10
    assert losses[-1] < 0.5 * losses[0], losses
    assert metrics["best_dev_f1"] == max(row["dev_f1"] for row in metrics["epochs"])
    assert metrics["best_dev_f1"] > 0.5
    assert "test" in metrics and metrics["train_seconds"] > 0
    args = json.loads((trained / "training_args.json").read_text())
    assert args["epochs"] == 10 and args["learning_rate"] == 3e-3
    config = json.loads((trained / "config.json").read_text())
    assert config["id2label"]["0"] == "O" and config["label2id"]["B-PER"] > 0


def test_the_saved_checkpoint_tags_the_training_sentences_as_learned(trained: Path, conll_file: Path) -> None:
    """The folder holds the best epoch's weights: scoring it again gives the best dev F1, and on four
    sentences trained to a low loss that is nearly every entity (a model that finds none scores 0)."""
    from ner_export.finetune import evaluate_checkpoint

    metrics = json.loads((trained / "metrics.json").read_text())
    report = evaluate_checkpoint(trained, conll_file)
    assert report.f1 == pytest.approx(metrics["best_dev_f1"])
    assert report.f1 >= 0.9, report.table()
    assert report.scores["micro"].correct >= 9  # of the 10 entities in the file


def test_a_casing_checkpoint_is_refused_by_transformers_and_finds_what_it_learned_in_ner_pipeline(
    trained: Path,
) -> None:
    import re

    from transformers import pipeline

    from ner_export.finetune import CASING_MODEL_TYPE, ner_pipeline

    # stock transformers would feed zeros where the model reads casing: it must refuse, naming the marker
    with pytest.raises(ValueError, match=re.escape(CASING_MODEL_TYPE)):
        pipeline("token-classification", model=str(trained), aggregation_strategy="first", device="cpu")
    casing = ner_pipeline(
        str(trained), aggregation_strategy="first", device="cpu"
    )  # fed the casing it was trained with
    found = [(e["entity_group"], e["start"], e["end"]) for e in casing("John Smith lives in Paris .")]
    assert found == [("PER", 0, 10), ("LOC", 20, 25)]


def test_a_casing_checkpoint_can_be_the_base_of_another_training(
    trained: Path, conll_file: Path, tmp_path: Path
) -> None:
    from ner_export.finetune import checkpoint_casing, load_checkpoint

    out = tmp_path / "again"
    _finetune(conll_file, conll_file, out, trained, epochs=1, batch_size=4)
    model, _ = load_checkpoint(str(out))
    assert checkpoint_casing(model.config) and model.config.type_vocab_size == 3


def test_a_checkpoint_without_casing_loads_in_transformers_pipeline(
    tiny_checkpoint: Path, conll_file: Path, tmp_path: Path
) -> None:
    from transformers import pipeline

    out = tmp_path / "model"
    _finetune(conll_file, conll_file, out, tiny_checkpoint, epochs=1, batch_size=4, casing=False)
    assert json.loads((out / "config.json").read_text())["model_type"] == "bert"
    stock = pipeline("token-classification", model=str(out), aggregation_strategy="first", device="cpu")
    assert isinstance(stock("John Smith lives in Paris ."), list)  # a plain HF folder


def test_existing_output_needs_force(tiny_checkpoint: Path, conll_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "precious.txt").write_text("keep")
    with pytest.raises(NerExportError, match="--force"):
        _finetune(conll_file, conll_file, out, tiny_checkpoint)
    assert (out / "precious.txt").read_text() == "keep"


def test_base_model_without_tokenizer_is_refused(tiny_checkpoint: Path, conll_file: Path, tmp_path: Path) -> None:
    base = tmp_path / "base"
    base.mkdir()
    for name in ("config.json", "model.safetensors"):
        shutil.copy(tiny_checkpoint / name, base / name)
    with pytest.raises(CheckpointError, match="no tokenizer files"):
        _finetune(conll_file, conll_file, tmp_path / "o", base)


def test_dev_labels_unknown_to_training_are_refused(tiny_checkpoint: Path, conll_file: Path, tmp_path: Path) -> None:
    dev = tmp_path / "dev.conll"
    dev.write_text("x B-EVENT\n")
    with pytest.raises(NerExportError, match="B-EVENT"):
        _finetune(conll_file, dev, tmp_path / "o", tiny_checkpoint)


@pytest.mark.parametrize(
    "field, value",
    [
        ("epochs", 0),
        ("batch_size", 0),
        ("learning_rate", 0.0),
        ("max_length", 4),
        ("target_tokens", -1),
        ("target_tokens", 64),
    ],
)
def test_bad_config_values(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        TrainConfig(train="t", dev="d", out="o", **{field: value})


def test_packed_targets_need_document_context() -> None:
    with pytest.raises(ValueError, match="context='document'"):
        TrainConfig(train="t", dev="d", out="o", context="none", target_tokens=16)


def test_packed_targets_are_refused_with_auto_context_too() -> None:
    """auto may choose none, and packing without documents means nothing: ask for document context."""
    assert TrainConfig(train="t", dev="d", out="o").context == "auto"
    with pytest.raises(ValueError, match="context='document'"):
        TrainConfig(train="t", dev="d", out="o", target_tokens=16)


def test_auto_is_a_training_choice_never_a_stored_mode() -> None:
    from ner_export.runtime.context import CONTEXT_MODES

    assert TRAIN_CONTEXTS == ("auto", *CONTEXT_MODES) and "auto" not in CONTEXT_MODES
    with pytest.raises(ValueError, match="context must be one of auto, none, document"):
        TrainConfig(train="t", dev="d", out="o", context="sentence")


@pytest.mark.parametrize(
    "asked, documents, chosen, reason",
    [
        ("auto", 1, "none", "chosen automatically: no -DOCSTART- line separates documents"),
        ("auto", 2, "document", "chosen automatically: the training file marks 2 documents with -DOCSTART- lines"),
        (
            "document",
            1,
            "document",
            "as asked; the training file marks no documents, so context comes from consecutive",
        ),
        ("document", 946, "document", "as asked; the training file marks 946 documents"),
        ("none", 946, "none", "as asked; the training file marks 946 documents"),
        ("none", 1, "none", "as asked"),
    ],
)
def test_choose_context(asked: str, documents: int, chosen: str, reason: str) -> None:
    mode, why = choose_context(asked, documents)
    assert mode == chosen and why.startswith(reason), why


def test_neighbour_relatedness_tells_a_document_stream_from_independent_texts() -> None:
    import random

    from ner_export.finetune import neighbour_relatedness
    from ner_export.runtime.conll import Sentence

    stream = [Sentence(("Topic" + "abcdefghij"[t], "was", "up", "."), ("O",) * 4) for t in range(10) for _ in range(8)]
    related = neighbour_relatedness(stream)
    assert related.related and related.adjacent > 0.8 and related.random < 0.2 and related.pairs == 79
    shuffled = list(stream)
    random.Random(0).shuffle(shuffled)
    assert not neighbour_relatedness(shuffled).related
    assert not neighbour_relatedness(stream[:20]).related  # too few pairs to tell
    mode, why = choose_context("auto", 1, related)
    assert mode == "document" and "consecutive sentences are related" in why and "79 pairs" in why
    mode, why = choose_context("auto", 1, neighbour_relatedness(shuffled))
    assert mode == "none" and "look unrelated" in why
    assert choose_context("none", 1, related)[0] == "none"  # an explicit choice is kept


def test_a_file_without_document_marks_trains_without_context_by_default(trained: Path) -> None:
    """`trained` used the default context on a file with no -DOCSTART- line."""
    config = json.loads((trained / "config.json").read_text())
    assert config["ner_export_context"] == "none"
    reason = "chosen automatically: no -DOCSTART- line separates documents in the training file"
    metrics = json.loads((trained / "metrics.json").read_text())
    assert metrics["context"] == "none" and metrics["context_reason"].startswith(reason)
    args = json.loads((trained / "training_args.json").read_text())
    assert args["context"] == "auto" and args["context_chosen"] == "none"
    assert args["context_reason"] == metrics["context_reason"]


def test_a_file_with_documents_trains_with_context_by_default(
    tiny_checkpoint: Path, conll_file: Path, tmp_path: Path
) -> None:
    from conftest import TRAIN_CONLL

    from ner_export.finetune import checkpoint_context, load_checkpoint

    sentences = TRAIN_CONLL.strip().split("\n\n")
    train = tmp_path / "train.conll"
    documents = [
        "-DOCSTART- -X- O O\n\n" + "\n\n".join(sentences[:2]),
        "-DOCSTART- -X- O O\n\n" + "\n\n".join(sentences[2:]),
    ]
    train.write_text("\n\n".join(documents) + "\n", encoding="utf-8")
    result = _finetune(train, conll_file, tmp_path / "model", tiny_checkpoint, epochs=1, max_length=32)
    reason = "chosen automatically: the training file marks 2 documents with -DOCSTART- lines"
    assert result.context == "document" and result.context_reason.startswith(reason)
    model, _ = load_checkpoint(str(tmp_path / "model"))
    assert checkpoint_context(model.config) == ("document", 32)
    metrics = json.loads((tmp_path / "model" / "metrics.json").read_text())
    assert (metrics["context"], metrics["context_reason"]) == (result.context, result.context_reason)
    args = json.loads((tmp_path / "model" / "training_args.json").read_text())
    assert (args["context"], args["context_chosen"]) == ("auto", "document")


def test_conll2003_keeps_document_context_under_auto() -> None:
    """CoNLL-2003's train.txt marks no documents, yet is news split into sentences: auto must see that
    (the committed CoNLL results were trained with document context)."""
    train = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "conll2003" / "train.txt"
    if not train.is_file():
        pytest.skip(f"CoNLL-2003 is not at {train} (it is not redistributable; see shared/README.md)")
    import warnings

    from ner_export.finetune import neighbour_relatedness
    from ner_export.runtime.conll import read_conll

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the file's I- tags repaired to B-, reported elsewhere
        sentences = read_conll(train)
    assert len({s.document for s in sentences}) == 1  # no -DOCSTART- lines in this copy
    mode, why = choose_context("auto", 1, neighbour_relatedness(sentences))
    assert mode == "document" and "consecutive sentences are related" in why


def _span_training_file(folder: Path) -> Path:
    """The conftest training sentences as a span file in two named documents, plus one bad record and
    one span that cuts a word (`Paris` in `Paris-based`)."""
    from conftest import TRAIN_CONLL

    from ner_export.runtime.conll import read_conll
    from ner_export.runtime.conll_spans import sentence_records

    conll = folder / "train.conll"
    conll.write_text(TRAIN_CONLL, encoding="utf-8")
    records = sentence_records(read_conll(conll))
    for i, record in enumerate(records):
        record["doc_id"] = "first" if i < 2 else "second"
    records.insert(1, {"text": "John lives in Paris .", "entities": [{"start": 0, "end": 4, "label": ""}]})
    records.append({"text": "a Paris-based bank", "entities": [{"start": 2, "end": 7, "label": "LOC"}]})
    spans = folder / "train.jsonl"
    spans.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return spans


def test_a_span_file_trains_with_its_documents_and_the_checkpoint_has_a_model_card(
    tiny_checkpoint: Path, conll_file: Path, tmp_path: Path
) -> None:
    from ner_export.runtime.errors import DataFormatError
    from ner_export.runtime.labeled_data import MisalignedSpansWarning, SkippedRecordsWarning

    train = _span_training_file(tmp_path)
    with pytest.raises(DataFormatError, match=r"train.jsonl:2: entities\[0\]: the label is empty"):
        _finetune(train, conll_file, tmp_path / "refused", tiny_checkpoint, epochs=1)
    with pytest.warns(SkippedRecordsWarning), pytest.warns(MisalignedSpansWarning, match="'Paris' cuts 'Paris-based'"):
        result = _finetune(
            train, conll_file, tmp_path / "model", tiny_checkpoint, test=train, epochs=1, max_length=32, skip_bad=True
        )
    assert result.context == "document" and "records name 3 documents (doc_id)" in result.context_reason
    metrics = json.loads((tmp_path / "model" / "metrics.json").read_text())
    assert metrics["data"]["train"] == {
        "path": str(train),
        "data_format": "spans",
        "shape": "entities",
        "records": 5,
        "spans": 11,
        "documents": 3,  # the misaligned record names no document: it forms the unnamed one
        "bad_records": 1,
        "misaligned_spans": 1,
    }
    assert metrics["data"]["dev"]["data_format"] == "conll"
    args = json.loads((tmp_path / "model" / "training_args.json").read_text())
    assert (args["data_format"], args["offsets"], args["skip_bad"]) == ("auto", "codepoints", True)

    huggingface_hub = pytest.importorskip("huggingface_hub")
    card = huggingface_hub.ModelCard.load(tmp_path / "model" / "README.md")
    assert card.data.model_name == "model" and card.data.library_name == "ner-export"  # trained with casing
    splits = {(r.dataset_split, r.metric_type): r.metric_value for r in card.data.eval_results}
    assert splits[("validation", "f1")] == round(metrics["best_dev_f1"], 4)
    assert splits[("test", "f1")] == round(metrics["test"]["f1"], 4)
    assert "| train data | train.jsonl (spans) |" in card.text
    assert "1 bad record(s) skipped, 1 span(s) not aligned with words" in card.text
    weights = next(p for p in (tmp_path / "model").iterdir() if p.name.startswith("model."))
    digest = hashlib.sha256(weights.read_bytes()).hexdigest()
    assert f"| `{weights.name}` | `{digest}` |" in card.text


def test_bad_data_format_and_offsets_are_refused() -> None:
    with pytest.raises(ValueError, match="data_format must be one of auto, conll, spans"):
        TrainConfig(train="t", dev="d", out="o", data_format="json")
    with pytest.raises(ValueError, match="offsets must be one of codepoints, utf16"):
        TrainConfig(train="t", dev="d", out="o", offsets="utf8")
