"""`ner-export export MODEL_DIR`: a fine-tuned checkpoint to a validated int8 ONNX bundle.

The export stack (torch, transformers, optimum) is imported inside the command. The options map one
to one onto `ExportConfig`, whose refusals are usage errors; the lines printed come from
`export.summary.export_summary`, so this module only parses and prints; what a span file given to
`--validate-data` gave (records, entities, skipped records) goes to stderr.
"""

from __future__ import annotations

from pathlib import Path

import click

from ner_export.runtime.manifest import CALIBRATIONS, INT8_ACTIVATIONS, INT8_EMBEDDINGS

from ._util import (
    cli,
    config_from_options,
    echo_data_reports,
    force_option,
    labeled_data_options,
    max_length_option,
    quiet_option,
    reports_user_errors,
)


@cli.command("export")
@click.argument("model_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("-o", "--out", type=click.Path(path_type=Path), help="Bundle directory [default: MODEL_DIR-bundle].")
@force_option("Replace an existing bundle directory.")
@click.option(
    "--validate-data",
    type=click.Path(dir_okay=False, path_type=Path),
    help="CoNLL or span file to validate on (see --data-format) [default: the checkpoint's dev sample].",
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
    "beyond it safer int8 configurations are tried in order (docs/export.md: The int8 accuracy gate), "
    "then the export is refused.",
)
@max_length_option(
    "Token window of the runtime, at most the model's max_position_embeddings [default: the training max_length]."
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
@labeled_data_options("--validate-data")
@quiet_option
@reports_user_errors
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
    data_format: str,
    offsets: str,
    skip_bad: bool,
    quiet: bool,
) -> None:
    """Export MODEL_DIR (a fine-tuned checkpoint) to a validated int8 ONNX bundle."""
    from ner_export.export import ExportConfig, export_bundle
    from ner_export.export.summary import export_summary

    result = export_bundle(
        config_from_options(
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
            data_format=data_format,
            offsets=offsets,
            skip_bad=skip_bad,
            progress=not quiet,
        )
    )
    echo_data_reports({"validation": result.validation.data_report})
    for line in export_summary(result):
        click.echo(line)
