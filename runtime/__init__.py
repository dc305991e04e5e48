"""ner_export.runtime: load a bundle and find entities, with onnxruntime, tokenizers and numpy only.

    >>> from ner_export.runtime import NerModel
    >>> model = NerModel.load("bundle/")
    >>> model("Angela Merkel visited Paris.")
    [Entity(text='Angela Merkel', label='PER', start=0, end=13, score=0.99), ...]

This package is the base layer of ner-export: it imports nothing from finetune/, export/ or
benchmarks/, and they build on its errors, label schemes and bundle manifest.
"""

from .errors import (
    BundleError,
    CheckpointError,
    DataFormatError,
    DeviceError,
    ExportError,
    MissingDependencyError,
    NerExportError,
    NerExportWarning,
    ValidationError,
)
from .manifest import BundleManifest, GraphSpec
from .model import Entity, NerModel, available_cpus

__all__ = [
    "NerModel",
    "Entity",
    "available_cpus",
    "BundleManifest",
    "GraphSpec",
    "NerExportError",
    "DataFormatError",
    "BundleError",
    "ExportError",
    "ValidationError",
    "CheckpointError",
    "DeviceError",
    "MissingDependencyError",
    "NerExportWarning",
]
