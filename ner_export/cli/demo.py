"""`ner-export demo`: fine-tune on the packaged sample, export, and compare PyTorch with the bundle.

The pipeline lives in `ner_export.demo`, imported inside the command with the training stack.
"""

from __future__ import annotations

from pathlib import Path

import click

from ._util import base_model_option, cli, epochs_option, quiet_option, reports_user_errors


@cli.command("demo")
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("ner-export-demo"),
    show_default=True,
    help="Where the demo checkpoint and bundle go.",
)
@base_model_option
@epochs_option(8, "Passes over the sample.")
@quiet_option
@reports_user_errors
def demo_command(workdir: Path, base_model: str | None, epochs: int, quiet: bool) -> None:
    """Fine-tune on the bundled sample, export, and compare PyTorch with the bundle."""
    from ner_export.demo import run_demo

    run_demo(workdir, base_model=base_model, epochs=epochs, progress=not quiet, echo=click.echo)
