"""ner_export.runtime: load a bundle and find entities, with onnxruntime (or OpenVINO), tokenizers and numpy only.

    >>> from ner_export.runtime import NerModel
    >>> model = NerModel.load("bundle/")
    >>> model("Angela Merkel visited Paris.")
    [Entity(text='Angela Merkel', label='PER', start=0, end=13, score=0.99), ...]

This package is the base layer of ner-export: it imports nothing from finetune/, export/ or
benchmarks/, and they build on its errors, label schemes, CoNLL reader, bundle manifest and session
builder. Its modules are public and typed (`py.typed`):

- `model`: `NerModel`, the inference API, which wires the next five together;
- `loading`: a bundle opened for a model (options checked, files verified, sessions built);
- `encoding`: texts to token rows, casing classes, window plans and graph feeds;
- `graph_runner`: windows packed into padded batches and run on the session or its streams;
- `entities`: `Entity`, and token scores to entities or word tags;
- `token_cache`: single texts' tokens from cached space-separated chunks;
- `session`: onnxruntime sessions, the tokenizer and graph feeds; `openvino_backend`: the optional
  backend, which alone imports openvino;
- `manifest`: the bundle's `bundle.json`; `decoding`: token scores to word labels and entities;
  `labels`: tag schemes and entity scores; `context`: document context and long-text windows;
  `casing`: casing classes; `conll`: the CoNLL reader and writer; `evaluate`: scoring a tagger;
- `span_records`, `span_files`, `span_words`: annotation tools' span records (predict output,
  spaCy/Prodigy, doccano, Label Studio) read and checked, and turned into words with IOB2 tags;
  `conll_spans`: CoNLL files to span files and back; `labeled_data`: CoNLL or span files read as
  the same sentences, with a report; `span_scoring`: span-level scores; `model_card`: the Hugging
  Face model card of a checkpoint or bundle;
- `machine`: CPUs and library versions; `files`: JSON reading and staged output directories;
  `texts`: what makes an input text unusable; `checks`: shared argument checks; `local_ray`: a
  private local Ray cluster; `errors`: the exception and warning hierarchy.
"""

from .entities import Entity
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
from .model import NerModel

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
