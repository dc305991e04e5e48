"""The in-process measurements a serve load run compares its servers against: (c) and (e).

(c) is the ceiling: the offline `model.predict(batch_size=32)` throughput of the same bundle on the same
threads, best of several rounds. (e) is what batching can buy on this machine at all: the model's
sentences/s by texts per call, run the way the server runs batches under load. Both load the model in
this process, before any server starts, so they do not compete with one for the CPUs.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Callable
from typing import Any

from ner_export.runtime import NerModel, available_cpus

from .serve_load_config import LoadConfig

__all__ = ["ECONOMY_SIZES", "offline_throughput", "batching_economy"]

ECONOMY_SIZES = (1, 4, 16)  # texts per call in (e); plus "sorted": one call over a stream's whole share

Say = Callable[[str], None]


def offline_throughput(config: LoadConfig, texts: list[str], say: Say) -> dict[str, Any]:
    """(c) The best sentences/s of offline `predict(texts, batch_size=32)`, within `offline_seconds`."""
    model = NerModel.load(config.bundle, threads=config.threads or available_cpus(), precision=config.precision)
    model.predict(texts[:64], batch_size=32)
    best, rounds, started = math.inf, 0, time.perf_counter()
    while rounds < 1 or (time.perf_counter() - started < config.offline_seconds and rounds < 20):
        began = time.perf_counter()
        model.predict(texts, batch_size=32)
        best = min(best, time.perf_counter() - began)
        rounds += 1
    say(f"(c) offline predict(batch_size=32): {len(texts) / best:.0f} sentences/s (best of {rounds})")
    return {
        "throughput_sps": len(texts) / best,
        "rounds": rounds,
        "precision": model.precision,
        "batch_invariant": model.batch_invariant,
    }


def batching_economy(config: LoadConfig, texts: list[str], say: Say) -> dict[str, Any]:
    """(e) What batching can buy on this machine: the model's sentences/s by texts per call, in-process.

    Run the way the server runs batches under load: one model with (a)'s threads and streams, one
    Python thread per stream, each calling `predict(texts, stream=True)` on its share. `1` is what (b)
    gets (a lone text per call), `4` and `16` what (a) gets from a queue (texts in arrival order),
    `sorted` one call over each stream's whole share (length-sorted batches of 32, as (c)). (a) can
    beat (b) only by this ratio's gain per sentence, less what HTTP costs both per request alike.
    """
    threads = max(1, (config.threads or available_cpus()) // config.workers)
    model = NerModel.load(config.bundle, threads=threads, streams=config.streams, precision=config.precision)
    sample = list(texts)
    random.Random(config.seed).shuffle(sample)
    sample = sample[: 40 if config.smoke else 1200]
    model.predict(sample[:64], batch_size=32)
    cases: dict[str, int | None] = {str(k): k for k in ECONOMY_SIZES} | {"sorted": None}
    best = dict.fromkeys(cases, 0.0)
    for _ in range(1 if config.smoke else 3):  # rounds interleave the cases, so drift hits them alike
        for name, size in cases.items():
            best[name] = max(best[name], _sentences_per_second(model, sample, size))
    lone = best["1"]
    gains = {name: value / lone for name, value in best.items()}
    say(
        "(e) batching economy, sentences/s by texts per call: "
        + ", ".join(f"{name} {value:.0f} ({gains[name]:.2f}x)" for name, value in best.items())
    )
    return {
        "threads": threads,
        "streams": model.streams,
        "sentences": len(sample),
        "sentences_per_s": best,
        "gain_over_lone": gains,
        "best_queue_gain": max(gains[str(k)] for k in ECONOMY_SIZES),
    }


def _sentences_per_second(model: NerModel, sample: list[str], size: int | None) -> float:
    """`sample` split among the model's streams, each share in calls of `size` texts (None: one call)."""
    lanes = max(1, model.streams)
    shares = [sample[k::lanes] for k in range(lanes)]

    def lane(share: list[str]) -> None:
        if size is None:
            model.predict(share, batch_size=32, stream=True)
            return
        for start in range(0, len(share), size):
            model.predict(share[start : start + size], batch_size=32, stream=True)

    workers = [threading.Thread(target=lane, args=(share,)) for share in shares]
    began = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return len(sample) / (time.perf_counter() - began)
