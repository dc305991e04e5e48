"""`ner-export eval TARGET --data FILE`: entity-level scores of a checkpoint or a bundle.

A bundle is scored by the runtime alone, so this command works in an install without torch; a
checkpoint goes through PyTorch, imported only then.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from ner_export.runtime.manifest import BACKENDS, is_bundle

from ._util import (
    aggregation_option,
    backend_option,
    batch_size_option,
    cli,
    data_option,
    decoding_option,
    reports_user_errors,
    word_split_option,
)


@cli.command("eval")
@click.argument("target", type=click.Path(exists=True, file_okay=False, path_type=Path))
@data_option("CoNLL file with gold tags.")
@click.option(
    "--json", "json_out", type=click.Path(dir_okay=False, path_type=Path), help="Also write the scores as JSON."
)
@batch_size_option("Sentences per model run.")
@aggregation_option(
    "How a word of the file takes its label from its tokens (first token, their mean, the most confident "
    "one); simple means first, since each word needs one label. A checkpoint is scored by first tokens only."
)
@word_split_option(
    "Accepted as in predict; the words scored are the data file's own under either value "
    "(word splitting applies to raw text)."
)
@decoding_option()
@backend_option
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
) -> None:
    """Entity-level scores of TARGET (a checkpoint or a bundle) on a CoNLL file."""
    if is_bundle(target):  # scored by the runtime alone: works in an install without torch
        from ner_export.runtime.evaluate import evaluate_bundle

        report = evaluate_bundle(
            target,
            data,
            batch_size=batch_size,
            decoding=decoding,
            aggregation=aggregation,
            word_split=word_split,
            backend=backend,
        )
    else:  # a checkpoint, or neither (finetune's evaluate says so)
        if backend != BACKENDS[0]:
            raise click.UsageError(f"--backend {backend} applies to bundles: a checkpoint is scored through PyTorch")
        if aggregation not in ("first", "simple"):
            raise click.UsageError(
                f"--aggregation {aggregation} applies to bundles: a checkpoint is scored by each word's first "
                "token (first or simple)"
            )
        from ner_export.finetune import evaluate

        report = evaluate(target, data, batch_size=batch_size, decoding=decoding)
    click.echo(report.table())
    click.echo(f"entity-level micro F1: {report.f1:.4f}")
    if json_out:
        json_out.write_text(json.dumps(report.to_dict(), indent=2) + "\n", encoding="utf-8")
