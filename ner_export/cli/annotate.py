"""`ner-export annotate BUNDLE --input ... --output DIR`: a corpus into sharded, resumable output files.

The options map one to one onto `AnnotateConfig`, whose refusals (`--actors` without `--engine ray`)
are usage errors; the run, locally or on Ray Data, is `ner_export.annotate.annotate`, imported inside
the command with its heavy parts (pyarrow, ray) loading only when the run needs them.
"""

from __future__ import annotations

from pathlib import Path

import click

from ner_export.annotate import ENGINES, OUTPUT_FORMATS
from ner_export.runtime.manifest import PRECISIONS

from ._util import (
    address_option,
    backend_option,
    batch_size_option,
    cli,
    config_from_options,
    decoding_option,
    engine_option,
    input_format_option,
    precision_option,
    quiet_option,
    reports_user_errors,
    text_field_option,
    threads_option,
)

CPU_PRECISIONS = tuple(p for p in PRECISIONS if p != "fp16")  # annotate runs on cpu, which has no fp16 graph


@cli.command("annotate")
@click.argument("bundle", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--input",
    "inputs",
    required=True,
    multiple=True,
    help="Input file, directory or glob pattern (quote it); repeatable.",
)
@click.option(
    "--output",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Output folder: shard files, _errors.jsonl, _manifest.json.",
)
@text_field_option
@input_format_option(
    "Input format; auto goes by extension (.txt .jsonl/.ndjson .json .parquet), else text with a warning."
)
@click.option(
    "--output-format",
    default=OUTPUT_FORMATS[0],
    show_default=True,
    type=click.Choice(OUTPUT_FORMATS),
    help="Shard file format.",
)
@engine_option(ENGINES, "local: this process; ray: Ray Data, one model per actor.")
@address_option("Ray cluster to join (auto or ray://host:port) [default: start a local Ray on 127.0.0.1].")
@click.option(
    "--actors", type=click.IntRange(1), help="Ray actors, one model each [default: the cluster's CPUs / --threads]."
)
@click.option(
    "--resume", is_flag=True, help="Finish an interrupted run in --output: keep its complete shards, redo the rest."
)
@batch_size_option("Texts per onnxruntime run.")
@click.option(
    "--buffer-size",
    default=4096,
    show_default=True,
    type=click.IntRange(1),
    help="Texts per predict call, sorted by length inside it (the Ray map batch).",
)
@click.option(
    "--shard-size", default=10_000, show_default=True, type=click.IntRange(1), help="Input records per output file."
)
@threads_option("onnxruntime threads [default: all CPUs locally, 1 per Ray actor].")
@precision_option("Graph to run [default: int8].", choices=CPU_PRECISIONS)
@backend_option
@decoding_option()
@quiet_option
@reports_user_errors
def annotate_command(
    bundle: Path,
    inputs: tuple[str, ...],
    output: Path,
    text_field: str,
    input_format: str,
    output_format: str,
    engine: str,
    address: str | None,
    actors: int | None,
    resume: bool,
    batch_size: int,
    buffer_size: int,
    shard_size: int,
    threads: int | None,
    precision: str | None,
    backend: str,
    decoding: str,
    quiet: bool,
) -> None:
    """Annotate a corpus into sharded Parquet/JSONL files, resumable, locally or on Ray."""
    from ner_export.annotate import AnnotateConfig, annotate

    # an option combination the config refuses (--actors without --engine ray) is a usage error
    config = config_from_options(
        AnnotateConfig,
        bundle=str(bundle),
        inputs=inputs,
        output=str(output),
        text_field=text_field,
        input_format=input_format,
        output_format=output_format,
        engine=engine,
        address=address,
        actors=actors,
        resume=resume,
        batch_size=batch_size,
        buffer_size=buffer_size,
        shard_size=shard_size,
        threads=threads,
        precision=precision,
        backend=backend,
        decoding=decoding,
        progress=not quiet,
    )
    click.echo(annotate(config).summary())
