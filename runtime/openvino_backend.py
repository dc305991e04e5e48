"""The optional OpenVINO backend: a bundle's OpenVINO IR behind the few calls `NerModel` makes of an
onnxruntime session.

Design: `NerModel` only ever asks a session for its inputs and outputs (`get_inputs`, `get_outputs`,
each with `.name` and `.shape`) and for `run(output_names, feeds)`, so an adapter with those calls
around an OpenVINO compiled model lets every line of tokenizing, windowing, batching and decoding stay
the same: only the logits come from another engine. OpenVINO's `InferRequest` runs one inference at
a time, so the adapter gives each calling thread its own request (thread-local), which keeps a model
shareable by many threads as with onnxruntime. The plain path compiles with the LATENCY hint on all
`threads`; the streams path compiles a second model with `NUM_STREAMS` streams sharing those threads,
so the stream pool's concurrent runs each get a stream of their own. The IR's inference precision is
pinned to the one the export measured (`quantization["inference_precision"]`), since the CPU plugin
would otherwise pick bf16 on CPUs that have it and the shipped F1 would be another graph's. openvino
is imported only here, on first use: an onnxruntime-only install never loads it.
"""

from __future__ import annotations

import functools
import importlib
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import BundleError, MissingDependencyError
from .machine import available_cpus
from .session import first_line

__all__ = [
    "DEFAULT_INFERENCE_PRECISION",
    "OpenVinoSession",
    "computes_bf16",
    "create_openvino_session",
    "import_openvino",
    "inference_precision",
]

DEFAULT_INFERENCE_PRECISION = "f32"
"""What an IR is compiled to compute its non-int8 parts in when its manifest entry does not say."""


def import_openvino() -> Any:
    """The openvino module, or MissingDependencyError naming the extra that installs it."""
    try:
        return importlib.import_module("openvino")
    except ImportError as exc:
        raise MissingDependencyError("openvino", "openvino", "The OpenVINO backend (backend='openvino')") from exc


@dataclass(frozen=True)
class _PortSpec:
    """An input or output as onnxruntime describes it: a name and a shape (None for a dynamic axis)."""

    name: str
    shape: list[int | None]


def _port_spec(port: Any, preferred: str = "") -> _PortSpec:
    names = port.get_names()
    name = preferred if preferred in names else port.get_any_name()
    shape = [dim.get_length() if dim.is_static else None for dim in port.get_partial_shape()]
    return _PortSpec(name, shape)


class OpenVinoSession:
    """An OpenVINO compiled model with the part of onnxruntime's `InferenceSession` API `NerModel` uses.

    Thread-safe: each thread that calls `run` gets its own infer request, made on its first call. One
    inference runs at construction, on the constructing thread: openvino's Python binding initializes
    shared state on its first `infer`, and two threads making that first call at once could deadlock
    (seen with two streams on a model's first large `predict`: 2 of 5 fresh processes hung).
    """

    def __init__(self, compiled: Any) -> None:
        self.compiled = compiled
        self._inputs = [_port_spec(p) for p in compiled.inputs]
        self._outputs = [_port_spec(p, "logits") for p in compiled.outputs]
        self._index = {name: i for i, port in enumerate(compiled.outputs) for name in port.get_names()}
        self._local = threading.local()
        self._lock = threading.Lock()
        first = {
            port.name: np.ones([1 if n is None else n for n in port.shape], dtype=source.get_element_type().to_dtype())
            for port, source in zip(self._inputs, compiled.inputs, strict=True)
        }
        self.run(None, first)

    def get_inputs(self) -> list[_PortSpec]:
        return list(self._inputs)

    def get_outputs(self) -> list[_PortSpec]:
        return list(self._outputs)

    def _thread_infer_request(self) -> Any:
        request = getattr(self._local, "request", None)
        if request is None:
            with self._lock:
                request = self.compiled.create_infer_request()
            self._local.request = request
        return request

    def run(self, output_names: Sequence[str] | None, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """The outputs named (all when None) for `feeds`, as new numpy arrays, like `InferenceSession.run`."""
        unknown = sorted(set(feeds) - {p.name for p in self._inputs})
        if unknown:
            raise ValueError(f"the graph has no input(s) {unknown} (it has {[p.name for p in self._inputs]})")
        results = self._thread_infer_request().infer(dict(feeds), share_inputs=True, share_outputs=False)
        indexes = range(len(self._outputs)) if output_names is None else [self._index[n] for n in output_names]
        return [np.asarray(results[i]) for i in indexes]


def inference_precision(recorded: str | None, core: Any) -> str:
    """The inference precision to compile an IR with: the one its export measured (`recorded`), unless the
    CPU cannot compute it (bf16 without bf16 instructions), then f32, the more precise."""
    wanted = recorded or DEFAULT_INFERENCE_PRECISION
    if wanted == "bf16" and "BF16" not in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
        return "f32"
    return wanted


def computes_bf16() -> bool:
    """Whether this CPU has bf16 instructions, so an IR recorded as bf16 runs in bf16 here."""
    return inference_precision("bf16", _openvino_core()) == "bf16"


@functools.cache
def _openvino_core() -> Any:
    """One OpenVINO Core per process: it holds the plugins and their caches, which models can share."""
    return import_openvino().Core()


def create_openvino_session(
    xml: str | Path,
    weights: str | Path,
    *,
    threads: int | None = None,
    streams: int | None = None,
    precision: str | None = None,
) -> OpenVinoSession:
    """The IR `xml` (weights in `weights`) compiled for the CPU, wrapped as an `OpenVinoSession`.

    threads: inference threads in all (default: the CPUs this process may use).
    streams: None for the latency path (one stream, LATENCY hint); a count for the throughput path
        (that many streams share `threads`, THROUGHPUT hint), for concurrent runs.
    precision: the recorded inference precision (`inference_precision`).
    Raises MissingDependencyError without openvino, BundleError when OpenVINO cannot read or compile it.
    """
    core = _openvino_core()
    config: dict[str, Any] = {
        "INFERENCE_NUM_THREADS": threads or available_cpus(),
        "INFERENCE_PRECISION_HINT": inference_precision(precision, core),
    }
    if streams is None:
        config["PERFORMANCE_HINT"] = "LATENCY"
    else:
        config.update({"PERFORMANCE_HINT": "THROUGHPUT", "NUM_STREAMS": streams})
    try:
        model = core.read_model(str(xml), str(weights))
        return OpenVinoSession(core.compile_model(model, "CPU", config))
    except Exception as exc:  # OpenVINO raises untyped RuntimeErrors for bad IRs
        raise BundleError(f"{xml}: OpenVINO cannot load this graph ({first_line(exc)})") from exc
