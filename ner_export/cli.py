"""The `ner-export` command line: parse, call one library function, print.

Heavy stages (torch, transformers, optimum) are imported inside the commands that need them, so
`ner-export predict` starts as fast as the runtime. Option choices come from the library's own
constants, so the CLI cannot offer what the library refuses. Every `NerExportError` and `OSError`
(a missing or unreadable file) becomes a one-line message and exit status 1; a bad option is a click
usage error (exit status 2); anything else is a bug and keeps its traceback. NER_EXPORT_DEBUG=1 shows
the traceback of user errors too, with the exception that caused them.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
import json
import os
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from ner_export import __version__
from ner_export.benchmarks.systems import SYSTEMS
from ner_export.inputs import FORMATS
from ner_export.runtime.context import CONTEXT_MODES
from ner_export.runtime.decoding import DECODINGS, STRATEGIES, WORD_SPLITS
from ner_export.runtime.errors import InputError, NerExportError, NerExportWarning
from ner_export.runtime.manifest import (
    BACKENDS,
    CALIBRATIONS,
    DEVICES,
    INT8_ACTIVATIONS,
    INT8_EMBEDDINGS,
    PRECISIONS,
    is_bundle,
)

if TYPE_CHECKING:
    from ner_export.inputs import Record

F = TypeVar("F", bound=Callable[..., Any])
C = TypeVar("C")

_USER_ERRORS = (NerExportError, OSError)


def _friendly(command: F) -> F:
    """Turn user errors into one line on stderr and exit status 1 instead of a traceback."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        original = warnings.showwarning

        def show(message: Any, category: type[Warning], *rest: Any, **kw: Any) -> None:
            if issubclass(category, NerExportWarning):
                click.echo(f"warning: {message}", err=True)
            else:
                original(message, category, *rest, **kw)

        with warnings.catch_warnings():
            warnings.simplefilter("default", NerExportWarning)  # shown once each, never raised
            warnings.showwarning = show
            try:
                return command(*args, **kwargs)
            except _USER_ERRORS as exc:
                if os.environ.get("NER_EXPORT_DEBUG"):
                    raise
                if isinstance(exc, OSError) and not isinstance(exc, NerExportError) and exc.filename:
                    message = f"{exc.filename}: {exc.strerror or type(exc).__name__}"  # not "[Errno 2] ..."
                else:
                    message = " ".join(str(exc).split()) or type(exc).__name__
                raise click.ClickException(message) from exc

    return wrapper  # type: ignore[return-value]


def _config(cls: Callable[..., C], **fields: Any) -> C:
    """A library config from option values; a combination it refuses is a usage error, like a bad option."""
    try:
        return cls(**fields)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc


def _systems(ctx: click.Context, param: click.Parameter, value: str) -> tuple[str, ...] | None:
    if value == "all":
        return None
    names = tuple(s.strip() for s in value.split(","))
    unknown = [name for name in names if name not in SYSTEMS]
    if unknown:
        raise click.BadParameter(f"unknown system(s) {', '.join(unknown)}; choose from {', '.join(SYSTEMS)}")
    return names


class _ExportByDefault(click.Group):
    """`ner-export MODEL_DIR ...` means `ner-export export MODEL_DIR ...`; `ner-export` alone shows the help.

    Only a first argument that names an existing path (or holds a `/`) is taken for a MODEL_DIR: any
    other word that is not a command is a mistyped command, which click answers with its suggestion
    ("No such command 'predcit'. Did you mean 'predict'?"), instead of an export of a folder named so.
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if not args and not ctx.resilient_parsing:
            click.echo(ctx.get_help(), color=ctx.color)
            ctx.exit(0)
        first = args[0] if args else ""
        if first and first not in self.commands and not first.startswith("-"):
            if os.path.exists(first) or "/" in first or os.sep in first:
                args = ["export", *args]
        return super().parse_args(ctx, args)


@click.group(cls=_ExportByDefault, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ner-export")
def cli() -> None:
    """Fine-tune an NER model, export it to an int8 ONNX bundle, and run it without torch.

    `ner-export MODEL_DIR` exports a checkpoint (same as `ner-export export MODEL_DIR`).

    Exit status: 0 on success; 1 on an error you can fix (a missing or unreadable file, a bad input
    record, a damaged bundle, an existing output), reported as one line on stderr; 2 on a usage error
    (an unknown command or option, a bad option value or combination). NER_EXPORT_DEBUG=1 shows the
    traceback of errors instead.
    """


_quiet = click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
_backend = click.option(
    "--backend",
    default=BACKENDS[0],
    show_default=True,
    type=click.Choice(BACKENDS),
    help="Engine that runs the graph: onnxruntime, or openvino for the bundle's OpenVINO int8 graph "
    "(cpu only; needs ner-export[openvino] and a bundle exported with it).",
)


@cli.command("export")
@click.argument("model_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("-o", "--out", type=click.Path(path_type=Path), help="Bundle directory [default: MODEL_DIR-bundle].")
@click.option("--force", is_flag=True, help="Replace an existing bundle directory.")
@click.option(
    "--validate-data",
    type=click.Path(dir_okay=False, path_type=Path),
    help="CoNLL file to validate on [default: the checkpoint's dev sample].",
)
@click.option(
    "--validate-sentences",
    default=1000,
    show_default=True,
    type=click.IntRange(1),
    help="Sentences used for validation (the first N).",
)
@click.option(
    "--per-channel/--per-tensor", default=None, help="int8 weight scales per output channel [default] or per tensor."
)
@click.option(
    "--reduce-range/--no-reduce-range", default=None, help="7-bit weights [default: only on x86 CPUs without VNNI]."
)
@click.option(
    "--int8",
    "int8_scheme",
    default=INT8_ACTIVATIONS[0],
    show_default=True,
    type=click.Choice(INT8_ACTIVATIONS),
    help="static: activation scales calibrated on the validation sentences, so a text's result never depends "
    "on its batch; dynamic: scales measured per batch (ONNX Runtime's dynamic int8, batch-dependent).",
)
@click.option(
    "--calibration",
    default=CALIBRATIONS[0],
    show_default=True,
    type=click.Choice(CALIBRATIONS),
    help="How static activation ranges are taken: the whole range seen, or the 99.999th percentiles.",
)
@click.option(
    "--embeddings",
    default=INT8_EMBEDDINGS[0],
    show_default=True,
    type=click.Choice(INT8_EMBEDDINGS),
    help="The word-embedding table as int8 with one scale per row, one scale for the table, or fp32.",
)
@click.option(
    "--fp32/--no-fp32",
    "include_fp32",
    default=True,
    show_default=True,
    help="Ship the fp32 graph too (CPU reference, CUDA).",
)
@click.option("--fp16", "include_fp16", is_flag=True, help="Also ship an fp16 graph for CUDA.")
@click.option(
    "--atol",
    default=1e-3,
    show_default=True,
    type=float,
    help="Max |logit difference| allowed between fp32 ONNX and PyTorch.",
)
@click.option(
    "--max-f1-drop",
    default=0.3,
    show_default=True,
    type=click.FloatRange(0),
    metavar="POINTS",
    help="Most entity F1 (points, 0-100) the int8 graph may lose against fp32 on the validation sentences; "
    "beyond it safer int8 configurations are tried in order (README: int8 accuracy gate), "
    "then the export is refused.",
)
@click.option(
    "--max-length",
    type=click.IntRange(8),
    help="Token window of the runtime, at most the model's max_position_embeddings [default: the training max_length].",
)
@click.option(
    "--openvino/--no-openvino",
    default=None,
    help="Also ship an NNCF int8 OpenVINO graph for the runtime's OpenVINO backend, kept only within "
    "--max-f1-drop [default: when openvino and nncf are installed].",
)
@click.option(
    "--openvino-bf16/--openvino-f32",
    default=True,
    show_default=True,
    help="Let the OpenVINO graph's non-int8 parts run in bf16 when this CPU has bf16 and it is measured "
    "within --max-f1-drop (else f32; runtimes on CPUs without bf16 always compute f32).",
)
@_quiet
@_friendly
def export_command(
    model_dir: Path,
    out: Path | None,
    force: bool,
    validate_data: Path | None,
    validate_sentences: int,
    per_channel: bool | None,
    reduce_range: bool | None,
    int8_scheme: str,
    calibration: str,
    embeddings: str,
    include_fp32: bool,
    include_fp16: bool,
    atol: float,
    max_f1_drop: float,
    max_length: int | None,
    openvino: bool | None,
    openvino_bf16: bool,
    quiet: bool,
) -> None:
    """Export MODEL_DIR (a fine-tuned checkpoint) to a validated int8 ONNX bundle."""
    from ner_export.export import ExportConfig, export_bundle

    result = export_bundle(
        _config(
            ExportConfig,
            model_dir=str(model_dir),
            out=str(out) if out else None,
            force=force,
            validate_data=str(validate_data) if validate_data else None,
            validate_sentences=validate_sentences,
            per_channel=per_channel,
            reduce_range=reduce_range,
            int8=int8_scheme,
            calibration=calibration,
            embeddings=embeddings,
            include_fp32=include_fp32,
            include_fp16=include_fp16,
            atol=atol,
            max_f1_drop=max_f1_drop,
            max_length=max_length,
            openvino=openvino,
            openvino_bf16=openvino_bf16,
            progress=not quiet,
        )
    )
    v = result.validation
    click.echo(f"bundle written to {result.out}")
    for name, size in sorted(result.sizes_mb.items()):
        click.echo(f"  {name:<20} {size:8.2f} MB")
    click.echo(
        f"validated on {v.sentences} sentences from {v.data}: "
        f"fp32 max |Δlogit| {v.fp32_logits_max_abs_diff:.1e} (tolerance {v.atol:.0e})"
    )
    if v.pytorch_f1 is not None:
        click.echo(
            f"  entity F1: pytorch {v.pytorch_f1:.4f}  fp32 {v.fp32_f1:.4f}  int8 {v.int8_f1:.4f} "
            f"(Δ {100 * v.int8_f1_delta:+.2f} points); int8 word-label agreement {100 * v.int8_word_agreement:.2f}%"
        )
    for attempt in v.int8_attempts:
        if attempt["drop"] is not None:
            verdict = "kept" if attempt["accepted"] else f"over the {v.max_f1_drop:.2f}-point limit"
            click.echo(
                f"  int8 config {attempt['config']['name']}: "
                f"entity F1 drop vs fp32 {attempt['drop']:.2f} points, {verdict}"
            )
    ov = v.openvino
    if ov.get("shipped"):
        drop = "" if ov["drop"] is None else f"entity F1 drop vs fp32 {ov['drop']:.2f} points, "
        precision = ov.get("inference_precision", "f32")
        click.echo(
            f"  openvino int8 (NNCF, {precision}): {drop}shipped as {ov['graph']} "
            "(NerModel.load(..., backend='openvino'))"
        )
        if ov.get("bf16") and not ov["bf16"]["kept"]:
            click.echo(f"    bf16 not kept: {ov['bf16']['reason']}")
    elif ov:
        click.echo(f"  openvino int8 (NNCF): left out: {ov['reason']}")


@cli.command("finetune")
@click.option(
    "--train",
    "train_file",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Training file (CoNLL).",
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
@click.option("--base-model", help="HF folder or hub id [default: the offline all-MiniLM-L6-v2].")
@click.option("--epochs", default=3, show_default=True, type=click.IntRange(1), help="Passes over the training file.")
@click.option(
    "--batch-size", default=32, show_default=True, type=click.IntRange(1), help="Sentences per training step."
)
@click.option(
    "--lr",
    default=1e-4,
    show_default=True,
    type=float,
    help="Peak learning rate (AdamW); 1e-4 won the CoNLL sweep on dev (benchmarks/results/recipe-sweep.md).",
)
@click.option(
    "--max-length",
    default=64,
    show_default=True,
    type=click.IntRange(8),
    help="Token window of one example: the sentence, plus its context with --context document.",
)
@click.option(
    "--context",
    default="auto",
    show_default=True,
    type=click.Choice(("auto", *CONTEXT_MODES)),  # "auto" resolves to one of the runtime's modes
    help="document: read each sentence with its neighbours in its document (-DOCSTART- delimits documents; "
    "without it, consecutive sentences); none: each sentence alone; auto: document when the training file "
    "marks documents with -DOCSTART- lines, else none. The mode used is printed and stored in the checkpoint "
    "and the bundle.",
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
@click.option("--seed", default=42, show_default=True, type=int, help="Random seed (initialisation, shuffling).")
@click.option(
    "--warmup-ratio",
    default=0.1,
    show_default=True,
    type=click.FloatRange(0, 1, max_open=True),
    help="Share of the training steps over which the learning rate rises linearly to --lr.",
)
@click.option("--max-train-sentences", type=click.IntRange(1), help="Use only the first N training sentences.")
@click.option("--force", is_flag=True, help="Replace a non-empty output directory.")
@_quiet
@_friendly
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
    force: bool,
    quiet: bool,
) -> None:
    """Fine-tune a token-classification model on CoNLL files."""
    from ner_export.finetune import TrainConfig, finetune

    result = finetune(
        _config(
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
            force=force,
            progress=not quiet,
        )
    )
    click.echo(f"context: {result.context} ({result.context_reason})")
    click.echo(
        f"checkpoint written to {result.out}: best dev F1 {result.best_dev_f1:.4f} "
        f"(epoch {result.best_epoch}), {result.train_seconds:.0f} s"
    )
    if result.test_f1 is not None:
        click.echo(f"test F1 {result.test_f1:.4f}")


@cli.command("eval")
@click.argument("target", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--data", required=True, type=click.Path(dir_okay=False, path_type=Path), help="CoNLL file with gold tags."
)
@click.option(
    "--json", "json_out", type=click.Path(dir_okay=False, path_type=Path), help="Also write the scores as JSON."
)
@click.option("--batch-size", default=32, show_default=True, type=click.IntRange(1), help="Sentences per model run.")
@click.option(
    "--aggregation",
    default=STRATEGIES[0],
    show_default=True,
    type=click.Choice(STRATEGIES),
    help="How a word of the file takes its label from its tokens (first token, their mean, the most confident "
    "one); simple means first, since each word needs one label. A checkpoint is scored by first tokens only.",
)
@click.option(
    "--word-split",
    default=WORD_SPLITS[0],
    show_default=True,
    type=click.Choice(WORD_SPLITS),
    help="Accepted as in predict; the words scored are the data file's own under either value "
    "(word splitting applies to raw text).",
)
@click.option(
    "--decoding",
    default=DECODINGS[0],
    show_default=True,
    type=click.Choice(DECODINGS),
    help="Most probable valid IOB2 sequence, or each word's best label.",
)
@_backend
@_friendly
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


_PREDICT_HELP = """Print one JSON line of entities per input text.

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


@cli.command("predict", help=_PREDICT_HELP, short_help="Print one JSON line of entities per input text.")
@click.argument("bundle", type=click.Path(file_okay=False, path_type=Path))
@click.argument("texts", nargs=-1)
@click.option(
    "--input",
    "input_file",
    type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
    help="Input file (see --format); - reads stdin.",
)
@click.option(
    "--format",
    "input_format",
    default="auto",
    show_default=True,
    type=click.Choice(FORMATS),
    help="text: one text a line; jsonl: one JSON object (or string) a line; json: a top-level array of objects "
    "or strings; parquet: a Parquet file (needs ner-export[annotate]). auto goes by the extension (.txt, "
    ".jsonl/.ndjson, .json, .parquet/.pq), and otherwise reads text and says so on stderr.",
)
@click.option(
    "--text-field",
    default="text",
    show_default=True,
    help="JSON field / Parquet column holding the text; every other field is passed through.",
)
@click.option("--batch-size", default=32, show_default=True, type=click.IntRange(1), help="Texts per onnxruntime run.")
@click.option(
    "--aggregation",
    default=STRATEGIES[0],
    show_default=True,
    type=click.Choice(STRATEGIES),
    help="How a word's label comes from its tokens' scores, as in transformers' pipeline "
    "(simple: every token on its own).",
)
@click.option(
    "--word-split",
    default=WORD_SPLITS[0],
    show_default=True,
    type=click.Choice(WORD_SPLITS),
    help="Word boundaries: whitespace chunks, or exactly transformers' pipeline.",
)
@click.option(
    "--decoding",
    default=DECODINGS[0],
    show_default=True,
    type=click.Choice(DECODINGS),
    help="Most probable valid IOB2 sequence, or each word's best label (the pipeline's way).",
)
@click.option(
    "--device", default=DEVICES[0], show_default=True, type=click.Choice(DEVICES), help="Where the model runs."
)
@click.option(
    "--precision",
    type=click.Choice(PRECISIONS),
    help="Graph to run [default: int8 on cpu, the first CUDA graph on cuda].",
)
@click.option("--threads", type=click.IntRange(1), help="Intra-op threads [default: the CPUs this process may use].")
@_backend
@click.option("--skip-bad", is_flag=True, help="Skip bad records, listing each on stderr, and go on.")
@click.option(
    "--errors",
    "errors_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write skipped records to this file as JSONL (source, row, line, reason, excerpt) instead of "
    "stderr; implies --skip-bad.",
)
@_friendly
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


@cli.command("bench")
@click.argument("bundle", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--checkpoint",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="The checkpoint the bundle was exported from.",
)
@click.option("--data", required=True, type=click.Path(dir_okay=False, path_type=Path), help="CoNLL test file.")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("bench-results"),
    show_default=True,
    help="Directory for the JSON, Markdown and PNG results.",
)
@click.option("--name", default="bench", show_default=True, help="File name stem of the results.")
@click.option("--sentences", type=click.IntRange(1), help="Use only the first N sentences of --data.")
@click.option(
    "--latency-sentences", default=500, show_default=True, type=click.IntRange(1), help="Sentences timed one by one."
)
@click.option(
    "--repeats",
    default=1,
    show_default=True,
    type=click.IntRange(1),
    help="Rounds of the latency and throughput measurements.",
)
@click.option(
    "--systems",
    default="all",
    show_default=True,
    callback=_systems,
    help=f"Comma-separated subset of {','.join(SYSTEMS)}.",
)
@click.option("--no-cold-start", is_flag=True, help="Skip the fresh-process cold-start measurements.")
@_quiet
@_friendly
def bench_command(
    bundle: Path,
    checkpoint: Path,
    data: Path,
    out: Path,
    name: str,
    sentences: int | None,
    latency_sentences: int,
    repeats: int,
    systems: tuple[str, ...] | None,
    no_cold_start: bool,
    quiet: bool,
) -> None:
    """Accuracy and speed of the bundle against PyTorch and Optimum, in one run."""
    from ner_export.benchmarks import BenchConfig, run_bench

    result = run_bench(
        _config(
            BenchConfig,
            bundle=str(bundle),
            checkpoint=str(checkpoint),
            data=str(data),
            out=str(out),
            name=name,
            sentences=sentences,
            latency_sentences=latency_sentences,
            repeats=repeats,
            systems=systems,
            cold_start=not no_cold_start,
            progress=not quiet,
            command=" ".join(["ner-export", *sys.argv[1:]]),
        )
    )
    click.echo(result.markdown)
    click.echo(f"results written to {', '.join(result.files)}")


@cli.command("demo")
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("ner-export-demo"),
    show_default=True,
    help="Where the demo checkpoint and bundle go.",
)
@click.option("--base-model", help="HF folder or hub id [default: the offline all-MiniLM-L6-v2].")
@click.option("--epochs", default=8, show_default=True, type=click.IntRange(1), help="Passes over the sample.")
@_quiet
@_friendly
def demo_command(workdir: Path, base_model: str | None, epochs: int, quiet: bool) -> None:
    """Fine-tune on the bundled sample, export, and compare PyTorch with the bundle."""
    from ner_export.demo import run_demo

    run_demo(workdir, base_model=base_model, epochs=epochs, progress=not quiet, echo=click.echo)


@cli.command("serve")
@click.argument("bundle", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0 for every interface)."
)
@click.option(
    "--port",
    default=8080,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="0 picks a free port (the log names it).",
)
@click.option(
    "--device", default="cpu", show_default=True, type=click.Choice(["cpu", "cuda"]), help="Where the model runs."
)
@click.option("--precision", type=click.Choice(["int8", "fp32", "fp16"]), help="Graph to run [default: int8 on cpu].")
@_backend
@click.option(
    "--threads",
    type=click.IntRange(1),
    help="Intra-op threads of each worker process [default: the CPUs this process may use / --workers].",
)
@click.option(
    "--spin/--no-spin",
    default=False,
    show_default=True,
    help="Let onnxruntime threads keep spinning between model calls (by default they spin only inside one): "
    "lower latency alone, but they take CPU from the event loop under load.",
)
@click.option(
    "--aggregation",
    default="first",
    show_default=True,
    type=click.Choice(["first", "average", "max", "simple"]),
    help="When a request names no aggregation_strategy.",
)
@click.option(
    "--decoding",
    default="constrained",
    show_default=True,
    type=click.Choice(["constrained", "argmax"]),
    help="Most probable valid IOB2 sequence, or each word's best label (the pipeline's way).",
)
@click.option(
    "--word-split",
    default="text",
    show_default=True,
    type=click.Choice(["text", "pipeline"]),
    help="Word boundaries: whitespace chunks, or exactly transformers' pipeline.",
)
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1),
    help="Processes serving the port, each with its own model and --threads (default: CPUs / workers).",
)
@click.option(
    "--streams",
    type=click.IntRange(1),
    help="Batches each process runs at once, each on --threads / streams threads [default: one per thread].",
)
@click.option(
    "--max-batch-size", default=32, show_default=True, type=click.IntRange(1), help="Texts in one model call."
)
@click.option(
    "--max-batch-tokens",
    default=16384,
    show_default=True,
    type=click.IntRange(1),
    help="Padded tokens in one model call.",
)
@click.option(
    "--max-wait-ms",
    default=0.0,
    show_default=True,
    type=click.FloatRange(0),
    help="How long a free model waits for more texts.",
)
@click.option(
    "--allow-batch-dependent", is_flag=True, help="Batch across requests even on a graph that is not batch-invariant."
)
@click.option(
    "--payload-limit",
    default=2_000_000,
    show_default=True,
    type=click.IntRange(1),
    help="Largest request body, in bytes (413 beyond).",
)
@click.option(
    "--max-client-batch-size",
    default=32,
    show_default=True,
    type=click.IntRange(1),
    help="Most texts in one request (413 beyond).",
)
@click.option(
    "--max-queued-texts",
    default=64,
    show_default=True,
    type=click.IntRange(1),
    help="Most texts waiting for the model (429 beyond).",
)
@click.option(
    "--max-queue-ms",
    default=75.0,
    show_default=True,
    type=click.FloatRange(0),
    help="Longest estimated wait for the model a new request may face (429 beyond; 0: no time bound).",
)
@click.option(
    "--request-timeout",
    default=10.0,
    show_default=True,
    type=click.FloatRange(0, min_open=True),
    help="Seconds from acceptance to answer (504 beyond).",
)
@click.option(
    "--graceful-timeout",
    default=20.0,
    show_default=True,
    type=click.FloatRange(0),
    help="Seconds in-flight requests get to finish after SIGTERM/SIGINT.",
)
@click.option(
    "--shutdown-delay",
    default=0.0,
    show_default=True,
    type=click.FloatRange(0),
    help="Seconds /ready stays 503 after SIGTERM before the listener closes.",
)
@click.option("--access-log/--no-access-log", default=True, show_default=True, help="One log line per request.")
@click.option(
    "--log-level",
    default="info",
    show_default=True,
    type=click.Choice(["critical", "error", "warning", "info", "debug"]),
    help="Least severe log messages shown.",
)
@click.option(
    "--engine",
    default="local",
    show_default=True,
    type=click.Choice(["local", "ray"]),
    help="local: this process (uvicorn); ray: a Ray Serve application (ner-export[ray]).",
)
@click.option(
    "--address", help="ray: join this Ray cluster (auto, ray://host:port) [default: start a local Ray on 127.0.0.1]."
)
@click.option("--num-replicas", type=click.IntRange(1), help="ray: replicas of the model [default: 1].")
@click.option(
    "--autoscaling-config",
    callback=lambda ctx, param, value: _json_object(value, param),
    help='ray: Ray Serve autoscaling as JSON, e.g. \'{"min_replicas": 1, "max_replicas": 4}\'.',
)
@click.option(
    "--num-cpus", type=click.FloatRange(0), help="ray: CPUs reserved per replica [default: --threads, else 1]."
)
@click.option(
    "--max-ongoing-requests",
    type=click.IntRange(1),
    help="ray: requests one replica takes at once [default: max-queued-texts + max-batch-size].",
)
@_friendly
def serve_command(bundle: Path, engine: str, address: str | None, **settings: Any) -> None:
    """Serve BUNDLE over HTTP (Hugging Face token-classification protocol) until SIGTERM/SIGINT."""
    ray_options = {
        name: settings.pop(name) for name in ("num_replicas", "autoscaling_config", "num_cpus", "max_ongoing_requests")
    }
    if engine == "local":
        given = [
            f"--{name.replace('_', '-')}"
            for name, value in {"address": address, **ray_options}.items()
            if value is not None
        ]
        if given:
            raise click.UsageError(f"{', '.join(given)} only apply to --engine ray")
        from ner_export.serve import run

        run(bundle, **settings)
    else:
        from ner_export.serve.ray_app import run as run_ray
        from ner_export.serve.ray_app import split_settings

        overrides = {**{name: value for name, value in ray_options.items() if value is not None}, **settings}
        # an option the ray engine refuses (--shutdown-delay) is a usage error, found before Ray starts
        _config(split_settings, settings=None, options=None, overrides=dict(overrides))
        run_ray(bundle, address=address, **overrides)


def _json_object(value: str | None, param: click.Parameter) -> dict[str, Any] | None:
    if value is None:
        return None
    try:
        parsed = json.loads(value)
    except ValueError as exc:
        raise click.BadParameter(f"not JSON ({exc})", param=param) from None
    if not isinstance(parsed, dict):
        raise click.BadParameter("expected a JSON object", param=param)
    return parsed


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
@click.option(
    "--text-field",
    default="text",
    show_default=True,
    help="JSON field / Parquet column holding the text; every other field is passed through.",
)
@click.option(
    "--format",
    "input_format",
    default="auto",
    show_default=True,
    type=click.Choice(["auto", "text", "jsonl", "json", "parquet"]),
    help="Input format; auto goes by extension (.txt .jsonl/.ndjson .json .parquet), else text with a warning.",
)
@click.option(
    "--output-format",
    default="parquet",
    show_default=True,
    type=click.Choice(["parquet", "jsonl"]),
    help="Shard file format.",
)
@click.option(
    "--engine",
    default="local",
    show_default=True,
    type=click.Choice(["local", "ray"]),
    help="local: this process; ray: Ray Data, one model per actor.",
)
@click.option(
    "--address", help="Ray cluster to join (auto or ray://host:port) [default: start a local Ray on 127.0.0.1]."
)
@click.option(
    "--actors", type=click.IntRange(1), help="Ray actors, one model each [default: the cluster's CPUs / --threads]."
)
@click.option(
    "--resume", is_flag=True, help="Finish an interrupted run in --output: keep its complete shards, redo the rest."
)
@click.option("--batch-size", default=32, show_default=True, type=click.IntRange(1), help="Texts per onnxruntime run.")
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
@click.option(
    "--threads", type=click.IntRange(1), help="onnxruntime threads [default: all CPUs locally, 1 per Ray actor]."
)
@click.option("--precision", type=click.Choice(["int8", "fp32"]), help="Graph to run [default: int8].")
@_backend
@click.option(
    "--decoding",
    default="constrained",
    show_default=True,
    type=click.Choice(["constrained", "argmax"]),
    help="Most probable valid IOB2 sequence, or each word's best label.",
)
@_quiet
@_friendly
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

    config = AnnotateConfig(
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
    _config(config.check)  # an option combination it refuses (--actors without --engine ray) is a usage error
    click.echo(annotate(config).summary())


def main() -> None:
    """Console entry point: every error, usage errors included, is one line on stderr."""
    try:
        code = cli.main(prog_name="ner-export", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted!", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        usage = isinstance(exc, click.UsageError) and exc.ctx is not None
        hint = f" (see: {exc.ctx.command_path} --help)" if usage else ""
        click.echo(f"Error: {exc.format_message()}{hint}", err=True)
        sys.exit(exc.exit_code)
    sys.exit(code if isinstance(code, int) else 0)
