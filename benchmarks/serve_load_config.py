"""What one serve load run is asked to do (`LoadConfig`), its fixed targets, and the sentences it sends.

The config is a frozen dataclass whose defaults are the command line's, so a run's JSON records every
knob (`asdict(config)`) and a smoke run is the same config with tiny rates. Sentences are the CoNLL
file's, read by the runtime's reader (no torch), one request each.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

from ner_export.runtime.conll import read_conll
from ner_export.runtime.errors import TagRepairWarning

__all__ = ["LoadConfig", "read_sentences", "HOST", "DEFAULT_DATA", "MAX_IDLE_S", "FRACTIONS", "TARGETS"]

HOST = "127.0.0.1"
DEFAULT_DATA = Path("..") / "shared" / "data" / "conll2003" / "test.txt"
MAX_IDLE_S = 4.0  # the load generator reuses a keep-alive connection idle at most this long
FRACTIONS = (0.1, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5)
TARGETS = {
    "p99_limit_ms": 50.0,  # (a)'s highest offered rate with p99 <= this ...
    "vs_offline": 0.6,  # ... is at least this times (c) ...
    "vs_batch1": 1.5,  # ... and at least this times (b)'s
    "p50_at_10pct_ms": 5.0,  # p50 at 10% of that rate
    "overload_factor": 2.0,  # at this times saturation:
    "overload_p99_ms": 250.0,  # accepted requests' p99
    "fast_429_p99_ms": 50.0,  # what "429 fast" is taken to mean
    "rss_growth": 0.10,  # RSS "flat": grows by at most this fraction over the overload step
}


@dataclass(frozen=True)
class LoadConfig:
    """One serve load run: the bundle and data, the servers' settings, the sweep and where results go."""

    bundle: str
    data: str | None = None  # CoNLL file; None: ../shared/data/conll2003/test.txt if present
    out: str = "bench-results"
    name: str = "serve-cpu"
    precision: str | None = None
    threads: int | None = None  # the server's and the offline model's intra-op threads
    workers: int = 1  # server processes for (a) and (b), each with threads / workers threads
    streams: int | None = None  # `ner-export serve --streams` for (a) and (b); None: the server's default
    allow_batch_dependent: bool = False
    max_wait_ms: float = 0.0
    max_queued_texts: int | None = None  # None: the server's default
    max_queue_ms: float | None = None  # None: the server's default
    rates: tuple[float, ...] | None = None  # offered requests/s; None: FRACTIONS of (c)
    step_seconds: float = 10.0
    max_requests_per_step: int = 20000
    refine: int = 2  # bisection steps between the last rate meeting the p99 limit and the first missing it
    offline_seconds: float = 10.0
    sentences: int | None = None
    connections: int = 256  # above the server's default --max-queued-texts (64), so overload reaches its queue limits
    seed: int = 0
    progress: bool = True
    command: str = ""
    smoke: bool = False  # a plumbing check on tiny rates: its numbers measure nothing
    operations: bool = False  # also (o): CPU beyond the model, a killed worker, the soak, schema fuzzing
    ray: bool = False  # also (r): the same settings on Ray Serve (`ner-export serve --engine ray`, needs the ray extra)


def read_sentences(path: Path) -> list[str]:
    """Sentences of a CoNLL file as text (words joined by spaces); only the words are sent, so a repaired
    tag is no news here and its warning is not shown."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TagRepairWarning)
        return [" ".join(sentence.words) for sentence in read_conll(path)]
