"""ner_export.runtime: load a bundle and find entities, with onnxruntime (or OpenVINO), tokenizers and numpy only.

    >>> from ner_export.runtime import NerModel
    >>> model = NerModel.load("bundle/")
    >>> model("Angela Merkel visited Paris.")
    [Entity(text='Angela Merkel', label='PER', start=0, end=13, score=0.99), ...]

This package is the base layer of ner-export: it imports nothing from finetune/, export/ or
benchmarks/, and they build on its errors, label schemes, CoNLL reader, bundle manifest and session
builder. Its modules are public and typed (`py.typed`): `model`, `session`, `chunks`, `openvino_backend` (the optional
backend, which alone imports openvino), `manifest`, `decoding`, `labels`, `context`, `casing`, `conll`,
`evaluate`, `machine`, `files`, `errors`.
"""

from .errors import (
    BenchError,
    BenchMismatchError,
    BundleError,
    CheckpointError,
    ColdStartError,
    DataFormatError,
    DataNotFoundError,
    DeviceError,
    ExportError,
    InputError,
    InvisibleLineWarning,
    LabelMismatchError,
    MissingDependencyError,
    NerExportError,
    NerExportWarning,
    NotAModelError,
    OutputExistsError,
    TagRepairWarning,
    ValidationError,
)
from .machine import available_cpus
from .manifest import BundleManifest, GraphSpec
from .model import Entity, NerModel

__all__ = [
    "NerModel",
    "Entity",
    "available_cpus",
    "BundleManifest",
    "GraphSpec",
    "NerExportError",
    "InputError",
    "DataFormatError",
    "LabelMismatchError",
    "DataNotFoundError",
    "OutputExistsError",
    "NotAModelError",
    "BundleError",
    "CheckpointError",
    "ExportError",
    "ValidationError",
    "BenchError",
    "BenchMismatchError",
    "ColdStartError",
    "DeviceError",
    "MissingDependencyError",
    "NerExportWarning",
    "TagRepairWarning",
    "InvisibleLineWarning",
]
