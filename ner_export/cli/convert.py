"""`ner-export convert IN OUT`: a CoNLL file to a span file, or a span file to a CoNLL file.

The direction follows IN's format (its extension, or `--data-format`) and OUT must name the other one:
`.jsonl`, `.ndjson` or `.json` for spans, any other extension for CoNLL. Span records are written in
predict's own shape (`text` and `entities` with `start`, `end`, `label`, `text`), a JSON array for
`.json`; CoNLL is written as `word TAG` lines. Documents carry over both ways: `-DOCSTART-` sections
become records' `doc_id`s, and `doc_id`s (or `document`, `meta.doc_id`) become `-DOCSTART-` sections.
The work is `runtime.conll_spans.convert_file`; this module parses and prints.
"""

from __future__ import annotations

from pathlib import Path

import click

from ._util import cli, echo_data_reports, force_option, labeled_data_options, reports_user_errors


@cli.command("convert")
@click.argument("source", metavar="IN", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("out", metavar="OUT", type=click.Path(dir_okay=False, path_type=Path))
@labeled_data_options("IN")
@force_option("Replace an existing OUT.")
@reports_user_errors
def convert_command(source: Path, out: Path, data_format: str, offsets: str, skip_bad: bool, force: bool) -> None:
    """Convert IN to OUT: CoNLL to span JSONL/JSON, or span JSONL/JSON to CoNLL, by their extensions.

    --offsets and --skip-bad apply to a span file being read; a CoNLL file stops at its first bad line.
    """
    from ner_export.runtime.conll_spans import conversion_target, convert_file
    from ner_export.runtime.errors import OutputExistsError

    try:
        target = conversion_target(source, out, data_format)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    if target == "spans" and (offsets != "codepoints" or skip_bad):
        raise click.UsageError("--offsets and --skip-bad apply to a span file being read; IN is CoNLL")
    if out.exists() and not force:
        raise OutputExistsError(f"{out}: already exists; pass --force to replace it")
    report = convert_file(source, out, data_format, offsets, skip_bad)
    echo_data_reports({"convert": report.counts()})
    unit = "records" if target == "spans" else "sentences"
    click.echo(f"wrote {report.records} {unit} ({report.spans} entities, {report.documents} document(s)) to {out}")
