"""ner_export.export: turn a fine-tuned checkpoint into a validated int8 ONNX bundle.

Needs the `train` and `export` extras (torch, transformers, optimum-onnx, onnx); the bundle it writes
needs none of them.
"""

from .config import ExportConfig
from .exporter import ExportResult, cpu_quantization_defaults, export_bundle, third_party_warnings_silenced
from .gate import GateResult, run_int8_gate
from .int8_attempt import Int8Attempt
from .quantize import Int8Config, default_int8_ladder, quantize_graph
from .validate import ValidationReport

__all__ = [
    "ExportConfig",
    "ExportResult",
    "GateResult",
    "Int8Attempt",
    "Int8Config",
    "ValidationReport",
    "cpu_quantization_defaults",
    "default_int8_ladder",
    "export_bundle",
    "quantize_graph",
    "run_int8_gate",
    "third_party_warnings_silenced",
]
