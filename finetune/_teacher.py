"""Teachers: load and check the checkpoints a student learns from, and compute their answers once.

Several teachers form an ensemble: each token's tempered probabilities are averaged over them. They
must read text alike, or their answers would not be about the same tokens: the same labels in the same
order, the same vocabulary, the same casing classes and the same context mode (and window, with
document context). Each difference, and a teacher that is a bundle (its graphs cannot be trained or
cut into layers) or no checkpoint at all, is one `DistillError` line naming the folder.

The answers are computed once, before training, for every row's word-carrying tokens only, and kept
in memory as float32 (CoNLL-2003's 14,041 sentences: about 200,000 tokens x 9 labels, 7 MB), so no
epoch runs a teacher again. Rows are run sorted by length, which keeps padding small and changes no
result. What identifies a teacher (path, sha256 of its weights, depth, dev F1) is recorded in the
student's config.json and metrics.json, and from there in its bundle.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ner_export.runtime.errors import DataNotFoundError
from ner_export.runtime.files import read_json
from ner_export.runtime.manifest import MANIFEST_NAME, is_bundle, sha256_file

from ._checkpoint import CONFIG_NAME, checkpoint_casing, checkpoint_context, load_checkpoint
from ._distill_config import DistillError
from ._distill_data import DistillRow, collate_soft
from ._student import teacher_depth

_WEIGHT_PATTERNS = ("model*.safetensors", "pytorch_model*.bin")
_TEACHER_BATCH = 64
_DEFAULT_WINDOW = 64  # finetune's default training window, for a checkpoint that does not record its own


@dataclass(frozen=True)
class TeacherRecord:
    """What identifies one teacher: its folder, the sha256 of each weights file, depth and dev F1."""

    path: str
    weights: dict[str, str]
    layers: int
    dev_f1: float | None

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "weights_sha256": self.weights, "layers": self.layers, "dev_f1": self.dev_f1}


@dataclass(frozen=True)
class Teachers:
    """The loaded teachers (the first is the one the student is cut from) and how they all read text."""

    models: list[Any]
    tokenizer: Any
    records: list[TeacherRecord]
    labels: list[str]
    casing: bool
    context: str
    window: int  # the training window: max_length_trained, or finetune's default when not recorded


def check_teacher_folder(path: str) -> None:
    """DataNotFoundError for a missing folder, DistillError for a bundle or a folder without config.json."""
    folder = Path(path)
    if not folder.exists():
        raise DataNotFoundError(f"{path}: no such teacher checkpoint folder")
    if is_bundle(folder):
        raise DistillError(
            f"{path}: a bundle ({MANIFEST_NAME}), not a checkpoint; distil from the checkpoint folder it was "
            "exported from (its transformer layers and weights are what the student is cut from)"
        )
    if not (folder / CONFIG_NAME).is_file():
        raise DistillError(f"{path}: not a checkpoint folder (no {CONFIG_NAME})")


def load_teachers(paths: Sequence[str]) -> Teachers:
    """Load every teacher (`check_teacher_folder` first) and check that they read text alike."""
    for path in paths:
        check_teacher_folder(path)
    models, tokenizers, records = [], [], []
    for path in paths:
        model, tokenizer = load_checkpoint(path)
        models.append(model)
        tokenizers.append(tokenizer)
        records.append(
            TeacherRecord(str(Path(path).resolve()), _weight_hashes(Path(path)), teacher_depth(model), _dev_f1(path))
        )
    first = models[0].config
    for path, model, tokenizer in zip(paths[1:], models[1:], tokenizers[1:], strict=True):
        _check_same_reading(paths[0], first, tokenizers[0], path, model.config, tokenizer)
    context, _ = checkpoint_context(first)
    window = int(getattr(first, "max_length_trained", 0) or _DEFAULT_WINDOW)
    window = min(window, int(getattr(first, "max_position_embeddings", window)))
    return Teachers(models, tokenizers[0], records, _labels(first), checkpoint_casing(first), context, window)


def _labels(config: Any) -> list[str]:
    return [config.id2label[k] for k in range(len(config.id2label))]


def _check_same_reading(
    first_path: str, first: Any, first_tokenizer: Any, path: str, config: Any, tokenizer: Any
) -> None:
    """DistillError when the teacher at `path` labels or reads text differently from the first one."""
    differences = []
    if _labels(config) != _labels(first):
        differences.append(f"labels {_labels(config)} where {first_path} has {_labels(first)}")
    if tokenizer.get_vocab() != first_tokenizer.get_vocab():
        differences.append(f"another vocabulary than {first_path}")
    if checkpoint_casing(config) != checkpoint_casing(first):
        casing = "with" if checkpoint_casing(config) else "without"
        differences.append(f"was trained {casing} casing classes, {first_path} not")
    if checkpoint_context(config)[0] != checkpoint_context(first)[0] or (
        checkpoint_context(first)[0] == "document" and checkpoint_context(config) != checkpoint_context(first)
    ):
        differences.append(
            f"reads context {checkpoint_context(config)}, {first_path} {checkpoint_context(first)} (mode, window)"
        )
    if differences:
        raise DistillError(
            f"teacher {path} does not read text like teacher {first_path}: {'; '.join(differences)}; "
            "an ensemble needs teachers fine-tuned from one base with the same labels, casing and context"
        )


def _weight_hashes(folder: Path) -> dict[str, str]:
    files = sorted({p for pattern in _WEIGHT_PATTERNS for p in folder.glob(pattern)})
    if not files:
        raise DistillError(f"{folder}: no weights file ({', '.join(_WEIGHT_PATTERNS)})")
    return {p.name: sha256_file(p) for p in files}


def _dev_f1(path: str) -> float | None:
    metrics_file = Path(path) / "metrics.json"
    if not metrics_file.is_file():
        return None
    metrics = read_json(metrics_file, DistillError)
    value = metrics.get("best_dev_f1") if isinstance(metrics, dict) else None
    return float(value) if isinstance(value, (int, float)) else None


def teacher_probabilities(
    models: Sequence[Any], rows: Sequence[DistillRow], temperature: float, pad_id: int, progress: bool = False
) -> list[np.ndarray]:
    """For each row, the teachers' softmax(logits / temperature) at its positions, averaged over the
    teachers: one (positions, labels) float32 array per row, in row order."""
    import torch
    from tqdm.auto import tqdm

    order = sorted(range(len(rows)), key=lambda k: len(rows[k].ids))
    labels = models[0].config.num_labels
    answers = [np.zeros((len(row.positions), labels), dtype=np.float32) for row in rows]
    starts = range(0, len(order), _TEACHER_BATCH)
    bar = tqdm(total=len(models) * len(starts), desc="teacher outputs", disable=not progress, unit="batch")
    with torch.inference_mode():
        for model in models:
            model.eval()
            for start in starts:
                chunk = order[start : start + _TEACHER_BATCH]
                batch = collate_soft(torch, [rows[k] for k in chunk], None, pad_id)
                batch.pop("labels")
                probabilities = torch.softmax(model(**batch).logits.float() / temperature, dim=-1).numpy()
                for k, row_probabilities in zip(chunk, probabilities, strict=True):
                    answers[k] += row_probabilities[rows[k].positions]
                bar.update()
    bar.close()
    if len(models) > 1:
        for answer in answers:
            answer /= len(models)
    return answers
