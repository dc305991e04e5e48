"""`ner-export bench BUNDLE --checkpoint DIR --data FILE`: accuracy and speed against PyTorch and Optimum.

The systems to race come from `benchmarks.systems.SYSTEMS`; the benchmark itself (and its heavy
stages) is imported inside the command. With `--compare OTHER_BUNDLE ...` it measures bundles against
each other instead, on the runtime alone (`benchmarks.frontier`): no checkpoint, no other systems.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click
from click.core import ParameterSource

from ner_export.benchmarks.systems import SYSTEMS

from ._util import cli, config_from_options, data_option, quiet_option, reports_user_errors


def parse_systems(ctx: click.Context, param: click.Parameter, value: str) -> tuple[str, ...] | None:
    """`--systems`: "all" (None), or a comma-separated subset of SYSTEMS, each name checked."""
    if value == "all":
        return None
    names = tuple(s.strip() for s in value.split(","))
    unknown = [name for name in names if name not in SYSTEMS]
    if unknown:
        raise click.BadParameter(f"unknown system(s) {', '.join(unknown)}; choose from {', '.join(SYSTEMS)}")
    return names


@cli.command("bench")
@click.argument("bundle", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--checkpoint",
    type=click.Path(file_okay=False, path_type=Path),
    help="The checkpoint the bundle was exported from (required, unless --compare).",
)
@click.option(
    "--compare",
    multiple=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Another bundle (repeatable), e.g. a distilled student: measure BUNDLE and these on the runtime "
    "alone (F1, p50, throughput on all CPUs and on one thread, size, layers; chart of F1 against "
    "throughput), ratios to BUNDLE. Results are named frontier unless --name.",
)
@data_option("CoNLL test file.")
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
    callback=parse_systems,
    help=f"Comma-separated subset of {','.join(SYSTEMS)}.",
)
@click.option("--no-cold-start", is_flag=True, help="Skip the fresh-process cold-start measurements.")
@click.option(
    "--notes",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="With --compare: a Markdown file the report appends under Notes (what was tried, what the run left out).",
)
@quiet_option
@reports_user_errors
def bench_command(
    bundle: Path,
    checkpoint: Path | None,
    compare: tuple[Path, ...],
    data: Path,
    out: Path,
    name: str,
    sentences: int | None,
    latency_sentences: int,
    repeats: int,
    systems: tuple[str, ...] | None,
    no_cold_start: bool,
    notes: Path | None,
    quiet: bool,
) -> None:
    """Accuracy and speed of the bundle against PyTorch and Optimum, in one run (or, with --compare,
    of several bundles against each other)."""
    from ner_export.benchmarks import BenchConfig, run_bench

    if compare:
        if checkpoint is not None or systems is not None:
            raise click.UsageError(
                "--compare measures bundles on the runtime alone: leave out --checkpoint and --systems"
            )
        from ner_export.benchmarks.frontier import FrontierConfig, run_frontier

        default_name = click.get_current_context().get_parameter_source("name") is ParameterSource.DEFAULT
        frontier = run_frontier(
            config_from_options(
                FrontierConfig,
                bundles=(str(bundle), *map(str, compare)),
                data=str(data),
                out=str(out),
                name="frontier" if default_name else name,
                sentences=sentences,
                latency_sentences=latency_sentences,
                repeats=repeats,
                progress=not quiet,
                command=" ".join(["ner-export", *sys.argv[1:]]),
                notes=notes.read_text(encoding="utf-8") if notes else "",
            )
        )
        click.echo(frontier.markdown)
        click.echo(f"results written to {', '.join(frontier.files)}")
        return
    if notes is not None:
        raise click.UsageError("--notes belongs to --compare: the single-bundle report has no notes")
    if checkpoint is None:
        context = click.get_current_context()
        raise click.MissingParameter(
            ctx=context, param=next(p for p in context.command.params if p.name == "checkpoint")
        )

    result = run_bench(
        config_from_options(
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
