"""What every `ner-export` command shares: the click group, the user-error wrapper, and the options.

Each option that several commands take (device, precision, threads, backend, decoding, aggregation,
word split, input format, the labelled-data reading options, ...) is declared once here as a decorator
factory. Its choices come from
the library's own constants, so the CLI cannot offer what the library refuses; its help text is an
argument, since the same option reads differently per command (predict's `--threads` is one
process's, serve's is each worker's).

Labelled data (finetune, distill, eval, export's validation, convert) is read by
`runtime.labeled_data`; `labeled_data_options` gives those commands `--data-format`, `--offsets` and
`--skip-bad`, and `echo_data_reports` states on stderr what each span file gave (records, entities,
what was skipped). A skipped record is listed on stderr as `skipped FILE:LINE: reason`, as predict lists it.

Errors: every `NerExportError` and `OSError` (a missing or unreadable file) becomes a one-line message
and exit status 1; a bad option, or an option combination a library config refuses, is a click usage
error (exit status 2); anything else is a bug and keeps its traceback. NER_EXPORT_DEBUG=1 shows the
traceback of user errors too, with the exception that caused them.
"""

from __future__ import annotations

import functools
import os
import sys
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import click

from ner_export import __version__
from ner_export.inputs import FORMATS
from ner_export.runtime.decoding import DECODINGS, STRATEGIES, WORD_SPLITS
from ner_export.runtime.errors import NerExportError, NerExportWarning, SkippedRecordsWarning
from ner_export.runtime.labeled_data import DATA_FORMATS, report_summary
from ner_export.runtime.manifest import BACKENDS, DEVICES, MIN_MAX_LENGTH, PRECISIONS
from ner_export.runtime.span_records import OFFSET_UNITS

__all__ = [
    "cli",
    "main",
    "reports_user_errors",
    "config_from_options",
    "address_option",
    "aggregation_option",
    "backend_option",
    "base_model_option",
    "batch_size_option",
    "data_option",
    "decoding_option",
    "device_option",
    "echo_data_reports",
    "engine_option",
    "epochs_option",
    "force_option",
    "input_format_option",
    "labeled_data_options",
    "max_length_option",
    "precision_option",
    "quiet_option",
    "text_field_option",
    "threads_option",
    "word_split_option",
]

F = TypeVar("F", bound=Callable[..., Any])
C = TypeVar("C")

USER_ERRORS = (NerExportError, OSError)


def reports_user_errors(command: F) -> F:
    """Turn user errors into one line on stderr and exit status 1 instead of a traceback; show the
    library's warnings as one `warning: ...` line each, and skipped data records as one
    `skipped FILE:LINE: reason` line each."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        original = warnings.showwarning

        def show(message: Any, category: type[Warning], *rest: Any, **kw: Any) -> None:
            if isinstance(message, SkippedRecordsWarning) and message.records:
                for record in message.records:
                    click.echo(f"skipped {record}", err=True)
            elif issubclass(category, NerExportWarning):
                click.echo(f"warning: {message}", err=True)
            else:
                original(message, category, *rest, **kw)

        with warnings.catch_warnings():
            warnings.simplefilter("default", NerExportWarning)  # shown once each, never raised
            warnings.showwarning = show
            try:
                return command(*args, **kwargs)
            except USER_ERRORS as exc:
                if os.environ.get("NER_EXPORT_DEBUG"):
                    raise
                if isinstance(exc, OSError) and not isinstance(exc, NerExportError) and exc.filename:
                    message = f"{exc.filename}: {exc.strerror or type(exc).__name__}"  # not "[Errno 2] ..."
                else:
                    message = " ".join(str(exc).split()) or type(exc).__name__
                raise click.ClickException(message) from exc

    return wrapper  # type: ignore[return-value]


def config_from_options(cls: Callable[..., C], **fields: Any) -> C:
    """A library config from option values; a combination it refuses is a usage error, like a bad option."""
    try:
        return cls(**fields)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc


class ExportByDefaultGroup(click.Group):
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


@click.group(cls=ExportByDefaultGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ner-export")
def cli() -> None:
    """Fine-tune an NER model, export it to an int8 ONNX bundle, and run it without torch.

    `ner-export MODEL_DIR` exports a checkpoint (same as `ner-export export MODEL_DIR`).

    Exit status: 0 on success; 1 on an error you can fix (a missing or unreadable file, a bad input
    record, a damaged bundle, an existing output), reported as one line on stderr; 2 on a usage error
    (an unknown command or option, a bad option value or combination). NER_EXPORT_DEBUG=1 shows the
    traceback of errors instead.
    """


def main() -> None:
    """Console entry point: every error, usage errors included, is one line on stderr."""
    try:
        code = cli.main(prog_name="ner-export", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted!", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        usage_ctx = exc.ctx if isinstance(exc, click.UsageError) else None
        hint = f" (see: {usage_ctx.command_path} --help)" if usage_ctx is not None else ""
        click.echo(f"Error: {exc.format_message()}{hint}", err=True)
        sys.exit(exc.exit_code)
    sys.exit(code if isinstance(code, int) else 0)


# --------------------------------------------------------------------------- options several commands take
quiet_option = click.option("--quiet", "-q", is_flag=True, help="No progress bars.")

backend_option = click.option(
    "--backend",
    default=BACKENDS[0],
    show_default=True,
    type=click.Choice(BACKENDS),
    help="Engine that runs the graph: onnxruntime, or openvino for the bundle's OpenVINO int8 graph "
    "(cpu only; needs ner-export[openvino] and a bundle exported with it).",
)

device_option = click.option(
    "--device", default=DEVICES[0], show_default=True, type=click.Choice(DEVICES), help="Where the model runs."
)

text_field_option = click.option(
    "--text-field",
    default="text",
    show_default=True,
    help="JSON field / Parquet column holding the text; every other field is passed through.",
)

base_model_option = click.option("--base-model", help="HF folder or hub id [default: the offline all-MiniLM-L6-v2].")


def precision_option(help: str, choices: Sequence[str] = PRECISIONS) -> Callable[[F], F]:
    """`--precision`: the bundle graph to run; None lets the runtime pick the device's default."""
    return click.option("--precision", type=click.Choice(choices), help=help)


def threads_option(help: str) -> Callable[[F], F]:
    """`--threads`: onnxruntime intra-op threads; None lets the runtime or the engine decide."""
    return click.option("--threads", type=click.IntRange(1), help=help)


def decoding_option(help: str = "Most probable valid IOB2 sequence, or each word's best label.") -> Callable[[F], F]:
    """`--decoding`: constrained IOB2 decoding or per-word argmax."""
    return click.option("--decoding", default=DECODINGS[0], show_default=True, type=click.Choice(DECODINGS), help=help)


def aggregation_option(help: str) -> Callable[[F], F]:
    """`--aggregation`: how a word takes its label from its tokens (transformers' strategies)."""
    return click.option(
        "--aggregation", default=STRATEGIES[0], show_default=True, type=click.Choice(STRATEGIES), help=help
    )


def word_split_option(
    help: str = "Word boundaries: whitespace chunks, or exactly transformers' pipeline.",
) -> Callable[[F], F]:
    """`--word-split`: where words of raw text begin and end."""
    return click.option(
        "--word-split", default=WORD_SPLITS[0], show_default=True, type=click.Choice(WORD_SPLITS), help=help
    )


def input_format_option(help: str) -> Callable[[F], F]:
    """`--format` (parameter `input_format`): how input files are read; auto goes by the extension."""
    return click.option(
        "--format", "input_format", default=FORMATS[0], show_default=True, type=click.Choice(FORMATS), help=help
    )


def batch_size_option(help: str) -> Callable[[F], F]:
    """`--batch-size`: items per model run (texts, sentences or training examples)."""
    return click.option("--batch-size", default=32, show_default=True, type=click.IntRange(1), help=help)


def force_option(help: str) -> Callable[[F], F]:
    """`--force`: replace an existing output."""
    return click.option("--force", is_flag=True, help=help)


def epochs_option(default: int, help: str) -> Callable[[F], F]:
    """`--epochs`: passes over the training data."""
    return click.option("--epochs", default=default, show_default=True, type=click.IntRange(1), help=help)


def training_schedule_options(seed_help: str) -> Callable[[F], F]:
    """`--seed`, `--warmup-ratio` and `--max-train-sentences`: the schedule every training command shares."""
    options = (
        click.option("--seed", default=42, show_default=True, type=int, help=seed_help),
        click.option(
            "--warmup-ratio",
            default=0.1,
            show_default=True,
            type=click.FloatRange(0, 1, max_open=True),
            help="Share of the training steps over which the learning rate rises linearly to --lr.",
        ),
        click.option("--max-train-sentences", type=click.IntRange(1), help="Use only the first N training sentences."),
    )

    def apply(command: F) -> F:
        for option in reversed(options):
            command = option(command)
        return command

    return apply


def max_length_option(help: str, default: int | None = None) -> Callable[[F], F]:
    """`--max-length`: a token window, at least the runtime's smallest (MIN_MAX_LENGTH)."""
    shown: dict[str, Any] = {} if default is None else {"default": default, "show_default": True}
    return click.option("--max-length", type=click.IntRange(MIN_MAX_LENGTH), help=help, **shown)


def data_option(help: str) -> Callable[[F], F]:
    """`--data`: a required CoNLL file."""
    return click.option("--data", required=True, type=click.Path(dir_okay=False, path_type=Path), help=help)


def engine_option(choices: Sequence[str], help: str) -> Callable[[F], F]:
    """`--engine`: where a serve or annotate run happens (this process, or Ray)."""
    return click.option("--engine", default=choices[0], show_default=True, type=click.Choice(choices), help=help)


def address_option(help: str) -> Callable[[F], F]:
    """`--address`: the Ray cluster to join (engine ray only)."""
    return click.option("--address", help=help)


def labeled_data_options(files: str) -> Callable[[F], F]:
    """`--data-format`, `--offsets` and `--skip-bad`: how the labelled data files (`files`, e.g. "--train,
    --dev and --test") are read (`runtime.labeled_data.read_labeled`)."""
    options = [
        click.option(
            "--data-format",
            default=DATA_FORMATS[0],
            show_default=True,
            type=click.Choice(DATA_FORMATS),
            help=f"Format of {files}: conll (word TAG lines) or spans (JSON records of a text and its labelled "
            "character spans: predict output, spaCy/Prodigy, doccano, Label Studio); auto goes by the extension "
            "(.jsonl, .ndjson, .json are spans, anything else CoNLL), never by the content.",
        ),
        click.option(
            "--offsets",
            default=OFFSET_UNITS[0],
            show_default=True,
            type=click.Choice(OFFSET_UNITS),
            help="What span offsets count: code points (Python, predict output) or UTF-16 code units "
            "(JavaScript tools such as Label Studio).",
        ),
        click.option(
            "--skip-bad",
            is_flag=True,
            default=False,
            help="Skip bad span records, listing each on stderr, and go on (without it the first one stops "
            "the run with its file and line).",
        ),
    ]

    def decorate(command: F) -> F:
        for option in reversed(options):
            command = option(command)
        return command

    return decorate


def echo_data_reports(reports: Mapping[str, Mapping[str, Any]]) -> None:
    """One stderr line per span file read, `NAME data: what it gave` (`runtime.labeled_data.report_summary`:
    records, entities, documents, records skipped), from reports as `DataReport.counts()` gives them, keyed
    by the file's role (train, dev, ...). A CoNLL file's run prints what it always printed."""
    for name, counts in reports.items():
        if counts.get("data_format") == "spans":
            click.echo(f"{name} data: {report_summary(counts)}", err=True)
