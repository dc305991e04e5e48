"""`AnnotateResult`: what a run did, over the whole folder and in this invocation, and its one-line summary.

The counts come from the folder's `_manifest.json`, so a resumed run, or one that found the folder
already complete, reports the folder's totals, and says separately how many shards it wrote itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .shards import ERRORS_FILE

__all__ = ["AnnotateResult"]


@dataclass(frozen=True)
class AnnotateResult:
    """What a run did: counts over the whole folder, and what this invocation added."""

    output: str
    files: int
    rows_in: int
    rows_out: int
    errors: int
    blank_lines: int
    shards: int
    shards_written: int
    shards_skipped: int
    seconds: float
    engine: str
    run: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_counts(
        cls,
        output: Path,
        counts: dict[str, Any],
        written: int,
        skipped: int,
        seconds: float,
        engine: str,
        run: dict[str, Any] | None = None,
    ) -> AnnotateResult:
        """The result of a run whose folder's `_manifest.json` holds `counts`."""
        c = counts
        return cls(
            str(output), c["files"], c["rows_in"], c["rows_out"], c["errors"], c["blank_lines"], c["shards"],
            written, skipped, seconds, engine, run or {},
        )  # fmt: skip

    def summary(self) -> str:
        """One line for the terminal: rows in and out, errors, blank lines, shards written, engine, time."""
        done = (
            "already complete"
            if self.shards_written == 0 and self.shards_skipped == self.shards
            else (
                f"{self.shards_written} shards written"
                + (f", {self.shards_skipped} kept from the interrupted run" if self.shards_skipped else "")
            )
        )
        return (
            f"annotated {self.rows_in} rows from {self.files} files into {self.output}: {self.rows_out} rows out, "
            f"{self.errors} errors (see {ERRORS_FILE}), {self.blank_lines} blank lines skipped; {done} "
            f"({self.engine} engine, {self.seconds:.1f} s)"
        )
