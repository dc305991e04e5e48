"""`ner-export distill`: a smaller student from a fine-tuned checkpoint (or an ensemble of them).

torch and transformers load when distillation starts. The options map one to one onto `DistillConfig`,
whose refusals are usage errors; problems found in the teachers or the data (a bundle given as a
teacher, teachers that label differently, a student as deep as its teacher, a missing file) are one
line and exit status 1. The lines printed come from `DistillResult.summary`; what each span file gave
(records, entities, skipped records) goes to stderr.
"""

from __future__ import annotations

from pathlib import Path

import click

from ._util import (
    batch_size_option,
    cli,
    config_from_options,
    echo_data_reports,
    epochs_option,
    force_option,
    input_format_option,
    labeled_data_options,
    max_length_option,
    quiet_option,
    reports_user_errors,
    text_field_option,
    training_schedule_options,
)

_DATA_FILE = click.Path(dir_okay=False, path_type=Path)


@cli.command("distill")
@click.argument("teacher", required=False, type=click.Path(path_type=Path))
@click.option(
    "--teacher",
    "more_teachers",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Another teacher checkpoint (repeatable): the teachers' token probabilities are averaged.",
)
@click.option(
    "--train",
    "train_file",
    required=True,
    type=_DATA_FILE,
    help="Training file: CoNLL, or a span file (.jsonl, .ndjson, .json; see --data-format).",
)
@click.option("--dev", "dev_file", required=True, type=_DATA_FILE, help="Dev file; picks the best epoch.")
@click.option("--test", "test_file", type=_DATA_FILE, help="Optional test file, scored once at the end.")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Student checkpoint directory to write.")
@click.option(
    "--layers",
    required=True,
    type=click.IntRange(1),
    help="Transformer layers of the student; fewer than the (first) teacher has.",
)
@click.option(
    "--layer-choice",
    default="bottom",
    show_default=True,
    help="Which teacher layers the student keeps: bottom (0..N-1), even (evenly spaced, first and last "
    "included), or the indices, e.g. 0,2,4. Bottom is the default because it won on CoNLL-2003 with a 6-layer "
    "MiniLM teacher (test F1 0.8873): layers 0,1,2 reached 0.8795, evenly spaced 0,3,5 only 0.8447.",
)
@click.option(
    "--temperature",
    default=2.0,
    show_default=True,
    type=click.FloatRange(0, min_open=True),
    help="Softens the teacher's probabilities (and the student's, in the soft loss).",
)
@click.option(
    "--soft-weight",
    default=0.5,
    show_default=True,
    type=click.FloatRange(0, 1),
    help="Share of the loss learned from the teacher; the rest is the gold labels' cross-entropy "
    "(0: gold labels only, the baseline a distilled student is measured against).",
)
@epochs_option(3, "Passes over the training rows.")
@batch_size_option("Training windows per step.")
@click.option("--lr", default=1e-4, show_default=True, type=float, help="Peak learning rate (AdamW).")
@max_length_option("Token window of one training example [default: the teacher's].")
@click.option(
    "--unlabeled",
    "unlabeled_file",
    type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
    help="Raw texts labelled by the teacher only (text, JSONL, JSON or Parquet, as predict reads them), "
    "windowed as the runtime reads text.",
)
@input_format_option("Format of --unlabeled; auto goes by the extension.")
@text_field_option
@click.option("--max-unlabeled", type=click.IntRange(1), help="Use only the first N texts of --unlabeled.")
@training_schedule_options("Random seed (shuffling, dropout).")
@labeled_data_options("--train, --dev and --test")
@force_option("Replace a non-empty output directory.")
@quiet_option
@reports_user_errors
def distill_command(
    teacher: Path | None,
    more_teachers: tuple[Path, ...],
    train_file: Path,
    dev_file: Path,
    test_file: Path | None,
    out: Path,
    layers: int,
    layer_choice: str,
    temperature: float,
    soft_weight: float,
    epochs: int,
    batch_size: int,
    lr: float,
    max_length: int | None,
    unlabeled_file: Path | None,
    input_format: str,
    text_field: str,
    max_unlabeled: int | None,
    seed: int,
    warmup_ratio: float,
    max_train_sentences: int | None,
    data_format: str,
    offsets: str,
    skip_bad: bool,
    force: bool,
    quiet: bool,
) -> None:
    """Distil a fine-tuned checkpoint TEACHER (or several, with --teacher) into a student with fewer layers.

    The student keeps the teacher's tokenizer, labels, casing, context, embeddings and classifier, and
    is an ordinary checkpoint: export it with `ner-export STUDENT -o bundle/`.
    """
    from ner_export.finetune import DistillConfig, distill

    teachers = tuple(str(t) for t in ((teacher,) if teacher else ()) + more_teachers)
    if not teachers:
        raise click.UsageError("name a teacher checkpoint: ner-export distill TEACHER ... (or --teacher DIR)")
    result = distill(
        config_from_options(
            DistillConfig,
            teachers=teachers,
            train=str(train_file),
            dev=str(dev_file),
            test=str(test_file) if test_file else None,
            out=str(out),
            layers=layers,
            layer_choice=layer_choice,
            temperature=temperature,
            soft_weight=soft_weight,
            epochs=epochs,
            batch_size=batch_size,
            learning_rate=lr,
            max_length=max_length,
            unlabeled=str(unlabeled_file) if unlabeled_file else None,
            unlabeled_format=input_format,
            text_field=text_field,
            max_unlabeled=max_unlabeled,
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
    echo_data_reports(result.data)
    for line in result.summary():
        click.echo(line)
