"""`ner-export finetune`: fine-tune a token-classification model on CoNLL or span files.

torch and transformers load when training starts. The options map one to one onto `TrainConfig`, whose
refusals are usage errors; the lines printed come from `finetune.summary.train_summary`, and what each
span file gave (records, entities, skipped records) from the reports the checkpoint's metrics.json keeps.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from ner_export.finetune import TRAIN_CONTEXTS

from ._util import (
    base_model_option,
    batch_size_option,
    cli,
    config_from_options,
    echo_data_reports,
    epochs_option,
    force_option,
    labeled_data_options,
    max_length_option,
    quiet_option,
    reports_user_errors,
    training_schedule_options,
)


@cli.command("finetune")
@click.option(
    "--train",
    "train_file",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Training file: CoNLL, or a span file (.jsonl, .ndjson, .json; see --data-format).",
)
@click.option(
    "--dev",
    "dev_file",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Dev file; picks the best epoch.",
)
@click.option(
    "--test",
    "test_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Optional test file, scored once at the end.",
)
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Checkpoint directory to write.")
@base_model_option
@epochs_option(3, "Passes over the training file.")
@batch_size_option("Sentences per training step.")
@click.option(
    "--lr",
    default=1e-4,
    show_default=True,
    type=float,
    help="Peak learning rate (AdamW); 1e-4 won the CoNLL sweep on dev (benchmarks/results/recipe-sweep.md).",
)
@max_length_option(
    "Token window of one example: the sentence, plus its context with --context document.",
    default=64,
)
@click.option(
    "--context",
    default=TRAIN_CONTEXTS[0],
    show_default=True,
    type=click.Choice(TRAIN_CONTEXTS),
    help="document: read each sentence with its neighbours in its document (-DOCSTART- lines, or a span "
    "record's doc_id, delimit documents; without them, consecutive sentences); none: each sentence alone; "
    "auto: document when the training file marks documents, or when its consecutive sentences are clearly "
    "related, else none. The mode used is printed and stored in the checkpoint and the bundle.",
)
@click.option(
    "--casing/--no-casing",
    default=True,
    show_default=True,
    help="Feed each token's casing (lower / Capital / ALL CAPS) through token_type_ids: gives an uncased base "
    "back the capitalisation its tokenizer drops. Needs a model with token-type embeddings (BERT-like).",
)
@click.option(
    "--target-tokens",
    default=0,
    show_default=True,
    type=click.IntRange(0),
    help="With --context document (not auto): pack consecutive sentences into training targets of up to N tokens, all "
    "labelled, the rest of the window being context (several sentences per window; 0: one sentence per window).",
)
@click.option(
    "--group-by-length/--no-group-by-length",
    default=False,
    show_default=True,
    help="Batch sentences of similar length: faster training, but lower dev F1 in the recipe sweep "
    "(benchmarks/results/recipe-sweep.md).",
)
@training_schedule_options("Random seed (initialisation, shuffling).")
@labeled_data_options("--train, --dev and --test")
@force_option("Replace a non-empty output directory.")
@quiet_option
@reports_user_errors
def finetune_command(
    train_file: Path,
    dev_file: Path,
    test_file: Path | None,
    out: Path,
    base_model: str | None,
    epochs: int,
    batch_size: int,
    lr: float,
    max_length: int,
    context: str,
    casing: bool,
    target_tokens: int,
    group_by_length: bool,
    seed: int,
    warmup_ratio: float,
    max_train_sentences: int | None,
    data_format: str,
    offsets: str,
    skip_bad: bool,
    force: bool,
    quiet: bool,
) -> None:
    """Fine-tune a token-classification model on CoNLL or span files."""
    from ner_export.finetune import TrainConfig, finetune
    from ner_export.finetune.summary import train_summary

    result = finetune(
        config_from_options(
            TrainConfig,
            train=str(train_file),
            dev=str(dev_file),
            test=str(test_file) if test_file else None,
            out=str(out),
            base_model=base_model,
            epochs=epochs,
            batch_size=batch_size,
            learning_rate=lr,
            max_length=max_length,
            context=context,
            casing=casing,
            target_tokens=target_tokens,
            group_by_length=group_by_length,
            seed=seed,
            warmup_ratio=warmup_ratio,
            max_train_sentences=max_train_sentences,
            data_format=data_format,
            offsets=offsets,
            skip_bad=skip_bad,
            force=force,
            progress=not quiet,
        )
    )
    metrics = json.loads((Path(result.out) / "metrics.json").read_text(encoding="utf-8"))
    echo_data_reports(metrics.get("data", {}))
    for line in train_summary(result):
        click.echo(line)
