"""`ner-export predict BUNDLE [TEXT]... [--input FILE]`: one JSON line of entities per input text.

The run is `ner_export.predict_files.predict_files`, which imports only the runtime, the input reader
and the stream: no torch, transformers, optimum, fastapi or ray, so predict starts as fast as the
runtime (a test checks `sys.modules`).
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ._util import (
    aggregation_option,
    backend_option,
    batch_size_option,
    cli,
    config_from_options,
    decoding_option,
    device_option,
    input_format_option,
    precision_option,
    reports_user_errors,
    text_field_option,
    threads_option,
    word_split_option,
)

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
                         confidence (docs/runtime.md: Entity scores)

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
    from ner_export.predict_files import PredictConfig, predict_files

    config = config_from_options(
        PredictConfig,
        bundle=str(bundle),
        texts=texts,
        input_file=None if input_file is None else str(input_file),
        input_format=input_format,
        text_field=text_field,
        batch_size=batch_size,
        aggregation=aggregation,
        word_split=word_split,
        decoding=decoding,
        device=device,
        precision=precision,
        threads=threads,
        backend=backend,
        skip_bad=skip_bad,
        errors_file=None if errors_file is None else str(errors_file),
    )
    summary = predict_files(config, sys.stdout, on_skipped=lambda message: click.echo(message, err=True)).summary()
    if summary:
        click.echo(summary, err=True)
