"""What a distillation run is asked to do (`DistillConfig`), what it did (`DistillResult`), and which
teacher layers a student starts from (`chosen_layers`).

The defaults are those of the first measured run on CoNLL-2003 (a 6-layer all-MiniLM-L6-v2 teacher,
dev-selected, test F1 0.8873): the bottom layers, temperature 2, half soft and half gold loss, lr 1e-4,
batch 32. Which layers a student keeps mattered most there: the bottom three (0, 1, 2) reached test
F1 0.8795, 0.78 points under the teacher, while three evenly spaced ones (0, 3, 5) reached only 0.8447.
Lower layers feed each other unchanged, so the student starts as a working truncated network; spaced
layers each receive inputs they were never trained on. Hence `bottom` is the default and `even` an option.

The config validates everything it can alone; what depends on the teacher (its depth, its labels) is
checked when the teacher is loaded (`_teacher`), as a `DistillError` or one of the runtime's errors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ner_export.runtime.errors import NerExportError
from ner_export.runtime.labeled_data import DATA_FORMATS
from ner_export.runtime.span_records import OFFSET_UNITS

LAYER_CHOICES = ("bottom", "even")
"""Named ways to pick a student's layers; `DistillConfig.layer_choice` also takes a list like "0,2,4"."""


class DistillError(NerExportError):
    """A distillation cannot run as asked: a student as deep as its teacher, a layer the teacher lacks,
    teachers that do not read text alike, or a teacher that is not a checkpoint."""


@dataclass(frozen=True)
class DistillConfig:
    """Everything a distillation run depends on; written next to the student as training_args.json.

    teachers: checkpoint folders; several form an ensemble whose tempered token probabilities are
        averaged. The student is built from the first one's layers.
    layers: the student's depth, below the first teacher's.
    layer_choice: "bottom" (layers 0..layers-1), "even" (evenly spaced, first and last included), or
        the layer indices themselves, comma-separated ("0,2,4"), as many as `layers`.
    soft_weight: the share of the loss that is the teacher's (KL divergence to its tempered
        probabilities, scaled by temperature squared); the rest is cross-entropy on the gold labels.
        0 trains on gold labels alone (a truncated teacher, the baseline distillation is measured against).
    unlabeled: a file of raw texts (any format `predict` reads) that only the teacher labels.
    max_length: the training window; None keeps the teacher's.
    data_format, offsets, skip_bad: how train, dev and test are read, as finetune reads them
        (`runtime.labeled_data.read_labeled`: CoNLL or span files, by extension unless named).
    """

    teachers: tuple[str, ...]
    train: str
    dev: str
    out: str
    layers: int
    test: str | None = None
    layer_choice: str = "bottom"
    temperature: float = 2.0
    soft_weight: float = 0.5
    epochs: int = 3
    batch_size: int = 32
    learning_rate: float = 1e-4
    max_length: int | None = None
    seed: int = 42
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    unlabeled: str | None = None
    unlabeled_format: str = "auto"
    text_field: str = "text"
    max_unlabeled: int | None = None
    max_train_sentences: int | None = None
    force: bool = False
    progress: bool = True
    data_format: str = "auto"
    offsets: str = "codepoints"
    skip_bad: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.teachers, str) or not self.teachers:
            raise ValueError("teachers must be a non-empty tuple of checkpoint folders")
        object.__setattr__(self, "teachers", tuple(str(t) for t in self.teachers))
        if len(set(self.teachers)) != len(self.teachers):
            raise ValueError(f"teachers must not repeat a folder, got {list(self.teachers)}")
        for name in ("layers", "epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.max_length is not None and self.max_length < 8:
            raise ValueError(f"max_length must be at least 8, got {self.max_length}")
        if not self.temperature > 0:
            raise ValueError(f"temperature must be positive, got {self.temperature}")
        if not 0 <= self.soft_weight <= 1:
            raise ValueError(f"soft_weight must be in [0, 1], got {self.soft_weight}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate}")
        if not 0 <= self.warmup_ratio < 1:
            raise ValueError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        if self.unlabeled and self.soft_weight == 0:
            raise ValueError("unlabeled texts carry only the teacher's labels; they need soft_weight above 0")
        for name in ("max_unlabeled", "max_train_sentences"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1 when given, got {getattr(self, name)}")
        if self.data_format not in DATA_FORMATS:
            raise ValueError(f"data_format must be one of {', '.join(DATA_FORMATS)}, got {self.data_format!r}")
        if self.offsets not in OFFSET_UNITS:
            raise ValueError(f"offsets must be one of {', '.join(OFFSET_UNITS)}, got {self.offsets!r}")
        explicit = self.explicit_layers
        if explicit is not None and len(explicit) != self.layers:
            raise ValueError(f"layer_choice names {len(explicit)} layers but layers={self.layers}")

    @property
    def explicit_layers(self) -> tuple[int, ...] | None:
        """The layer indices `layer_choice` lists, or None for a named choice (ValueError when malformed)."""
        if self.layer_choice in LAYER_CHOICES:
            return None
        try:
            indices = tuple(int(part) for part in self.layer_choice.split(","))
        except ValueError:
            raise ValueError(
                f"layer_choice must be {' or '.join(LAYER_CHOICES)} or comma-separated layer indices, "
                f"got {self.layer_choice!r}"
            ) from None
        if any(i < 0 for i in indices) or len(set(indices)) != len(indices):
            raise ValueError(f"layer_choice must list distinct layer indices from 0, got {self.layer_choice!r}")
        return tuple(sorted(indices))


def chosen_layers(config: DistillConfig, teacher_layers: int, teacher: str) -> list[int]:
    """The teacher layers the student keeps, in order; DistillError when the teacher cannot give them."""
    if config.layers >= teacher_layers:
        raise DistillError(
            f"{teacher} has {teacher_layers} layers; a student must have fewer (--layers {config.layers})"
        )
    explicit = config.explicit_layers
    if explicit is not None:
        missing = [i for i in explicit if i >= teacher_layers]
        if missing:
            raise DistillError(
                f"{teacher} has layers 0 to {teacher_layers - 1}; it has no layer {', '.join(map(str, missing))}"
            )
        return list(explicit)
    if config.layer_choice == "bottom" or config.layers == 1:
        return list(range(config.layers))
    step = (teacher_layers - 1) / (config.layers - 1)
    return [int(i * step + 0.5) for i in range(config.layers)]


@dataclass(frozen=True)
class DistillResult:
    """Where the student went, how good it is, and what it learned from."""

    out: str
    layers: tuple[int, ...]  # the teacher layers the student kept
    best_epoch: int
    best_dev_f1: float
    train_seconds: float
    teacher_seconds: float  # computing the teachers' probabilities, once
    test_f1: float | None = None
    teacher_dev_f1: float | None = None  # the first teacher's best dev F1, from its metrics.json
    epochs: list[dict[str, Any]] = field(default_factory=list)
    unlabeled: dict[str, Any] | None = None  # texts, tokens, windows and skipped records used
    data: dict[str, dict[str, Any]] = field(default_factory=dict)  # what reading train, dev, test used (counts)

    def summary(self) -> list[str]:
        """The lines `ner-export distill` prints: what was kept, the student's scores, the extra texts."""
        teacher = f" (teacher {self.teacher_dev_f1:.4f})" if self.teacher_dev_f1 is not None else ""
        lines = [
            f"student kept teacher layers {', '.join(map(str, self.layers))}",
            f"student written to {self.out}: best dev F1 {self.best_dev_f1:.4f}{teacher} (epoch {self.best_epoch}), "
            f"{self.train_seconds:.0f} s training, {self.teacher_seconds:.0f} s teacher outputs",
        ]
        if self.unlabeled is not None:
            used = self.unlabeled
            skipped = f", {used['skipped_records']} bad records skipped" if used["skipped_records"] else ""
            lines.append(
                f"unlabeled: {used['texts']} texts, {used['tokens']} tokens in {used['windows']} windows "
                f"from {used['path']}{skipped}"
            )
        if self.test_f1 is not None:
            lines.append(f"test F1 {self.test_f1:.4f}")
        return lines
