"""`ServeSettings`: every knob of `ner-export serve`, with its default, in one frozen dataclass.

One place for the defaults: the CLI's options, `create_app(bundle_dir, **settings)` and the serving
page's table all name these fields (a test checks the CLI against them). Values are checked here, once, so
a bad knob is a one-line `ValueError` naming it before anything loads. Sizes are plain numbers
(bytes, milliseconds, seconds) rather than strings with units, so they compare and validate simply.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from ner_export.runtime.checks import require_positive_int
from ner_export.runtime.decoding import STRATEGIES
from ner_export.runtime.manifest import BACKENDS

ENGINES = ("local", "ray")  # this process (uvicorn), or a Ray Serve application
LOG_LEVELS = ("critical", "error", "warning", "info", "debug")

__all__ = ["ENGINES", "LOG_LEVELS", "ServeSettings"]


@dataclass(frozen=True)
class ServeSettings:
    """How the service loads its model, batches, limits and shuts down. Defaults are the CLI's."""

    # where to listen (used by `run`; an app made by `create_app` is bound by your own ASGI server)
    host: str = "127.0.0.1"
    port: int = 8080  # 0 picks a free port; the startup log line names it
    # the model
    device: str = "cpu"
    precision: str | None = None  # None: the device's default graph (int8 on cpu)
    backend: str = "onnxruntime"  # or "openvino": the bundle's OpenVINO graph (NerModel.load's backend)
    threads: int | None = None  # onnxruntime intra-op threads per worker; None: the CPUs this process may use / workers
    workers: int = 1  # processes serving one socket, each with its own model and batcher (`run` only)
    streams: int | None = None  # batches run at once, each on threads / streams threads; None: one per thread
    aggregation: str = "first"  # when a request does not name an aggregation_strategy
    decoding: str = "constrained"
    word_split: str = "text"
    spin: bool = False  # threads spin between runs too, not only inside one (faster alone, slower under load)
    # dynamic micro-batching
    max_batch_size: int = 32  # texts in one model call
    max_batch_tokens: int = 16384  # padded tokens in one model call (the runtime's token budget)
    max_wait_ms: float = 0.0  # how long a free model waits for more texts before running a partial batch
    allow_batch_dependent: bool = False  # batch across requests even on a graph that is not batch-invariant
    # limits
    payload_limit: int = 2_000_000  # bytes of request body
    max_client_batch_size: int = 32  # texts in one request
    max_queued_texts: int = 64  # texts waiting for the model (two default batches); beyond it requests get 429
    max_queue_ms: float = 75.0  # estimated wait for the model a request may face on arrival; beyond it 429 (0: none)
    request_timeout: float = 10.0  # seconds from acceptance to answer; beyond it 504
    # shutdown
    graceful_timeout: float = 20.0  # seconds in-flight requests get to finish after SIGTERM/SIGINT
    shutdown_delay: float = 0.0  # seconds /ready stays 503 (new requests 503) before the listener closes
    # worker supervision (`run` with workers > 1): a dead or unresponsive worker is replaced, unless
    # crash_loop_deaths of them died within crash_loop_window seconds: then the service drains and exits 1
    crash_loop_deaths: int = 5
    crash_loop_window: float = 60.0
    heartbeat_timeout: float = 30.0  # seconds a ready worker may go without a heartbeat before it is replaced
    # logging
    access_log: bool = True
    log_level: str = "info"

    def __post_init__(self) -> None:
        for name in (
            "max_batch_size",
            "max_batch_tokens",
            "payload_limit",
            "max_client_batch_size",
            "max_queued_texts",
            "workers",
            "crash_loop_deaths",
        ):
            require_positive_int(name, getattr(self, name))
        for name in ("max_wait_ms", "max_queue_ms", "graceful_timeout", "shutdown_delay"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                raise ValueError(f"{name}={value!r} must be a number >= 0")
        for name in ("request_timeout", "crash_loop_window", "heartbeat_timeout"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{name}={value!r} must be a number > 0")
        if not isinstance(self.port, int) or not 0 <= self.port <= 65535:
            raise ValueError(f"port={self.port!r} must be an integer between 0 and 65535")
        for name in ("threads", "streams"):
            require_positive_int(name, getattr(self, name), optional=True)
        if self.backend not in BACKENDS:
            raise ValueError(f"backend={self.backend!r} is not one of {', '.join(BACKENDS)}")
        if self.aggregation not in STRATEGIES:
            raise ValueError(f"aggregation={self.aggregation!r} is not one of {', '.join(STRATEGIES)}")
        if self.max_client_batch_size > self.max_queued_texts:
            raise ValueError(
                f"max_client_batch_size={self.max_client_batch_size} exceeds max_queued_texts={self.max_queued_texts}: "
                "such a request could never be queued"
            )
        if self.log_level not in LOG_LEVELS:
            raise ValueError(f"log_level={self.log_level!r} is not one of {', '.join(LOG_LEVELS)}")

    @classmethod
    def from_kwargs(cls, settings: ServeSettings | None = None, **overrides: Any) -> ServeSettings:
        """`settings` (or the defaults) with `overrides` applied; an unknown name is a TypeError naming it."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise TypeError(f"unknown serve setting(s): {', '.join(unknown)} (known: {', '.join(sorted(known))})")
        base = asdict(settings) if settings is not None else {}
        return cls(**{**base, **overrides})

    def refusal(self, queued: int, incoming: int, wait_s: float) -> str | None:
        """Why a request of `incoming` texts is refused when `queued` texts wait, `wait_s` seconds of work
        by the caller's estimate: "queue_full" (`max_queued_texts`), "queue_wait" (`max_queue_ms`; an
        empty queue and one batch's worth are always taken), or None when it is accepted."""
        if queued + incoming > self.max_queued_texts:
            return "queue_full"
        if queued and queued + incoming > self.max_batch_size and 0 < self.max_queue_ms < wait_s * 1000:
            return "queue_wait"
        return None

    def model_options(self, threads: int | None = None) -> dict[str, Any]:
        """`NerModel.load` keyword arguments for these settings (`threads` overrides the setting's)."""
        return {
            "device": self.device,
            "threads": self.threads if threads is None else threads,
            "streams": self.streams,  # None: the runtime's choice, one per thread on cpu
            "precision": self.precision,
            "backend": self.backend,
            "aggregation": self.aggregation,
            "word_split": self.word_split,
            "decoding": self.decoding,
            "token_budget": self.max_batch_tokens,
            # the event loop shares the CPUs: onnxruntime's threads spin inside a run, where that saves their
            # wake-ups between its parallel steps, and stop when it returns, leaving the CPUs to the loop
            # (PERFORMANCE.md, serving)
            "session_config": None
            if self.spin or self.backend != "onnxruntime"
            else {"session.force_spinning_stop": "1"},
            # one CPU arena for the worker's sessions, grown by what is asked: its RSS stops growing once its
            # largest batch has run, which the warm-up runs on every session (PERFORMANCE.md, serving)
            "shared_arena": self.backend == "onnxruntime",
        }

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
