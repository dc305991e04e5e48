"""`AnnotateConfig`: one `ner-export annotate` run, refused at construction when an option cannot work.

Design trade-offs:
- The config validates itself in `__post_init__`, so no run (CLI, API or benchmark) can start from a
  combination the engines would trip over halfway: a wrong format, `--actors` without Ray, a text field
  named like an output key column.
- `model_options` is the one place the config turns into `NerModel.load` arguments; the engine passes
  the thread count, since local and Ray runs default it differently (all CPUs, one per actor).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ner_export.inputs import FORMATS
from ner_export.runtime.checks import require_positive_int
from ner_export.runtime.manifest import BACKENDS

from .shards import OUTPUT_FORMATS, RESERVED

__all__ = ["ENGINES", "AnnotateConfig"]

ENGINES = ("local", "ray")


@dataclass(frozen=True)
class AnnotateConfig:
    """One `ner-export annotate` run.

    bundle: the bundle directory. inputs: files, directories or glob patterns. output: the folder.
    input_format: "auto" (from each file's extension), "text", "jsonl", "json" or "parquet".
    output_format: "parquet" or "jsonl". engine: "local" (in-process) or "ray".
    address: the Ray cluster to join ("auto", "ray://host:port"); None starts a local Ray on 127.0.0.1.
    resume: finish an interrupted run in `output` (complete shards are kept, the rest redone).
    batch_size: texts per onnxruntime run; buffer_size: texts per `predict` call (the window sorted
        by length), and the Ray map batch; shard_size: input records per output file.
    threads: onnxruntime threads (local: default all CPUs; ray: per actor, default 1).
    actors: Ray actors, one model each (default: the cluster's CPUs / threads).
    precision, backend, aggregation, decoding: as for `NerModel.load`.

    Raises `TypeError` or `ValueError`, naming the first option that cannot work.
    """

    bundle: str
    inputs: tuple[str, ...]
    output: str
    text_field: str = "text"
    input_format: str = "auto"
    output_format: str = "parquet"
    engine: str = "local"
    address: str | None = None
    resume: bool = False
    batch_size: int = 32
    buffer_size: int = 4096
    shard_size: int = 10_000
    threads: int | None = None
    actors: int | None = None
    precision: str | None = None
    backend: str = "onnxruntime"
    aggregation: str = "first"
    decoding: str = "constrained"
    progress: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.inputs, str):
            raise TypeError("inputs must be a sequence of paths or patterns, not one string")
        if not self.inputs:
            raise ValueError("give at least one --input")
        if self.input_format not in FORMATS:
            raise ValueError(f"input format {self.input_format!r} is not one of {', '.join(FORMATS)}")
        if self.output_format not in OUTPUT_FORMATS:
            raise ValueError(f"output format {self.output_format!r} is not one of {', '.join(OUTPUT_FORMATS)}")
        if self.backend not in BACKENDS:
            raise ValueError(f"backend {self.backend!r} is not one of {', '.join(BACKENDS)}")
        if self.engine not in ENGINES:
            raise ValueError(f"engine {self.engine!r} is not one of {', '.join(ENGINES)}")
        if self.engine != "ray" and (self.address is not None or self.actors is not None):
            raise ValueError("--address and --actors apply to --engine ray only")
        if self.text_field in RESERVED or not self.text_field:
            raise ValueError(
                f"--text-field {self.text_field!r} cannot be used: {', '.join(RESERVED)} are output key columns"
            )
        for name in ("batch_size", "buffer_size", "shard_size", "threads", "actors"):
            value = getattr(self, name)
            if value is not None:  # threads and actors: None picks the engine's default
                require_positive_int(name, value)

    def model_options(self, threads: int) -> dict[str, Any]:
        """`NerModel.load` keyword arguments for this run, with `threads` onnxruntime threads."""
        return {
            "threads": threads,
            "precision": self.precision,
            "backend": self.backend,
            "aggregation": self.aggregation,
            "decoding": self.decoding,
        }
