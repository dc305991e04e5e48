"""`train_summary(result)`: what a fine-tuning run did, as the lines `ner-export finetune` prints.

The context mode trained with (and why, when it was chosen automatically), where the checkpoint went
with its best dev F1, epoch and training time, and the test F1 when a test file was scored. Plain
strings, so any front end shows the same report.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the public name: the module behind it may move
    from ner_export.finetune import TrainResult

__all__ = ["train_summary"]


def train_summary(result: TrainResult) -> list[str]:
    """The lines that report a fine-tuning run: context mode, checkpoint and best dev F1, test F1."""
    lines = [
        f"context: {result.context} ({result.context_reason})",
        f"checkpoint written to {result.out}: best dev F1 {result.best_dev_f1:.4f} "
        f"(epoch {result.best_epoch}), {result.train_seconds:.0f} s",
    ]
    if result.test_f1 is not None:
        lines.append(f"test F1 {result.test_f1:.4f}")
    return lines
