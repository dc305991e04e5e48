"""`predict_files(config, out)`: what `ner-export predict` runs: texts and an input file to JSON lines.

The command-line texts come first, then the records of the input file (any format of
`ner_export.inputs`), streamed through one `NerModel` by `annotate.stream.predict_stream`: output is
written and flushed as it is computed, a bad record stops the run or, with `skip_bad`, is reported
(to `on_skipped`, or as JSONL to `errors_file`) and skipped. Options that cannot work together are
refused when the `PredictConfig` is built, as a `ValueError`, before the model loads.

It imports only the runtime, the input reader and the stream (no torch, transformers, optimum,
fastapi or ray), so predict starts as fast as the runtime. It lives in the package root because it
joins the runtime with the input reader and the stream, which the layers below keep apart.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TextIO

from ner_export.annotate.stream import StreamCounts, argument_records, error_row, predict_stream, where
from ner_export.inputs import FORMATS, STDIN, Record, read_records, resolve_format
from ner_export.runtime import NerModel
from ner_export.runtime.decoding import DECODINGS, STRATEGIES, WORD_SPLITS
from ner_export.runtime.errors import InputError
from ner_export.runtime.manifest import BACKENDS, DEVICES

__all__ = ["PredictConfig", "PredictResult", "predict_files", "OUTPUT_KEYS", "CHUNK_BATCHES"]

OUTPUT_KEYS = ("argument", "line", "row", "entities")  # keys of every output row besides the text field
CHUNK_BATCHES = 32  # a chunk of the stream (predicted, written, flushed together) is this many batches


@dataclass(frozen=True)
class PredictConfig:
    """One predict run. `texts`: texts given directly; `input_file`: a file of records (`-`: stdin) in
    `input_format` ("auto": by extension), the text under `text_field`. The model options are
    `NerModel.load`'s. `skip_bad`: report bad records and go on; `errors_file`: write them there as
    JSONL (implies `skip_bad`)."""

    bundle: str
    texts: tuple[str, ...] = ()
    input_file: str | None = None
    input_format: str = FORMATS[0]
    text_field: str = "text"
    batch_size: int = 32
    aggregation: str = STRATEGIES[0]
    word_split: str = WORD_SPLITS[0]
    decoding: str = DECODINGS[0]
    device: str = DEVICES[0]
    precision: str | None = None
    threads: int | None = None
    backend: str = BACKENDS[0]
    skip_bad: bool = False
    errors_file: str | None = None

    def __post_init__(self) -> None:
        if not self.texts and self.input_file is None:
            raise ValueError("give TEXT arguments or --input FILE")
        if not self.text_field or self.text_field in OUTPUT_KEYS:
            raise ValueError(f"--text-field {self.text_field!r}: argument, line, row and entities are output keys")


@dataclass(frozen=True)
class PredictResult:
    """What a run did: records read, rows written, bad records skipped (and where they were listed)."""

    counts: StreamCounts
    errors_file: str | None = None

    def summary(self) -> str:
        """One line when records were skipped (rows written + records skipped = records in), else ""."""
        if not self.counts.skipped:
            return ""
        listed = f", listed in {self.errors_file}" if self.errors_file else ""
        return (
            f"{self.counts.written} row(s) written, {self.counts.skipped} bad record(s) skipped{listed} "
            f"({self.counts.records} records in)"
        )


def _print_to_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def predict_files(
    config: PredictConfig, out: TextIO | None = None, on_skipped: Callable[[str], None] = _print_to_stderr
) -> PredictResult:
    """Predict `config.texts`, then the records of `config.input_file`, writing one JSON line per record
    to `out` (default: stdout), flushed per chunk. A skipped record's `file:line: reason` goes to
    `on_skipped` unless `config.errors_file` takes it. An input file with no records is an `InputError`."""
    out = sys.stdout if out is None else out
    fmt = resolve_format(config.input_file, config.input_format) if config.input_file is not None else None
    model = NerModel.load(
        config.bundle,
        device=config.device,
        threads=config.threads,
        precision=config.precision,
        backend=config.backend,
        aggregation=config.aggregation,
        word_split=config.word_split,
        decoding=config.decoding,
    )
    records: Iterator[Record] = argument_records(config.texts)
    if config.input_file is not None:
        records = itertools.chain(records, read_records(config.input_file, fmt or "auto", config.text_field))
    with contextlib.ExitStack() as stack:
        errors = stack.enter_context(open(config.errors_file, "w", encoding="utf-8")) if config.errors_file else None

        def report(record: Record) -> None:
            if errors is not None:
                errors.write(json.dumps(error_row(record), ensure_ascii=False) + "\n")
            else:
                on_skipped(f"skipped {where(record)}: {record.error}")

        counts = predict_stream(
            model,
            records,
            lambda line: out.write(line + "\n"),
            flush=out.flush,
            skip_bad=config.skip_bad or errors is not None,
            report=report,
            text_field=config.text_field if fmt in ("jsonl", "json", "parquet") else "text",
            batch_size=config.batch_size,
            chunk_size=CHUNK_BATCHES * config.batch_size,
        )
    if config.input_file is not None and counts.records == len(config.texts):
        name = "<stdin>" if config.input_file == STDIN else config.input_file
        raise InputError(f"{name}: no texts in it (it is empty or holds only blank lines)")
    return PredictResult(counts, config.errors_file)
