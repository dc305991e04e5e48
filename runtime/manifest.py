"""The bundle manifest (`bundle.json`): what a bundle holds and how to run it.

One frozen dataclass, written by the exporter and read by the runtime, so both sides agree on one
schema. The manifest lists every file with its sha256: a bundle is a file tree that people copy
around, and a truncated or swapped file must fail loudly at load, not predict garbage. JSON (never
pickle) keeps loading free of code execution.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .errors import BundleError
from .files import read_json

__all__ = [
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
    "sha256_file",
]

FORMAT_VERSION = 1
MANIFEST_NAME = "bundle.json"
DEVICES = ("cpu", "cuda")
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


@dataclass(frozen=True)
class GraphSpec:
    """One ONNX graph of the bundle and what it is for."""

    file: str
    device: str  # one of DEVICES
    precision: str  # one of PRECISIONS
    quantization: dict[str, Any] = field(default_factory=dict)
    # False when a text's result can depend on the other texts in its batch (dynamic int8 activation scales)
    batch_invariant: bool = True

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GraphSpec:
        """A graph entry of bundle.json; entries written before `batch_invariant` existed infer it."""
        data = dict(data)
        if "batch_invariant" not in data:
            quantization = data.get("quantization") or {}
            dynamic = data.get("precision") == "int8" and quantization.get("method", "dynamic") == "dynamic"
            data["batch_invariant"] = not dynamic
        return cls(**data)


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

    def graph_for(self, device: str, precision: str | None = None) -> GraphSpec:
        """The graph to run on `device`; with `precision=None` the first one listed for it."""
        for graph in self.graphs:
            if graph.device == device and (precision is None or graph.precision == precision):
                return graph
        have = ", ".join(f"{g.precision} for {g.device}" for g in self.graphs) or "none"
        wanted = f"{precision} graph" if precision else "graph"
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
        if version != FORMAT_VERSION:
            raise BundleError(
                f"{path}: format_version {version!r} is not supported by this ner-export "
                f"(it reads version {FORMAT_VERSION}); re-export the model or upgrade ner-export"
            )
        try:
            graphs = tuple(GraphSpec.from_dict(g) for g in data.pop("graphs"))
            labels = tuple(data.pop("labels"))
            manifest = cls(labels=labels, graphs=graphs, **data)
        except (KeyError, TypeError) as exc:
            raise BundleError(f"{path}: malformed manifest ({exc})") from None
        if not manifest.labels or not all(isinstance(label, str) for label in manifest.labels):
            raise BundleError(f"{path}: 'labels' must be a non-empty list of strings")
        if not isinstance(manifest.max_length, int) or manifest.max_length < 8:
            raise BundleError(f"{path}: 'max_length' must be an integer >= 8, found {manifest.max_length!r}")
        return manifest

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
