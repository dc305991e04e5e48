"""`System`: the one small interface every inference stack the bench compares answers to.

Each system answers the same three questions: tags of pre-split words (accuracy), entities of one
text (latency) and of a list of texts (throughput), plus `answers`, what it returns for each text at a
given batch size (compared alone and in batches). An interface of plain methods, not a protocol of
callables: the bench's timing loops call a bound method per text, and a system that keeps state
across calls (the runtime's token cache) resets it through `prime` and `forget`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["Spans", "System"]

Spans = list[tuple[str, int, int]]  # (label, start, end) character spans of one text's entities


class System:
    """One inference stack: how it tags pre-split words, one text, and a whole list of texts."""

    name: str
    model_files: list[Path]
    imports_torch: bool

    def presplit(self, words: list[list[str]], documents: list[int]) -> list[list[str]]:
        raise NotImplementedError

    def documents(self, texts: list[str]) -> list[Spans]:
        """Entities of whole documents (long texts), for a model trained with document context."""
        return self.batch(texts)

    def single(self, text: str, index: int) -> Any:
        raise NotImplementedError

    def prime(self, history: list[str]) -> None:
        """Let a system that keeps state across single calls see `history` first (none here)."""

    def forget(self) -> None:
        """Put that state back to what `prime` left (nothing here)."""

    def batch(self, texts: list[str]) -> list[Spans]:
        raise NotImplementedError

    def answers(self, texts: list[str], batch_size: int) -> list[Any]:
        """What the system answers for each text when `texts` go through it `batch_size` at a time, in
        order (entity spans; token labels for a bare engine): compared alone and in batches."""
        raise NotImplementedError
