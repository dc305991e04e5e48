"""Timing: single-call latencies taken in turns, their percentiles, and batch throughput.

On a shared machine, timing one system after another lets drift (another job, thermal state) favour
whichever ran in the quiet part, and timing them call by call in alternation bills each system for
the previous one's idle spinning threads. `block_latencies` takes the middle way: the systems take
turns on blocks of items, in an order that rotates from block to block, and each block starts with
untimed calls that last until the previous system's pool threads have stopped spinning. Throughput is
measured on whole batched passes, best of several rounds.

How long that takes was measured, not guessed: right after a block of another onnxruntime session's
calls, a session's lone calls ran 2-3x slower for about 50 ms (about ten calls: the other pool's
threads spin on the second of two CPUs after their last run), and Intel's OpenMP, which some peers use,
spins for 200 ms by default. Three untimed calls (about 10 ms) billed most of that to whichever system
came next; in the bench's fixed rotation the runtime follows another onnxruntime stack and its own
bare session does not, which inflated the runtime's p50 against the session's
(benchmarks/PERFORMANCE.md). So each block now warms up for at least `WARMUP_S`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

__all__ = ["block_latencies", "measure_speed", "percentiles"]

_UNTIMED_CALLS = 3  # calls at the start of each block that warm a system up again after another one ran
WARMUP_S = 0.25  # ... and for at least this long, so the previous system's threads have stopped spinning


def block_latencies(
    runners: dict[str, Callable[[int], Any]],
    n: int,
    block: int = 50,
    rounds: int = 1,
    progress: bool = False,
    warmup_s: float = WARMUP_S,
    resets: Mapping[str, Callable[[], Any]] | None = None,
) -> dict[str, list[float]]:
    """Seconds per call of each runner on items 0..n-1, the runners taking turns on blocks of items.

    The order of runners rotates from block to block, and each block starts with untimed calls (at
    least three, on the block's first items, for at least `warmup_s`), so another stack's idle
    spinning threads are not billed to this one and drift hits all alike. `resets[name]`, if given, runs
    after the warm-up, before the timed calls: a runner that keeps state across calls (a token cache)
    is put back to where it was, so the warm-up's calls on the block's items do not serve the timed ones.
    """
    from tqdm.auto import tqdm

    names = list(runners)
    seconds: dict[str, list[float]] = {name: [] for name in names}
    for _ in range(rounds):
        for turn, lo in enumerate(tqdm(range(0, n, block), desc="latency", disable=not progress)):
            k = turn % len(names)
            for name in names[k:] + names[:k]:
                run = runners[name]
                warm_until = time.perf_counter() + warmup_s
                calls = 0
                while calls < _UNTIMED_CALLS or time.perf_counter() < warm_until:
                    run(lo + calls % min(block, n - lo))
                    calls += 1
                if resets and name in resets:
                    resets[name]()
                for i in range(lo, min(lo + block, n)):
                    started = time.perf_counter()
                    run(i)
                    seconds[name].append(time.perf_counter() - started)
    return seconds


def percentiles(seconds: Sequence[float]) -> dict[str, float]:
    """p50, p95 and p99 of call times, in milliseconds."""
    ms = np.asarray(seconds) * 1000
    return {
        "p50": float(np.percentile(ms, 50)),
        "p95": float(np.percentile(ms, 95)),
        "p99": float(np.percentile(ms, 99)),
    }


def measure_speed(
    models: dict[str, Any], texts: list[str], rounds: int, latency_sentences: int
) -> dict[str, dict[str, list[float]]]:
    """Per model: sentences/s of `predict` at batch 32 for each round ("sps") and single-text seconds ("lat").

    Rounds alternate the models; single-text latency is block-interleaved (`block_latencies`).
    """
    speed: dict[str, dict[str, list[float]]] = {name: {"sps": [], "lat": []} for name in models}
    n = min(latency_sentences, len(texts))
    for _ in range(rounds):
        for name, model in models.items():
            started = time.perf_counter()
            model.predict(texts, batch_size=32)
            speed[name]["sps"].append(len(texts) / (time.perf_counter() - started))
        runners = {name: (lambda i, model=model: model(texts[i])) for name, model in models.items()}
        for name, seconds in block_latencies(runners, n).items():
            speed[name]["lat"] += seconds
    return speed
