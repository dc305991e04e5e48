"""`ner-export predict BUNDLE [TEXT]... [--input FILE]`: one JSON line of entities per input text.

Imports only the runtime and the input reader: no torch, transformers, optimum, fastapi or ray, so it
starts as fast as the runtime (a test checks `sys.modules`).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ner_export.runtime.errors import InputError

from ._util import (
    aggregation_option,
    backend_option,
    batch_size_option,
    cli,
    decoding_option,
    device_option,
    input_format_option,
    precision_option,
    reports_user_errors,
    text_field_option,
    threads_option,
    word_split_option,
)

if TYPE_CHECKING:
    from ner_export.inputs import Record

PREDICT_HELP = """Print one JSON line of entities per input text.

TEXT arguments come first, then the records of --input, in order. Output is written as it is computed
(in chunks of --batch-size x 32 texts or 0.1 s of input, flushed), so it starts before stdin closes.

\b
Each line is a JSON object with:
  argument | line | row  the input's key: `argument` (TEXT arguments, 1-based), `line` (text and
                         JSONL input, the 1-based physical line), `row` (JSON array and Parquet
                         input, the 0-based element or row)
  ...                    every other field of the input object (JSONL, JSON, Parquet), unchanged
  text                   the text, under its input field's name (--text-field; `text` for text)
  entities               a list of {text, label, start, end, score}: `start`/`end` are character
                         offsets (text[start:end] is the entity's text), `score` the model's
                         confidence (README: Entity scores)

Blank lines are not records. A bad record (not UTF-8, not valid JSON, no text field, a lone
surrogate) stops the run with its file:line, after every row before it has been written; with
--skip-bad it is skipped and listed on stderr (or in --errors FILE), so that rows written + records
skipped = records in.
"""


@cli.command("predict", help=PREDICT_HELP, short_help="Print one JSON line of entities per input text.")
@click.argument("bundle", type=click.Path(file_okay=False, path_type=Path))
@click.argument("texts", nargs=-1)
@click.option(
    "--input",
    "input_file",
    type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
    help="Input file (see --format); - reads stdin.",
)
@input_format_option(
    "text: one text a line; jsonl: one JSON object (or string) a line; json: a top-level array of objects "
    "or strings; parquet: a Parquet file (needs ner-export[annotate]). auto goes by the extension (.txt, "
    ".jsonl/.ndjson, .json, .parquet/.pq), and otherwise reads text and says so on stderr."
)
@text_field_option
@batch_size_option("Texts per onnxruntime run.")
@aggregation_option(
    "How a word's label comes from its tokens' scores, as in transformers' pipeline (simple: every token on its own)."
)
@word_split_option()
@decoding_option("Most probable valid IOB2 sequence, or each word's best label (the pipeline's way).")
@device_option
@precision_option("Graph to run [default: int8 on cpu, the first CUDA graph on cuda].")
@threads_option("Intra-op threads [default: the CPUs this process may use].")
@backend_option
@click.option("--skip-bad", is_flag=True, help="Skip bad records, listing each on stderr, and go on.")
@click.option(
    "--errors",
    "errors_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write skipped records to this file as JSONL (source, row, line, reason, excerpt) instead of "
    "stderr; implies --skip-bad.",
)
@reports_user_errors
def predict_command(
    bundle: Path,
    texts: tuple[str, ...],
    input_file: Path | None,
    input_format: str,
    text_field: str,
    batch_size: int,
    aggregation: str,
    word_split: str,
    decoding: str,
    device: str,
    precision: str | None,
    threads: int | None,
    backend: str,
    skip_bad: bool,
    errors_file: Path | None,
) -> None:
    from ner_export.annotate.stream import argument_records, error_row, predict_stream, where
    from ner_export.inputs import read_records, resolve_format
    from ner_export.runtime import NerModel

    if not texts and input_file is None:
        raise click.UsageError("give TEXT arguments or --input FILE")
    if not text_field or text_field in ("argument", "line", "row", "entities"):
        raise click.UsageError(f"--text-field {text_field!r}: argument, line, row and entities are output keys")
    fmt = resolve_format(str(input_file), input_format) if input_file is not None else None
    model = NerModel.load(
        bundle,
        device=device,
        threads=threads,
        precision=precision,
        backend=backend,
        aggregation=aggregation,
        word_split=word_split,
        decoding=decoding,
    )
    records: Iterator[Record] = argument_records(texts)
    if input_file is not None:
        records = itertools.chain(records, read_records(str(input_file), fmt or "auto", text_field))
    stdout = sys.stdout
    with contextlib.ExitStack() as stack:
        errors = stack.enter_context(open(errors_file, "w", encoding="utf-8")) if errors_file else None

        def report(record: Record) -> None:
            if errors is not None:
                errors.write(json.dumps(error_row(record), ensure_ascii=False) + "\n")
            else:
                click.echo(f"skipped {where(record)}: {record.error}", err=True)

        counts = predict_stream(
            model,
            records,
            lambda line: stdout.write(line + "\n"),
            flush=stdout.flush,
            skip_bad=skip_bad or errors is not None,
            report=report,
            text_field=text_field if fmt in ("jsonl", "json", "parquet") else "text",
            batch_size=batch_size,
            chunk_size=32 * batch_size,
        )
    if input_file is not None and counts.records == len(texts):
        name = "<stdin>" if str(input_file) == "-" else str(input_file)
        raise InputError(f"{name}: no texts in it (it is empty or holds only blank lines)")
    if counts.skipped:
        listed = f", listed in {errors_file}" if errors_file else ""
        click.echo(
            f"{counts.written} row(s) written, {counts.skipped} bad record(s) skipped{listed} "
            f"({counts.records} records in)",
            err=True,
        )
