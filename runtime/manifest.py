"""The bundle manifest (`bundle.json`): what a bundle holds and how to run it.

One frozen dataclass, written by the exporter and read by the runtime, so both sides agree on one
schema. The manifest lists every file with its sha256: a bundle is a file tree that people copy
around, and a truncated or swapped file must fail loudly at load, not predict garbage. JSON (never
pickle) keeps loading free of code execution.

Reading checks the type and range of every field it knows and names the field that is wrong, so a
hand-edited or damaged manifest is a `BundleError`, never a traceback deep in the runtime. Keys it
does not know are ignored: a bundle written by a newer ner-export that only adds information still
loads. A change that an older reader would misread (a field whose meaning changes) bumps
`FORMAT_VERSION`, which readers compare exactly.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path, PurePosixPath
from typing import Any, NoReturn

from .context import CONTEXT_MODES
from .errors import BundleError
from .files import read_json

__all__ = [
    "BACKENDS",
    "CALIBRATIONS",
    "INT8_ACTIVATIONS",
    "INT8_EMBEDDINGS",
    "DEVICES",
    "FORMAT_VERSION",
    "MANIFEST_NAME",
    "PRECISIONS",
    "GraphSpec",
    "BundleManifest",
    "is_bundle",
    "position_limit",
    "sha256_file",
]

FORMAT_VERSION = 1
MANIFEST_NAME = "bundle.json"
DEVICES = ("cpu", "cuda")
BACKENDS = ("onnxruntime", "openvino")  # the engine that runs a graph: ONNX files, or an OpenVINO IR (.xml + .bin)
PRECISIONS = ("int8", "fp32", "fp16")
INT8_ACTIVATIONS = ("static", "dynamic")  # calibrated activation scales (batch-invariant), or per batch
INT8_EMBEDDINGS = ("per-row", "per-tensor", "fp32")  # how the large embedding tables are stored
CALIBRATIONS = ("minmax", "percentile")  # how static activation ranges are taken from calibration data


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def is_bundle(path: str | Path) -> bool:
    """True when `path` is a directory holding a bundle manifest (whether valid or not)."""
    return (Path(path) / MANIFEST_NAME).is_file()


MIN_MAX_LENGTH = 8
_SHA256 = re.compile(r"[0-9a-f]{64}")
# model types whose position ids start after the padding index (RoBERTa's scheme): they lose pad_token_id + 1 positions
_OFFSET_POSITIONS = ("roberta", "xlm-roberta", "xlm-roberta-xl", "camembert", "longformer", "data2vec-text", "mpnet")


def position_limit(config: Mapping[str, Any]) -> int | None:
    """The most tokens one window may hold, from a Hugging Face `config.json`; None when it does not say.

    That is `max_position_embeddings`, less the positions a RoBERTa-style model reserves before its first
    token (`pad_token_id + 1`).
    """
    positions = config.get("max_position_embeddings")
    if not isinstance(positions, int) or isinstance(positions, bool) or positions < 1:
        return None
    if config.get("model_type") in _OFFSET_POSITIONS:
        pad = config.get("pad_token_id")
        positions -= (pad if isinstance(pad, int) and not isinstance(pad, bool) and pad >= 0 else 1) + 1
    return positions


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _json_excerpt(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=repr)
    return text if len(text) <= 60 else text[:57] + "..."


_REQUIRED = object()


class _FieldReader:
    """Typed access to the fields of one JSON object of bundle.json; every failure names the field."""

    def __init__(self, path: Path, data: Mapping[str, Any], prefix: str = "") -> None:
        self.path = path
        self.data = data
        self.prefix = prefix

    def fail(self, name: str, problem: str) -> NoReturn:
        found = f", found {_json_excerpt(self.data[name])}" if name in self.data else ""
        raise BundleError(f"{self.path}: '{self.prefix}{name}' {problem}{found}")

    def get(self, name: str, default: Any) -> Any:
        if name not in self.data:
            if default is _REQUIRED:
                raise BundleError(f"{self.path}: '{self.prefix}{name}' is missing")
            return default
        return self.data[name]

    def integer(self, name: str, default: Any = None, minimum: int = 0) -> int:
        value = self.get(name, default)
        if not _is_int(value) or value < minimum:
            self.fail(name, f"must be an integer >= {minimum}")
        return int(value)

    def boolean(self, name: str, default: Any = None) -> bool:
        value = self.get(name, default)
        if not isinstance(value, bool):
            self.fail(name, "must be true or false")
        return value

    def string(self, name: str, default: Any = None) -> str:
        value = self.get(name, default)
        if not isinstance(value, str):
            self.fail(name, "must be a string")
        return value

    def choice(self, name: str, choices: tuple[str, ...], default: Any = None) -> str:
        value = self.get(name, default)
        if not isinstance(value, str) or value not in choices:
            self.fail(name, f"must be one of {', '.join(choices)}")
        return str(value)

    def mapping(self, name: str, default: Any = None) -> dict[str, Any]:
        value = self.get(name, default)
        if not isinstance(value, dict) or not all(isinstance(key, str) for key in value):
            self.fail(name, "must be a JSON object")
        return dict(value)

    def file_name(self, name: str, default: Any = None) -> str:
        value = self.string(name, default)
        if not _stays_inside_bundle(value):
            self.fail(name, "must be the name of a file inside the bundle")
        return value


def _stays_inside_bundle(name: str) -> bool:
    """True for a relative file name that stays inside the bundle directory."""
    return bool(name) and not name.startswith("/") and "\\" not in name and ".." not in PurePosixPath(name).parts


@dataclass(frozen=True)
class GraphSpec:
    """One graph of the bundle and what it is for: an ONNX file for onnxruntime, or an OpenVINO IR
    (`file` the .xml, `weights` its .bin) for the optional OpenVINO backend."""

    file: str
    device: str  # one of DEVICES
    precision: str  # one of PRECISIONS
    quantization: dict[str, Any] = field(default_factory=dict)
    # False when a text's result can depend on the other texts in its batch (dynamic int8 activation scales)
    batch_invariant: bool = True
    backend: str = "onnxruntime"  # one of BACKENDS
    weights: str = ""  # a second file the graph needs (an OpenVINO IR's .bin), listed in `files`; "" for none

    @classmethod
    def from_dict(cls, data: dict[str, Any], path: Path = Path(MANIFEST_NAME), index: int = 0) -> GraphSpec:
        """A graph entry of bundle.json, checked (BundleError naming the field); unknown keys are ignored.

        Entries written before `batch_invariant` existed infer it; before `backend`, they are onnxruntime's.
        """
        if not isinstance(data, dict):
            raise BundleError(f"{path}: 'graphs[{index}]' must be a JSON object, found {_json_excerpt(data)}")
        f = _FieldReader(path, data, f"graphs[{index}].")
        file = f.file_name("file", _REQUIRED)
        device = f.choice("device", DEVICES, _REQUIRED)
        precision = f.choice("precision", PRECISIONS, _REQUIRED)
        quantization = f.mapping("quantization", {})
        method = quantization.get("method", "dynamic")
        batch_invariant = f.boolean("batch_invariant", not (precision == "int8" and method == "dynamic"))
        backend = f.choice("backend", BACKENDS, "onnxruntime")
        weights = f.file_name("weights") if data.get("weights", "") != "" else ""
        if backend == "openvino":
            if device != "cpu":
                f.fail("device", "must be cpu for an openvino graph (the OpenVINO backend runs on CPU only)")
            if not weights:
                f.fail("weights", "must name the IR's weights file (.bin) for an openvino graph")
        return cls(file, device, precision, quantization, batch_invariant, backend, weights)

    def describe(self) -> str:
        """E.g. `int8 for cpu`, or `int8 for cpu (openvino)` for a graph of another backend."""
        return f"{self.precision} for {self.device}" + (f" ({self.backend})" if self.backend != "onnxruntime" else "")


@dataclass(frozen=True)
class BundleManifest:
    """Everything the runtime needs to know about a bundle, and where it came from."""

    labels: tuple[str, ...]
    max_length: int
    graphs: tuple[GraphSpec, ...]
    files: dict[str, str]  # file name -> sha256
    tokenizer_file: str = "tokenizer.json"
    vocab_size: int = 0
    pad_token_id: int = 0
    format_version: int = FORMAT_VERSION
    model_type: str = ""
    context: str = "none"  # "document": trained with neighbouring sentences (runtime.context)
    casing: bool = False  # True: token_type_ids carry each token's casing class (runtime.casing)
    opset: int = 0
    versions: dict[str, str] = field(default_factory=dict)
    validation: dict[str, Any] = field(default_factory=dict)
    source: dict[str, Any] = field(default_factory=dict)

    def graph_for(self, device: str, precision: str | None = None, backend: str = "onnxruntime") -> GraphSpec:
        """The graph to run on `device` with `backend`; with `precision=None` the first one listed for them."""
        for graph in self.graphs:
            if (
                graph.device == device
                and graph.backend == backend
                and (precision is None or graph.precision == precision)
            ):
                return graph
        have = ", ".join(g.describe() for g in self.graphs) or "none"
        wanted = f"{precision} graph" if precision else "graph"
        if backend != "onnxruntime":
            wanted = f"{backend} {wanted}"
        raise BundleError(f"{MANIFEST_NAME} lists no {wanted} for device {device!r} (it has: {have})")

    def to_json(self) -> str:
        data = asdict(self)
        data["labels"] = list(self.labels)
        return json.dumps(data, indent=2, sort_keys=False) + "\n"

    def write(self, bundle_dir: Path) -> None:
        (Path(bundle_dir) / MANIFEST_NAME).write_text(self.to_json(), encoding="utf-8")

    @classmethod
    def read(cls, bundle_dir: Path) -> BundleManifest:
        """Read and check `bundle.json`; raise BundleError naming the file and what is wrong."""
        path = Path(bundle_dir) / MANIFEST_NAME
        if not Path(bundle_dir).is_dir():
            raise BundleError(f"{bundle_dir}: not a directory (a bundle is a directory with {MANIFEST_NAME})")
        if not path.is_file():
            raise BundleError(f"{path}: missing; {bundle_dir} is not a ner-export bundle")
        data = read_json(path, BundleError)
        if not isinstance(data, dict):
            raise BundleError(f"{path}: expected a JSON object, found {type(data).__name__}")
        version = data.get("format_version")
        if not _is_int(version) or version != FORMAT_VERSION:
            raise BundleError(
                f"{path}: format_version {version!r} is not supported by this ner-export "
                f"(it reads version {FORMAT_VERSION}); re-export the model or upgrade ner-export"
            )
        return cls._from_dict(data, path, _bundle_position_limit(Path(bundle_dir)))

    @classmethod
    def _from_dict(cls, data: dict[str, Any], path: Path, positions: int | None) -> BundleManifest:
        """The manifest `data` holds, every known field checked; unknown keys are ignored (module docstring)."""
        f = _FieldReader(path, data)
        labels = f.get("labels", _REQUIRED)
        if not isinstance(labels, list) or not labels:
            f.fail("labels", "must be a non-empty list of strings")
        for i, label in enumerate(labels):
            if not isinstance(label, str) or not label.strip():
                raise BundleError(f"{path}: 'labels[{i}]' must be a non-empty string, found {_json_excerpt(label)}")
        repeated = sorted({label for label in labels if labels.count(label) > 1})
        if repeated:
            f.fail("labels", f"must not repeat a label (repeated: {', '.join(repeated)})")
        files = f.mapping("files", _REQUIRED)
        for name, digest in files.items():
            if not _stays_inside_bundle(name):
                raise BundleError(f"{path}: 'files' lists {name!r}, which is not a file name inside the bundle")
            if not isinstance(digest, str) or not _SHA256.fullmatch(digest):
                _FieldReader(path, files, "files.").fail(name, "must be a sha256 (64 lowercase hex digits)")
        graphs = f.get("graphs", _REQUIRED)
        if not isinstance(graphs, list) or not graphs:
            f.fail("graphs", "must be a non-empty list of graph entries")
        specs = tuple(GraphSpec.from_dict(g, path, i) for i, g in enumerate(graphs))
        for i, spec in enumerate(specs):
            if spec.file not in files:
                raise BundleError(f"{path}: 'graphs[{i}].file' {spec.file!r} is not listed in 'files'")
            if spec.weights and spec.weights not in files:
                raise BundleError(f"{path}: 'graphs[{i}].weights' {spec.weights!r} is not listed in 'files'")
        tokenizer_file = f.file_name("tokenizer_file", "tokenizer.json")
        if tokenizer_file not in files:
            raise BundleError(f"{path}: 'tokenizer_file' {tokenizer_file!r} is not listed in 'files'")
        max_length = f.integer("max_length", _REQUIRED, minimum=MIN_MAX_LENGTH)
        if positions is not None and max_length > positions:
            f.fail("max_length", f"must be at most {positions}, the positions the model has (config.json)")
        vocab_size = f.integer("vocab_size", 0)
        pad_token_id = f.integer("pad_token_id", 0)
        if vocab_size and pad_token_id >= vocab_size:
            f.fail("pad_token_id", f"must be below vocab_size ({vocab_size})")
        defaults = {x.name: x.default for x in fields(cls)}
        return cls(
            labels=tuple(labels),
            max_length=max_length,
            graphs=specs,
            files=files,
            tokenizer_file=tokenizer_file,
            vocab_size=vocab_size,
            pad_token_id=pad_token_id,
            format_version=f.integer("format_version", _REQUIRED),
            model_type=f.string("model_type", defaults["model_type"]),
            context=f.choice("context", CONTEXT_MODES, defaults["context"]),
            casing=f.boolean("casing", defaults["casing"]),
            opset=f.integer("opset", defaults["opset"]),
            versions=f.mapping("versions", {}),
            validation=f.mapping("validation", {}),
            source=f.mapping("source", {}),
        )

    def verify_file(self, bundle_dir: Path, name: str) -> Path:
        """Path of a listed file after checking that it exists and matches its sha256."""
        path = Path(bundle_dir) / name
        expected = self.files.get(name)
        if expected is None:
            raise BundleError(f"{path}: not listed in {MANIFEST_NAME}'s files")
        if not path.is_file():
            raise BundleError(f"{path}: missing from the bundle")
        actual = sha256_file(path)
        if actual != expected:
            raise BundleError(
                f"{path}: sha256 {actual[:12]}… does not match {MANIFEST_NAME} ({expected[:12]}…); "
                "the file is corrupted, truncated or was replaced"
            )
        return path


def _bundle_position_limit(bundle_dir: Path) -> int | None:
    """The position limit of the bundle's model, from its `config.json` when it has one that says."""
    config_path = bundle_dir / "config.json"
    if not config_path.is_file():
        return None
    config = read_json(config_path, BundleError)
    return position_limit(config) if isinstance(config, dict) else None
