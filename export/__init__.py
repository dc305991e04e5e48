"""ner_export.export: turn a fine-tuned checkpoint into a validated int8 ONNX bundle.

Needs the `train` and `export` extras (torch, transformers, optimum-onnx, onnx); the bundle it writes
needs none of them.
"""

from .exporter import ExportConfig, ExportResult, cpu_quantization_defaults, export_bundle
from .validate import ValidationReport

__all__ = ["ExportConfig", "ExportResult", "ValidationReport", "export_bundle", "cpu_quantization_defaults"]
