"""The one place that builds onnxruntime sessions, bundle tokenizers and padded model inputs.

`NerModel`, the benchmarks and the training code all feed the same graphs, so they share these
pieces instead of each setting session options, loading a tokenizer or padding a batch its own way
(a difference there is a difference in what is measured). Design choices:

- Session defaults are those of a latency-bound service: intra-op threads = the CPUs this process
  may use, one inter-op thread, sequential execution, every graph optimization, warnings off.
  Callers change any `SessionOptions` attribute through `options` and add session config entries
  (`session.intra_op.allow_spinning`, ...) through `config_entries`, rather than building their own.
- onnxruntime's and tokenizers' untyped errors become `BundleError`s naming the file, so a bad
  bundle is a one-line user error; the original is chained as the cause.
- A process that keeps a model for long (a server) can give all of the model's sessions one CPU arena
  (`shared_cpu_arena`): each session otherwise grows its own arena to its own peak, in powers of two,
  so RSS keeps stepping up whenever a rarer batch shape first lands on a session.
- Padding writes ids, attention mask and token types into preallocated int64 arrays, with optional
  special tokens around each row, because this runs for every batch a service answers.
"""

from __future__ import annotations

import ctypes
import functools
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from tokenizers import Tokenizer

from .errors import BundleError, DeviceError, MissingDependencyError
from .machine import available_cpus
from .manifest import BundleManifest

__all__ = [
    "Row",
    "batch_inputs",
    "check_graph",
    "create_session",
    "cuda_problem",
    "first_line",
    "import_onnxruntime",
    "load_tokenizer",
    "one_row_inputs",
    "pad_rows",
    "session_options",
    "shared_cpu_arena",
]


Row = Sequence[int] | np.ndarray
"""One row of token ids (or token types): a list or a 1-D integer array."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (at most 300 characters), or its type's name."""
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


def import_onnxruntime() -> Any:
    """The onnxruntime module, or MissingDependencyError naming the extra that installs it."""
    try:
        import onnxruntime
    except ImportError as exc:
        raise MissingDependencyError("onnxruntime", "cpu", "The ner-export runtime") from exc
    return onnxruntime


def session_options(
    threads: int | None = None,
    options: Mapping[str, Any] | None = None,
    config_entries: Mapping[str, str] | None = None,
) -> Any:
    """`onnxruntime.SessionOptions` with the runtime's defaults (module docstring).

    threads: intra-op threads (default: the CPUs this process may use).
    options: `SessionOptions` attributes to set, e.g. `{"enable_cpu_mem_arena": False}`; an enum
        attribute also takes its member's name (`{"graph_optimization_level": "ORT_DISABLE_ALL"}`).
    config_entries: session configuration entries (`add_session_config_entry`).
    """
    ort = import_onnxruntime()
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads or available_cpus()
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    for name, value in (options or {}).items():
        if not hasattr(opts, name):
            raise ValueError(f"onnxruntime.SessionOptions has no attribute {name!r}")
        current = getattr(opts, name)
        if isinstance(value, str) and not isinstance(current, str):
            value = getattr(type(current), value)  # an enum member by name
        setattr(opts, name, value)
    for key, entry in (config_entries or {}).items():
        opts.add_session_config_entry(key, entry)
    return opts


@functools.cache
def shared_cpu_arena() -> dict[str, str]:
    """Register one CPU arena on onnxruntime's process-wide environment and return the session config
    entries that make a session allocate from it.

    The arena grows by what a run asks for, not by the next power of two, and every session given the
    entries shares it: a model's main session and its streams' session, which a server runs by turns,
    then reach one working set between them instead of two. Registered once per process (cached).
    """
    ort = import_onnxruntime()
    memory = ort.OrtMemoryInfo("Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT)
    ort.create_and_register_allocator(memory, ort.OrtArenaCfg({"arena_extend_strategy": 1}))  # kSameAsRequested
    return {"session.use_env_allocators": "1"}


def create_session(
    graph: str | Path,
    *,
    device: str = "cpu",
    threads: int | None = None,
    options: Mapping[str, Any] | None = None,
    config_entries: Mapping[str, str] | None = None,
) -> Any:
    """An `InferenceSession` for `graph` on `device` ("cpu" or "cuda"; CUDA never falls back to CPU).

    Raises DeviceError when CUDA is asked for and unavailable, BundleError when onnxruntime cannot
    load the graph. `threads`, `options` and `config_entries` go to `session_options`.
    """
    ort = import_onnxruntime()
    if device == "cuda":
        problem = cuda_problem(ort)
        if problem is not None:
            raise DeviceError(f"device='cuda': {problem}; or use device='cpu'")
    providers = ["CUDAExecutionProvider"] if device == "cuda" else ["CPUExecutionProvider"]
    opts = session_options(threads, options, config_entries)
    try:
        session = ort.InferenceSession(str(graph), sess_options=opts, providers=providers)
    except Exception as exc:  # onnxruntime raises its own untyped errors for bad graphs
        raise BundleError(f"{graph}: onnxruntime cannot load this graph ({first_line(exc)})") from exc
    if device == "cuda" and session.get_providers()[0] != "CUDAExecutionProvider":
        raise DeviceError(
            f"device='cuda': onnxruntime-gpu could not start CUDA for {Path(graph).name} (it ran on "
            f"{', '.join(session.get_providers())}): a CUDA or cuDNN library it needs is missing or does not "
            "match; onnxruntime's log above names it, and pip install 'onnxruntime-gpu[cuda,cudnn]' brings them"
        )
    return session


def cuda_problem(ort: Any) -> str | None:
    """Why CUDA cannot run here (no CUDA build of onnxruntime, no NVIDIA driver), or None when it may.

    The driver is looked for before a session is made: onnxruntime-gpu without one logs a long error and
    falls back to the CPU, which would hide the cause behind a generic message.
    """
    available = ort.get_available_providers()
    if "CUDAExecutionProvider" not in available:
        return (
            f"this onnxruntime has no CUDA provider (it has {', '.join(available)}): "
            "install ner-export[gpu] (onnxruntime-gpu) in place of ner-export[cpu]"
        )
    driver = "nvcuda.dll" if sys.platform.startswith("win") else "libcuda.so.1"
    try:
        ctypes.CDLL(driver)
    except OSError:
        return f"onnxruntime-gpu is installed but no NVIDIA driver was found ({driver} cannot be loaded)"
    return None


def check_graph(session: Any, manifest: BundleManifest, graph_path: Path) -> None:
    """BundleError unless the session has the inputs and the output width the manifest implies."""
    names = {i.name for i in session.get_inputs()}
    missing = {"input_ids", "attention_mask"} - names
    if manifest.casing:
        missing |= {"token_type_ids"} - names
    if missing:
        raise BundleError(f"{graph_path}: graph lacks the inputs {sorted(missing)} (it has {sorted(names)})")
    width = session.get_outputs()[0].shape[-1]
    if isinstance(width, int) and width != len(manifest.labels):
        raise BundleError(f"{graph_path}: graph outputs {width} labels but the manifest lists {len(manifest.labels)}")


def load_tokenizer(path: str | Path, vocab_size: int = 0) -> Tokenizer:
    """A bundle's `tokenizer.json`, without truncation or padding (the runtime windows and pads itself).

    A `vocab_size` (the manifest's) that differs from the tokenizer's means it belongs to another model.
    """
    try:
        tokenizer = Tokenizer.from_file(str(path))
    except Exception as exc:  # tokenizers raises a bare Exception for malformed files
        raise BundleError(f"{path}: not a valid tokenizers file ({first_line(exc)})") from exc
    tokenizer.no_truncation()
    tokenizer.no_padding()
    if vocab_size and tokenizer.get_vocab_size() != vocab_size:
        raise BundleError(
            f"{path}: vocabulary of {tokenizer.get_vocab_size()} tokens does not match the manifest's "
            f"{vocab_size}; the tokenizer belongs to another model"
        )
    return tokenizer


def pad_rows(rows: Sequence[Row], fill: int, width: int | None = None) -> np.ndarray:
    """Rows of integers as one int64 matrix, each padded on the right with `fill` to `width`
    (default: the longest row)."""
    width = max((len(row) for row in rows), default=0) if width is None else width
    out = np.full((len(rows), width), fill, dtype=np.int64)
    for j, row in enumerate(rows):
        out[j, : len(row)] = row
    return out


def batch_inputs(
    rows: Sequence[Row],
    *,
    pad_id: int = 0,
    width: int | None = None,
    prefix: Sequence[int] = (),
    suffix: Sequence[int] = (),
    types: Sequence[Row] | None = None,
    token_types: bool = True,
) -> dict[str, np.ndarray]:
    """The padded feeds (`input_ids`, `attention_mask` and, with `token_types`, `token_type_ids`)
    of a batch of token id rows.

    Each row becomes `prefix + row + suffix` (the special tokens), padded with `pad_id` on the right
    to `width` (default: the longest). `types` are the rows' token types (casing classes), placed
    under their tokens; special tokens and padding get type 0.
    """
    head, tail = len(prefix), len(suffix)
    needed = head + max((len(row) for row in rows), default=0) + tail
    width = needed if width is None else width
    if width < needed:
        raise ValueError(f"width={width} is shorter than the longest row with its special tokens ({needed})")
    if len(rows) == 1 and width == needed:
        return one_row_inputs(rows[0], prefix, suffix, types[0] if types else None, token_types)
    input_ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    attention = np.zeros((len(rows), width), dtype=np.int64)
    for j, row in enumerate(rows):
        end = head + len(row)
        input_ids[j, :head] = prefix
        input_ids[j, head:end] = row
        input_ids[j, end : end + tail] = suffix
        attention[j, : end + tail] = 1
    feeds = {"input_ids": input_ids, "attention_mask": attention}
    if token_types:
        type_ids = np.zeros_like(input_ids)
        for j, row in enumerate(types or ()):
            type_ids[j, head : head + len(row)] = row
        feeds["token_type_ids"] = type_ids
    return feeds


def one_row_inputs(
    row: Row, prefix: Sequence[int] = (), suffix: Sequence[int] = (), types: Row | None = None, token_types: bool = True
) -> dict[str, np.ndarray]:
    """`batch_inputs` of a single row, unpadded: the feeds of one text.

    Built from Python lists in one array call, the feeds being its rows: a lone text is where the
    runtime's own work shows next to the graph's, and right after a graph run each numpy call costs
    several times its tight-loop time (the padded build makes a dozen).
    """
    head, tail = list(prefix), list(suffix)
    body = row.tolist() if isinstance(row, np.ndarray) else list(row)
    ids = head + body + tail
    if not token_types:
        stacked = np.array([ids, [1] * len(ids)], dtype=np.int64)
        return {"input_ids": stacked[0:1], "attention_mask": stacked[1:2]}
    classes = [] if types is None else types.tolist() if isinstance(types, np.ndarray) else list(types)
    type_ids = [0] * len(head) + classes + [0] * (len(body) - len(classes) + len(tail))
    stacked = np.array([ids, [1] * len(ids), type_ids], dtype=np.int64)
    return {"input_ids": stacked[0:1], "attention_mask": stacked[1:2], "token_type_ids": stacked[2:3]}
