"""`--engine local`: shards annotated one after another in this process, one model for the whole run.

Design trade-offs:
- One model with every CPU's onnxruntime threads (by default) rather than a pool of processes: the
  graph's own threading scales well, and the run holds one copy of the model and one shard at a time.
- A shard is read in buffers of `buffer_size` records; each buffer is one `predict` call (sorted by
  length inside it), so memory is bounded by the buffer and the shard being assembled, not the corpus.
- The progress bar (tqdm, on stderr) counts rows and starts at the rows a resumed run already holds,
  so its ETA covers only what is left.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ner_export.inputs import Record
from ner_export.runtime.errors import MissingDependencyError

from .config import AnnotateConfig
from .engine_steps import predict_entities, shard_records
from .shards import Shard, write_shard

__all__ = ["run_local"]


def _progress_bar(total: int, initial: int, enabled: bool) -> Any:
    if not enabled:
        return None
    try:
        from tqdm import tqdm
    except ImportError:
        raise MissingDependencyError("tqdm", "annotate", "The progress bar (-q turns it off)") from None
    return tqdm(
        total=total, initial=initial, unit="rows", unit_scale=True, smoothing=0.05, file=sys.stderr, dynamic_ncols=True
    )


def _buffers(records: Iterator[Record], size: int) -> Iterator[list[Record]]:
    """`records` in lists of `size` (the last one shorter)."""
    buffer: list[Record] = []
    for record in records:
        buffer.append(record)
        if len(buffer) == size:
            yield buffer
            buffer = []
    if buffer:
        yield buffer


def _annotate_shard(
    model: Any, shard: Shard, config: AnnotateConfig, bar: Any
) -> list[tuple[Record, list[dict[str, Any]] | None]]:
    """Every record of `shard` with its entities (None for an error record), in row order."""
    items: list[tuple[Record, list[dict[str, Any]] | None]] = []
    for buffer in _buffers(shard_records(shard, config.text_field), config.buffer_size):
        good = [r for r in buffer if r.ok]
        found = iter(predict_entities(model, [r.text for r in good], config.batch_size))  # type: ignore[misc]
        items.extend((r, next(found) if r.ok else None) for r in buffer)
        if bar is not None:
            bar.update(len(buffer))
    return items


def run_local(
    out: Path, config: AnnotateConfig, todo: list[Shard], passthrough: dict[str, Any], total: int, done: int
) -> dict[str, Any]:
    """Annotate shards one after another in this process: read a buffer, predict it, write the shard.

    total, done: rows of the whole run and rows already committed (the progress bar's end and start).
    Returns what the manifest's `run` records about this engine (its thread count).
    """
    from ner_export.runtime import NerModel, available_cpus

    threads = config.threads or available_cpus()
    model = NerModel.load(config.bundle, **config.model_options(threads))
    bar = _progress_bar(total, done, config.progress)
    try:
        for shard in todo:
            write_shard(
                out,
                shard,
                _annotate_shard(model, shard, config, bar),
                output_format=config.output_format,
                text_field=config.text_field,
                passthrough=passthrough.get(shard.source),
            )
    finally:
        if bar is not None:
            bar.close()
    return {"threads": threads}
