"""Distillation: train a student with fewer layers on its teacher's token probabilities.

The recipe is the standard one for token classifiers (Hinton et al.'s soft targets), kept next to
finetune's so that a student is trained, selected and written exactly like a fine-tuned checkpoint:

- The student is the teacher cut to N of its layers (`_student`), embeddings and classifier kept, so
  it starts from a working network and keeps the teacher's tokenizer, labels, casing and context.
- The teachers run once over every training row (`_teacher.teacher_probabilities`); each epoch then
  costs only the student. The loss is `soft_weight * T^2 * KL(teacher_T || student_T)` over the tokens
  that carry a word, plus `(1 - soft_weight) *` cross-entropy on the gold labels where there are any;
  T^2 keeps the soft part's gradients on the gold part's scale whatever the temperature.
- Train, dev and test are CoNLL or span files, read as finetune reads them (`runtime.labeled_data`).
- Raw texts (`--unlabeled`) add rows that only the teacher labels, windowed as the runtime reads text.
- Batches, optimiser (AdamW, linear warmup and decay, clipping), seeded shuffling, dev F1 after every
  epoch, the best epoch's weights kept and written once, atomically, are finetune's (`_batching`,
  `_train`, `_checkpoint.save_checkpoint`); the same seed gives the same student.

What the student came from (teachers and the sha256 of their weights, the layers kept, temperature,
loss weights, data) is written into its config.json as `ner_export_distillation` and into
metrics.json; export copies config.json into the bundle, so the bundle records it too.
"""

from __future__ import annotations

import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ner_export.runtime.conll import Sentence
from ner_export.runtime.errors import DataNotFoundError, LabelMismatchError
from ner_export.runtime.labeled_data import read_labeled
from ner_export.runtime.manifest import sha256_file

from ._batching import shuffled_batches
from ._checkpoint import import_torch, save_checkpoint
from ._distill_config import DistillConfig, DistillResult, chosen_layers
from ._distill_data import IGNORED, DistillRow, UnlabeledRows, collate_soft, labelled_rows, unlabeled_rows
from ._student import make_student
from ._tagging import tag_words
from ._teacher import Teachers, check_teacher_folder, load_teachers, teacher_probabilities
from ._train import _NO_DECAY, _prepare_out, _seqeval_scores, optimizer_step, show_running_loss

_EVAL_BATCH = 64
_DEV_SAMPLE_SENTENCES = 1000  # dev sentences kept in the checkpoint for export validation
CONFIG_KEY = "ner_export_distillation"
"""The config.json entry (checkpoint and bundle) that records what a student was distilled from."""


@dataclass(frozen=True)
class _RunData:
    """The sentences of one run and the rows the student learns from."""

    train: list[Sentence]
    dev: list[Sentence]
    test: list[Sentence] | None
    rows: list[DistillRow]
    unlabeled: UnlabeledRows | None
    reports: dict[str, dict[str, Any]]  # what reading each labelled file used and set aside (counts)


def distill(config: DistillConfig) -> DistillResult:
    """Distil `config.teachers` into a student of `config.layers` layers and write it to `config.out`.

    Errors a user can fix are raised before any training: a missing file (DataNotFoundError), an
    existing output (OutputExistsError), a teacher that is a bundle, teachers that read text differently
    or a student as deep as its teacher (DistillError), data labels the teacher lacks (LabelMismatchError).
    """
    torch = import_torch()
    out = Path(config.out)
    _prepare_out(out, config.force)
    _check_inputs(config)
    teachers = load_teachers(config.teachers)
    layers = chosen_layers(config, teachers.records[0].layers, config.teachers[0])
    max_length = config.max_length or teachers.window
    data = _read_data(config, teachers, max_length)
    random.seed(config.seed)
    torch.manual_seed(config.seed)
    started = time.perf_counter()
    pad_id = teachers.tokenizer.pad_token_id or 0
    soft = None
    if config.soft_weight > 0:
        soft = teacher_probabilities(teachers.models, data.rows, config.temperature, pad_id, config.progress)
    teacher_seconds = time.perf_counter() - started
    student = make_student(teachers.models[0], layers)
    teachers.models.clear()  # the student is a copy: the teachers' memory can go
    history, seconds = _train_student(torch, student, teachers.tokenizer, data, soft, config, max_length, teachers)
    record = _provenance(config, teachers, layers, data)
    metrics = _run_metrics(history, seconds, teacher_seconds, data, teachers, record)
    test_f1 = None
    if data.test is not None:
        test_scores = _model_scores(student, teachers.tokenizer, data.test, max_length, teachers.context)
        test_f1 = test_scores["f1"]
        metrics["test"] = {**test_scores, "sentences": len(data.test)}
    setattr(student.config, CONFIG_KEY, record)
    args = {
        **asdict(config),
        "base_model": teachers.records[0].path,
        "layers_kept": layers,
        "max_length": max_length,  # the teacher's unless asked otherwise
        "context_chosen": teachers.context,
        "context_reason": metrics["context_reason"],
    }
    save_checkpoint(
        out,
        student,
        teachers.tokenizer,
        max_length=max_length,
        context=teachers.context,
        dev_sample=data.dev[:_DEV_SAMPLE_SENTENCES],
        metrics=metrics,
        args=args,
        model_card=True,
    )
    return DistillResult(
        out=str(out),
        layers=tuple(layers),
        best_epoch=metrics["best_epoch"],
        best_dev_f1=metrics["best_dev_f1"],
        train_seconds=round(seconds, 2),
        teacher_seconds=round(teacher_seconds, 2),
        test_f1=test_f1,
        teacher_dev_f1=teachers.records[0].dev_f1,
        epochs=history,
        unlabeled=record["data"]["unlabeled"],
        data=data.reports,
    )


def _run_metrics(
    history: list[dict[str, Any]],
    seconds: float,
    teacher_seconds: float,
    data: _RunData,
    teachers: Teachers,
    record: dict[str, Any],
) -> dict[str, Any]:
    """metrics.json as finetune writes it (best epoch, dev F1 per epoch, time), plus the distillation record."""
    best = max(history, key=lambda row: row["dev_f1"])
    return {
        "best_epoch": best["epoch"],
        "best_dev_f1": best["dev_f1"],
        "context": teachers.context,
        "context_reason": "the teacher's: a student reads text as its teacher does",
        "train_seconds": round(seconds, 2),
        "teacher_seconds": round(teacher_seconds, 2),
        "train_sentences": len(data.train),
        "dev_sentences": len(data.dev),
        "labels": teachers.labels,
        "epochs": history,
        "data": data.reports,
        "distillation": record,
    }


def _check_inputs(config: DistillConfig) -> None:
    """Every teacher folder and data file exists (and each teacher is a checkpoint), before anything loads."""
    for teacher in config.teachers:
        check_teacher_folder(teacher)
    files = [config.train, config.dev, config.test, config.unlabeled]
    for path in files:
        if path is not None and path != "-" and not Path(path).is_file():
            raise DataNotFoundError(f"{path}: no such file")


def _read_data(config: DistillConfig, teachers: Teachers, max_length: int) -> _RunData:
    """The run's sentences and rows; LabelMismatchError when a file has labels the teachers lack."""
    files = [("train", config.train), ("dev", config.dev), ("test", config.test)]
    read = {
        name: read_labeled(path, config.data_format, config.offsets, config.skip_bad) for name, path in files if path
    }
    train = read["train"].sentences
    if config.max_train_sentences:
        train = train[: config.max_train_sentences]
    dev = read["dev"].sentences
    test = read["test"].sentences if "test" in read else None
    for name, sentences in (("train", train), ("dev", dev), ("test", test or [])):
        unknown = sorted({t for s in sentences for t in s.tags} - set(teachers.labels))
        if unknown:
            raise LabelMismatchError(
                f"the {name} file has labels the teacher does not know: {', '.join(unknown)} "
                f"(the teacher's: {', '.join(teachers.labels)})"
            )
    label2id = {label: i for i, label in enumerate(teachers.labels)}
    tokenizer = teachers.tokenizer
    rows = labelled_rows(tokenizer, train, label2id, max_length, teachers.context, teachers.casing)
    unlabeled = None
    if config.unlabeled:
        unlabeled = unlabeled_rows(
            tokenizer,
            config.unlabeled,
            max_length,
            teachers.context,
            teachers.casing,
            fmt=config.unlabeled_format,
            text_field=config.text_field,
            limit=config.max_unlabeled,
        )
        rows = rows + unlabeled.rows
    return _RunData(train, dev, test, rows, unlabeled, {name: data.report.counts() for name, data in read.items()})


def _provenance(config: DistillConfig, teachers: Teachers, layers: list[int], data: _RunData) -> dict[str, Any]:
    """What the student was distilled from, as config.json and metrics.json record it."""

    def data_file(path: str | None, sentences: list[Sentence] | None) -> dict[str, Any] | None:
        if path is None or sentences is None:
            return None
        return {"path": str(Path(path).resolve()), "sha256": sha256_file(Path(path)), "sentences": len(sentences)}

    unlabeled = None
    if data.unlabeled is not None and config.unlabeled is not None:
        unlabeled = {
            "path": config.unlabeled if config.unlabeled == "-" else str(Path(config.unlabeled).resolve()),
            "sha256": None if config.unlabeled == "-" else sha256_file(Path(config.unlabeled)),
            "texts": data.unlabeled.texts,
            "tokens": data.unlabeled.tokens,
            "windows": len(data.unlabeled.rows),
            "skipped_records": data.unlabeled.skipped_records,
        }
    return {
        "teachers": [record.as_dict() for record in teachers.records],
        "layers_kept": layers,
        "layer_choice": config.layer_choice,
        "temperature": config.temperature,
        "soft_weight": config.soft_weight,
        "gold_weight": round(1 - config.soft_weight, 6),
        "data": {
            "train": data_file(config.train, data.train),
            "dev": data_file(config.dev, data.dev),
            "unlabeled": unlabeled,
        },
    }


def _optimizer(torch: Any, model: Any, config: DistillConfig, total_steps: int) -> tuple[Any, Any]:
    """finetune's AdamW (no decay on biases and norms) with linear warmup and decay."""
    from transformers import get_linear_schedule_with_warmup

    named = list(model.named_parameters())
    groups = [
        {"params": [p for n, p in named if not any(k in n for k in _NO_DECAY)], "weight_decay": config.weight_decay},
        {"params": [p for n, p in named if any(k in n for k in _NO_DECAY)], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(groups, lr=config.learning_rate)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(config.warmup_ratio * total_steps), total_steps)
    return optimizer, scheduler


def _batch_loss(torch: Any, model: Any, batch: dict[str, Any], config: DistillConfig) -> Any:
    """`soft_weight * T^2 * KL(teacher_T || student_T)` on the word tokens plus the gold part."""
    labels = batch.pop("labels")
    targets, mask = batch.pop("soft_targets", None), batch.pop("soft_mask", None)
    logits = model(**batch).logits.float()
    loss = logits.new_zeros(())
    if config.soft_weight < 1 and bool((labels != IGNORED).any()):
        gold = torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=IGNORED
        )
        loss = loss + (1 - config.soft_weight) * gold
    if targets is not None and bool(mask.any()):
        teacher = targets[mask]
        student = torch.log_softmax(logits[mask] / config.temperature, dim=-1)
        divergence = (teacher * (torch.log(teacher.clamp_min(1e-12)) - student)).sum(-1).mean()
        loss = loss + config.soft_weight * config.temperature**2 * divergence
    return loss


def _train_student(
    torch: Any,
    model: Any,
    tokenizer: Any,
    data: _RunData,
    soft: list[np.ndarray] | None,
    config: DistillConfig,
    max_length: int,
    teachers: Teachers,
) -> tuple[list[dict[str, Any]], float]:
    """Train for `config.epochs`, scoring dev after each; leaves `model` at its best epoch, in eval mode.

    Returns the per-epoch history and the total seconds.
    """
    from tqdm.auto import tqdm

    rows = data.rows
    lengths = [len(row.ids) for row in rows]
    pad_id = tokenizer.pad_token_id or 0
    steps_per_epoch = (len(rows) + config.batch_size - 1) // config.batch_size
    optimizer, scheduler = _optimizer(torch, model, config, steps_per_epoch * config.epochs)
    shuffler = random.Random(config.seed)
    history: list[dict[str, Any]] = []
    best_f1, best_state = -1.0, None
    started = time.perf_counter()
    for epoch in range(1, config.epochs + 1):
        epoch_start = time.perf_counter()
        model.train()
        losses: list[float] = []
        batches = shuffled_batches(lengths, config.batch_size, shuffler, False)
        bar = tqdm(batches, desc=f"epoch {epoch}/{config.epochs}", disable=not config.progress, unit="batch")
        for chosen in bar:
            batch_soft = [soft[i] for i in chosen] if soft is not None else None
            loss = _batch_loss(torch, model, collate_soft(torch, [rows[i] for i in chosen], batch_soft, pad_id), config)
            optimizer_step(torch, model, loss, (optimizer, scheduler), config.max_grad_norm)
            losses.append(loss.item())
            show_running_loss(bar, losses)
        train_seconds = time.perf_counter() - epoch_start
        model.eval()
        scores = _model_scores(model, tokenizer, data.dev, max_length, teachers.context)
        history.append(
            {
                "epoch": epoch,
                "train_loss": sum(losses) / max(1, len(losses)),
                "dev_f1": scores["f1"],
                "dev_precision": scores["precision"],
                "dev_recall": scores["recall"],
                "train_seconds": round(train_seconds, 2),
                "eval_seconds": round(time.perf_counter() - epoch_start - train_seconds, 2),
            }
        )
        if config.progress:
            tqdm.write(f"epoch {epoch}: loss {history[-1]['train_loss']:.4f}  dev F1 {scores['f1']:.4f}")
        if scores["f1"] > best_f1:
            best_f1 = scores["f1"]
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return history, time.perf_counter() - started


def _model_scores(
    model: Any, tokenizer: Any, sentences: list[Sentence], max_length: int, context: str
) -> dict[str, float]:
    """seqeval's entity-level F1, precision and recall of the student's tags, read as finetune reads dev."""
    words = [list(s.words) for s in sentences]
    documents = [s.document for s in sentences]
    predicted = tag_words(model, tokenizer, words, _EVAL_BATCH, max_length, context, documents)
    return _seqeval_scores([list(s.tags) for s in sentences], predicted)
