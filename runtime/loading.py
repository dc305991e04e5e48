"""Opening a bundle for `NerModel`: options checked, files verified, the tokenizer and the sessions built.

`open_bundle` does what `NerModel.load` does before it calls the constructor: it checks the load
options, reads the manifest, verifies each file it uses against its sha256, loads the tokenizer and
builds the engine's session (onnxruntime, or the OpenVINO adapter of `openvino_backend`) plus a
function that builds the streams' session on first use. `check_model_options` is the constructor's
own check of its options.

Design: this module returns the parts (`OpenedBundle`), not a model, so it never imports `model`
and the constructor stays usable on its own with any session-like object. Every option is checked
before a file is read or hashed, so a wrong argument costs nothing and is reported first; a missing
OpenVINO extra is named before the graph files are hashed.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tokenizers import Tokenizer

from .checks import require_positive_int
from .decoding import STRATEGIES, WORD_SPLITS
from .graph_runner import auto_streams
from .machine import available_cpus
from .manifest import BACKENDS, DEVICES, BundleManifest, GraphSpec
from .session import check_graph, create_session, load_tokenizer, shared_cpu_arena

__all__ = ["OpenedBundle", "check_load_options", "check_model_options", "open_bundle"]


@dataclass(frozen=True)
class OpenedBundle:
    """What a `NerModel` is built from: the main session, the tokenizer, the manifest, the precision of
    the graph picked, the number of streams and the function that builds the streams' session."""

    session: Any
    tokenizer: Tokenizer
    manifest: BundleManifest
    precision: str
    streams: int
    stream_session: Callable[[], Any]


def check_load_options(
    device: str,
    threads: int | None,
    streams: int | None,
    backend: str,
    session_config: Mapping[str, str] | None,
    shared_arena: bool = False,
) -> None:
    """Refuse `NerModel.load` options that cannot work, before any file is read."""
    if device not in DEVICES:
        raise ValueError(f"device={device!r} is not one of {', '.join(DEVICES)}")
    require_positive_int("threads", threads, optional=True)
    require_positive_int("streams", streams, optional=True)
    if backend not in BACKENDS:
        raise ValueError(f"backend={backend!r} is not one of {', '.join(BACKENDS)}")
    if backend == "openvino" and device != "cpu":
        raise ValueError(f"backend='openvino' runs on cpu only, not device={device!r}")
    if backend == "openvino" and session_config:
        raise ValueError("session_config holds onnxruntime session entries; the openvino backend takes none")
    if backend == "openvino" and shared_arena:
        raise ValueError("shared_arena is onnxruntime's CPU arena; the openvino backend has none")


def check_model_options(
    *,
    backend: str,
    io_binding: bool,
    streams: int,
    stream_session: Callable[[], Any] | None,
    pad_multiple: int,
    aggregation: str,
    token_budget: int,
    word_split: str,
) -> None:
    """Refuse `NerModel(...)` options that cannot work."""
    if backend not in BACKENDS:
        raise ValueError(f"backend={backend!r} is not one of {', '.join(BACKENDS)}")
    if backend == "openvino" and io_binding:
        raise ValueError("io_binding is onnxruntime's; the openvino backend has none")
    require_positive_int("streams", streams)
    if streams > 1 and stream_session is None:
        raise ValueError("streams > 1 needs stream_session, a function that builds the streams' session")
    require_positive_int("pad_multiple", pad_multiple)
    if aggregation not in STRATEGIES:
        raise ValueError(f"aggregation={aggregation!r} is not one of {', '.join(STRATEGIES)}")
    require_positive_int("token_budget", token_budget)
    if word_split not in WORD_SPLITS:
        raise ValueError(f"word_split={word_split!r} is not one of {', '.join(WORD_SPLITS)}")


def open_bundle(
    bundle_dir: str | os.PathLike[str],
    device: str,
    threads: int | None,
    *,
    precision: str | None,
    streams: int | None,
    session_config: Mapping[str, str] | None,
    backend: str,
    verify: bool,
    shared_arena: bool = False,
) -> OpenedBundle:
    """The parts of a `NerModel` for the bundle in `bundle_dir` (`NerModel.load` documents the options)."""
    check_load_options(device, threads, streams, backend, session_config, shared_arena)
    bundle = Path(bundle_dir)
    manifest = BundleManifest.read(bundle)
    graph = manifest.graph_for(device, precision, backend)
    check = manifest.verify_file if verify else (lambda d, name: Path(d) / name)
    graph_path = check(bundle, graph.file)
    tokenizer = load_tokenizer(check(bundle, manifest.tokenizer_file), manifest.vocab_size)
    cpus = threads or available_cpus()
    count = auto_streams(cpus, device) if streams is None else streams
    if backend == "openvino":
        session, make_stream_session = _openvino_sessions(bundle, graph, graph_path, check, threads, cpus, count)
    else:
        if shared_arena:
            session_config = {**(session_config or {}), **shared_cpu_arena()}
        session = create_session(graph_path, device=device, threads=threads, config_entries=session_config)
        per_stream = max(1, cpus // count)

        def make_stream_session() -> Any:
            return create_session(graph_path, device=device, threads=per_stream, config_entries=session_config)

    check_graph(session, manifest, graph_path)
    return OpenedBundle(session, tokenizer, manifest, graph.precision, count, make_stream_session)


def _openvino_sessions(
    bundle: Path,
    graph: GraphSpec,
    graph_path: Path,
    check: Callable[[Path, str], Path],
    threads: int | None,
    cpus: int,
    count: int,
) -> tuple[Any, Callable[[], Any]]:
    """The OpenVINO session of `graph` and a function that builds the streams' one."""
    from .openvino_backend import create_openvino_session, import_openvino

    import_openvino()  # a missing extra is named before the graph files are hashed
    weights = check(bundle, graph.weights)
    recorded = graph.quantization.get("inference_precision")
    session = create_openvino_session(graph_path, weights, threads=threads, precision=recorded)

    def make_stream_session() -> Any:
        return create_openvino_session(graph_path, weights, threads=cpus, streams=count, precision=recorded)

    return session, make_stream_session
