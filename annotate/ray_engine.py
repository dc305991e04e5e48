"""`--engine ray`: the same shards through Ray Data, one model per actor, on a local Ray or a cluster.

Design trade-offs:
- Reading is a Ray Data datasource with one read task per shard that runs this package's own reader
  (`shard_records`), not `read_json`/`read_text`: those drop the row key, line numbers and bad records
  (a bad JSON line fails the whole read), and split lines on a lone `\\r`. Each row carries its shard,
  its row and its record (pickled: pass-through values keep their Python types whatever the file
  holds, where an Arrow column would need one type per field).
- Inference is `map_batches` with a callable class, so each actor loads the bundle once;
  `compute=ray.data.ActorPoolStrategy(size=actors)` (the Ray >= 2.5x spelling; `concurrency=` is
  deprecated there), `num_cpus` per actor equal to the model's onnxruntime threads, an explicit
  `batch_size` (the buffer size).
- Writing is this package's shard writer on the driver, not `write_parquet`: Ray's writers name files
  by task and commit them without regard to shard boundaries, and the folder must hold the same atomic,
  deterministic shards as the local engine's, so that `--resume` and both engines agree. Order is
  preserved, so the driver holds about one shard at a time. The cost: every result passes through the
  driver, which is fine while the driver's writing (tens of thousands of rows/s) outpaces the models.
- Without `--address` a private Ray starts on this machine (`ner_export.runtime.local_ray`), bound to
  127.0.0.1, sized to the actors; with one it joins that cluster, where the bundle and the inputs must
  be readable at the same paths on every node and `ner-export[cpu,annotate,ray]` installed (no torch is
  needed there).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import os
import pickle
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ner_export.inputs import Record
from ner_export.runtime.errors import MissingDependencyError
from ner_export.runtime.local_ray import start_local_ray

from .config import AnnotateConfig
from .engine_steps import predict_entities, shard_records
from .shards import Shard, entity_arrow_type, write_shard

__all__ = ["run_ray"]

_BLOCK_ROWS = 2048
_ROW_BYTES = 512  # a guess at a row's in-memory size, for Ray's memory planning


def _import_ray() -> Any:
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise MissingDependencyError("ray", "ray", "--engine ray") from None
    return ray


def _shard_blocks(index: int, shard: Shard, text_field: str) -> Iterator[Any]:
    """Blocks of one shard: shard index, row, text (None for a bad record) and the pickled record."""
    import pyarrow as pa

    def block(rows: list[Record]) -> Any:
        return pa.table(
            {
                "shard": pa.array([index] * len(rows), pa.int32()),
                "row": pa.array([r.row for r in rows], pa.int64()),
                "text": pa.array([r.text for r in rows], pa.string()),
                "record": pa.array(
                    [
                        pickle.dumps((r.line, r.fields, r.error, r.excerpt), protocol=pickle.HIGHEST_PROTOCOL)
                        for r in rows
                    ],
                    pa.binary(),
                ),
            }
        )

    rows: list[Record] = []
    for record in shard_records(shard, text_field):
        rows.append(record)
        if len(rows) == _BLOCK_ROWS:
            yield block(rows)
            rows = []
    if rows:
        yield block(rows)


def _shard_datasource(shards: list[Shard], text_field: str) -> Any:
    from ray.data.block import BlockMetadata
    from ray.data.datasource import Datasource, ReadTask

    class ShardDatasource(Datasource):
        """One read task per shard, each running `shard_records` over its row range."""

        def estimate_inmemory_data_size(self) -> int:
            return sum(s.rows for s in shards) * _ROW_BYTES

        def get_read_tasks(self, parallelism: int, per_task_row_limit: int | None = None, **_: Any) -> list[Any]:
            return [
                ReadTask(
                    functools.partial(_shard_blocks, i, shard, text_field),
                    BlockMetadata(
                        num_rows=shard.rows,
                        size_bytes=shard.rows * _ROW_BYTES,
                        exec_stats=None,
                        input_files=[shard.source],
                    ),
                    per_task_row_limit=per_task_row_limit,
                )
                for i, shard in enumerate(shards)
            ]

    return ShardDatasource()


class _BatchAnnotator:
    """The map_batches callable: one model per actor, entities appended to each batch."""

    def __init__(self, bundle: str, batch_size: int, options: dict[str, Any]) -> None:
        # the tokenizer's pool, before its first use
        os.environ.setdefault("RAYON_NUM_THREADS", str(options["threads"]))
        from ner_export.runtime import NerModel

        self.model = NerModel.load(bundle, **options)
        self.batch_size = batch_size
        self.entities = entity_arrow_type()

    def __call__(self, batch: Any) -> Any:
        import pyarrow as pa

        texts = batch.column("text").to_pylist()
        found = iter(predict_entities(self.model, [t for t in texts if t is not None], self.batch_size))
        entities = [next(found) if t is not None else [] for t in texts]
        return batch.append_column("entities", pa.array(entities, self.entities))


def _start_or_join_ray(ray: Any, config: AnnotateConfig, threads: int) -> float | None:
    """Join `config.address`, or start a private local Ray; seconds it took, None when Ray was already up."""
    from ner_export.runtime import available_cpus

    if ray.is_initialized():
        return None
    began = time.perf_counter()
    if config.address:
        ray.init(
            address=config.address,
            log_to_driver=config.progress,
            logging_level=logging.INFO if config.progress else logging.WARNING,
        )
    else:
        cpus = (config.actors or max(1, available_cpus() // threads)) * threads
        start_local_ray(cpus, quiet=not config.progress, extra="ray", feature="--engine ray")
    return time.perf_counter() - began


@contextlib.contextmanager
def _ray_data_settings(ray: Any, progress: bool) -> Iterator[None]:
    """Ray Data keeps row order, shows progress bars only with `progress`; the settings are restored after."""
    context = ray.data.DataContext.get_current()
    saved = (context.execution_options.preserve_order, context.enable_progress_bars)
    data_logger = logging.getLogger("ray.data")
    saved_level = data_logger.level
    try:
        if not progress:
            data_logger.setLevel(logging.ERROR)  # -q: no execution plans or "progress bars disabled" notes
        context.execution_options.preserve_order = True
        context.enable_progress_bars = progress
        yield
    finally:
        context.execution_options.preserve_order, context.enable_progress_bars = saved
        data_logger.setLevel(saved_level)


def _actor_count(ray: Any, config: AnnotateConfig, threads: int) -> int:
    """`config.actors`, or as many as the cluster's CPUs hold; refused when the pool could never start."""
    cpus = int(ray.cluster_resources().get("CPU", 0))
    actors = config.actors or max(1, cpus // threads)
    if actors * threads > cpus:  # the pool would wait for CPUs that never come
        needed = actors * threads
        raise ValueError(f"{actors} actors x {threads} threads need {needed} CPUs; the Ray cluster has {cpus}")
    return actors


def _annotated_dataset(ray: Any, config: AnnotateConfig, todo: list[Shard], threads: int, actors: int) -> Any:
    """The Ray dataset of `todo`'s rows with their entities: read per shard, annotated on an actor pool."""
    # workers open absolute paths (their working directory is not the driver's); keys keep the names given
    readable = [dataclasses.replace(shard, source=os.path.abspath(shard.source)) for shard in todo]
    # reading is light next to inference: it takes no CPU slot, else actors holding every CPU starve it
    dataset = ray.data.read_datasource(_shard_datasource(readable, config.text_field), num_cpus=0)
    return dataset.map_batches(
        _BatchAnnotator,
        fn_constructor_kwargs={
            "bundle": str(Path(config.bundle).resolve()),
            "batch_size": config.batch_size,
            "options": config.model_options(threads),
        },
        compute=ray.data.ActorPoolStrategy(size=actors),
        num_cpus=threads,
        batch_size=config.buffer_size,
        batch_format="pyarrow",
    )


def _write_shards_as_they_complete(
    dataset: Any, out: Path, config: AnnotateConfig, todo: list[Shard], passthrough: dict[str, Any]
) -> None:
    """Collect the annotated rows by shard and commit each shard as soon as all its rows are back."""
    pending: dict[int, list[tuple[Record, list[dict[str, Any]] | None]]] = {}
    for batch in dataset.iter_batches(batch_size=None, batch_format="pyarrow"):
        columns = [batch.column(name).to_pylist() for name in ("shard", "row", "text", "record", "entities")]
        for index, row, text, payload, entities in zip(*columns, strict=True):
            shard = todo[index]
            line, fields, error, excerpt = pickle.loads(payload)
            record = Record(shard.source, row, line, text, fields, error, excerpt)
            items = pending.setdefault(index, [])
            items.append((record, entities if record.ok else None))
            if len(items) == shard.rows:
                items.sort(key=lambda item: item[0].row)
                write_shard(
                    out,
                    shard,
                    items,
                    output_format=config.output_format,
                    text_field=config.text_field,
                    passthrough=passthrough.get(shard.source),
                )
                del pending[index]
    if pending:
        raise RuntimeError(f"Ray returned incomplete shards: {', '.join(todo[i].name for i in sorted(pending))}")


def run_ray(out: Path, config: AnnotateConfig, todo: list[Shard], passthrough: dict[str, Any]) -> dict[str, Any]:
    """Annotate `todo` on Ray and commit each shard as soon as all its rows are back.

    Returns what the manifest's `run` records about this engine: actors, threads, Ray's version and address.
    A Ray this call started is shut down before it returns.
    """
    from ner_export.runtime import NerModel

    ray = _import_ray()
    NerModel.load(config.bundle, **config.model_options(1))  # a broken bundle fails here, in one line
    threads = config.threads or 1
    init_seconds = _start_or_join_ray(ray, config, threads)
    try:
        with _ray_data_settings(ray, config.progress):
            actors = _actor_count(ray, config, threads)
            dataset = _annotated_dataset(ray, config, todo, threads, actors)
            _write_shards_as_they_complete(dataset, out, config, todo, passthrough)
    finally:
        if init_seconds is not None:
            ray.shutdown()
    return {
        "actors": actors,
        "threads": threads,
        "ray_version": ray.__version__,
        "ray_address": config.address or "local (127.0.0.1)",
        "ray_init_seconds": round(init_seconds, 3) if init_seconds is not None else None,
    }
