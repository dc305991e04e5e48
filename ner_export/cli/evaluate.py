"""`ner-export eval TARGET --data FILE`: entity-level scores of a checkpoint or a bundle.

`ner_export.evaluation` picks the scorer: the runtime alone for a bundle (so this command works in an
install without torch), PyTorch for a checkpoint, imported only then. On a span file the report's
first line says what was scored (a bundle's raw-text spans, or a checkpoint's word tags), and stderr
what the file gave (records, entities, skipped records).
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from ._util import (
    aggregation_option,
    backend_option,
    batch_size_option,
    cli,
    config_from_options,
    data_option,
    decoding_option,
    echo_data_reports,
    labeled_data_options,
    reports_user_errors,
    word_split_option,
)


@cli.command("eval")
@click.argument("target", type=click.Path(exists=True, file_okay=False, path_type=Path))
@data_option(
    "CoNLL file with gold tags, or span file (.jsonl, .ndjson, .json) with gold spans: a bundle is then scored "
    "by exact spans of its predictions on each record's raw text, a checkpoint by the tags of the record's words."
)
@click.option(
    "--json", "json_out", type=click.Path(dir_okay=False, path_type=Path), help="Also write the scores as JSON."
)
@batch_size_option("Sentences per model run.")
@aggregation_option(
    "How a word of the file takes its label from its tokens (first token, their mean, the most confident "
    "one); simple means first, since each word needs one label. A checkpoint is scored by first tokens only."
)
@word_split_option(
    "How a span file's raw texts are cut into words, as in predict; a CoNLL file's words are scored as they "
    "are under either value."
)
@decoding_option()
@backend_option
@labeled_data_options("--data")
@reports_user_errors
def eval_command(
    target: Path,
    data: Path,
    json_out: Path | None,
    batch_size: int,
    aggregation: str,
    word_split: str,
    decoding: str,
    backend: str,
    data_format: str,
    offsets: str,
    skip_bad: bool,
) -> None:
    """Entity-level scores of TARGET (a checkpoint or a bundle) on a CoNLL or span file."""
    from ner_export.evaluation import EvalConfig, evaluate_target

    report = evaluate_target(
        config_from_options(
            EvalConfig,
            target=str(target),
            data=str(data),
            batch_size=batch_size,
            aggregation=aggregation,
            word_split=word_split,
            decoding=decoding,
            backend=backend,
            data_format=data_format,
            offsets=offsets,
            skip_bad=skip_bad,
        )
    )
    echo_data_reports({"eval": report.data_report})
    if report.data_report.get("data_format") == "spans":
        click.echo(report.describe())
    click.echo(report.table())
    level = "span-level" if report.scoring == "spans" else "entity-level"
    click.echo(f"{level} micro F1: {report.f1:.4f}")
    if json_out:
        json_out.write_text(json.dumps(report.to_dict(), indent=2) + "\n", encoding="utf-8")
