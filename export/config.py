"""`ExportConfig`: what an export is asked to do, checked when it is made.

A leaf of the package: it needs only `Int8Config` (for a caller's own ladder) and the runtime's names of
data formats and offset units, so the validator, the gate and the exporter can all read it without
importing one another. Fields that depend on the
machine (`per_channel`, `reduce_range`) stay None until the exporter resolves them with
`export.exporter.cpu_quantization_defaults`: a config describes the request, not the CPU it runs on.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ner_export.runtime.labeled_data import DATA_FORMATS
from ner_export.runtime.span_records import OFFSET_UNITS

from .quantize import Int8Config

__all__ = ["ExportConfig"]


@dataclass(frozen=True)
class ExportConfig:
    """How to export a checkpoint. Unset quantization fields take `cpu_quantization_defaults()`.

    `int8` ("static": calibrated activation scales, batch-invariant; "dynamic": per-batch scales),
    `calibration`, `embeddings`, `per_channel` and `reduce_range` make the requested int8 config, the
    first rung of the gate's ladder (`export.quantize.default_int8_ladder`); `int8_ladder` replaces
    the whole ladder. `max_f1_drop` is the most entity F1 (in points, 0-100) the int8 graph may lose
    against the fp32 one on the validation sentences. `validate_data` is a CoNLL or span file, read as
    `data_format` ("auto": by extension) with span `offsets`, bad span records skipped with `skip_bad`
    (`runtime.labeled_data.read_labeled`); the checkpoint's dev sample is CoNLL. `openvino`: also make
    the NNCF int8 OpenVINO graph (None: when openvino and nncf are installed; True asks for it, recording
    why when it cannot be made; False: never); `openvino_bf16`: let it run in bf16 where that is
    measured within `max_f1_drop`.
    """

    model_dir: str
    out: str | None = None
    force: bool = False
    opset: int | None = None
    per_channel: bool | None = None
    reduce_range: bool | None = None
    int8: str = "static"
    calibration: str = "minmax"
    embeddings: str = "per-row"
    include_fp32: bool = True
    include_fp16: bool = False
    validate_data: str | None = None
    validate_sentences: int = 1000
    atol: float = 1e-3
    max_f1_drop: float = 0.3
    int8_ladder: tuple[Int8Config, ...] | None = None
    max_length: int | None = None
    openvino: bool | None = None
    openvino_bf16: bool = True
    progress: bool = True
    data_format: str = "auto"
    offsets: str = "codepoints"
    skip_bad: bool = False

    def __post_init__(self) -> None:
        if not self.max_f1_drop >= 0:
            raise ValueError(f"max_f1_drop must be >= 0 (points of entity F1), got {self.max_f1_drop}")
        if self.validate_sentences < 1:
            raise ValueError(f"validate_sentences must be at least 1, got {self.validate_sentences}")
        if self.int8_ladder is not None and not self.int8_ladder:
            raise ValueError("int8_ladder must hold at least one Int8Config (or be None for the default ladder)")
        if self.data_format not in DATA_FORMATS:
            raise ValueError(f"data_format must be one of {', '.join(DATA_FORMATS)}, got {self.data_format!r}")
        if self.offsets not in OFFSET_UNITS:
            raise ValueError(f"offsets must be one of {', '.join(OFFSET_UNITS)}, got {self.offsets!r}")

    def destination(self) -> Path:
        """The bundle directory: `out`, else the checkpoint's path with `-bundle` appended."""
        return Path(self.out) if self.out else Path(str(Path(self.model_dir).resolve()) + "-bundle")
