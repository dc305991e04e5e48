"""Prometheus metrics of one service, in a registry of its own.

A private `CollectorRegistry` (not the process-global default) lets several apps live in one process
(tests, a user mounting two models) without name clashes, and `/metrics` shows exactly this service
plus the process collector (RSS, CPU time, open files), which is what a load test watches for leaks.
Buckets are chosen for a model that answers in milliseconds: fine below 25 ms, coarse up to 10 s.

Several worker processes (`ner-export serve --workers N`, or your own gunicorn) share one `/metrics`
through prometheus_client's multiprocess mode: when the environment variable `PROMETHEUS_MULTIPROC_DIR`
names a directory (set before prometheus_client is imported; `run` sets it for its workers), every
worker writes its values there and whichever worker answers `/metrics` reports them summed (counters,
histograms, the queue-depth and in-flight gauges) or, for `ner_serve_ready`, their minimum. The process
collector then gives way to `process_resident_memory_bytes` summed over the live workers, and the
supervisor's count of replaced workers, `ner_serve_worker_restarts_total`, is read from the small
file it keeps in that directory (the supervisor serves no requests and imports prometheus_client
before the directory exists, so it cannot write a multiprocess counter itself).
Served as `text/plain; version=0.0.4`, the text format every Prometheus reads.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_PLAIN_0_0_4,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

__all__ = ["Metrics", "CONTENT_TYPE", "PATHS", "RESTARTS_FILE"]

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
BATCH_TOKEN_BUCKETS = (16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536)
PATHS = ("/", "/predict", "/health", "/ready", "/info", "/metrics", "/openapi.json", "/docs")
CONTENT_TYPE = CONTENT_TYPE_PLAIN_0_0_4  # what generate_latest writes, and what every Prometheus version reads
RESTARTS_FILE = "worker_restarts.json"  # in the multiprocess directory: the supervisor's restart counts by reason


class Metrics:
    """Every metric the service exports; the batcher and the HTTP layer update them from their threads."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._request_children: dict[tuple[str, int], tuple[Any, Any]] = {}
        self.multiprocess_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None
        if self.multiprocess_dir is None:
            ProcessCollector(registry=self.registry)
        r = self.registry
        self.request_duration = Histogram(
            "ner_serve_request_duration_seconds",
            "Time from a request's arrival to its response, by path",
            ["path"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.requests = Counter(
            "ner_serve_requests", "Requests answered, by path and HTTP status", ["path", "status"], registry=r
        )
        self.failures = Counter(
            "ner_serve_failures",
            "Prediction requests not answered with entities, by reason "
            "(payload_too_large, too_many_texts, invalid_request, queue_full, queue_wait, timeout, client_disconnect, "
            "unavailable, shutdown, internal)",
            ["reason"],
            registry=r,
        )
        self.queue_wait = Histogram(
            "ner_serve_queue_wait_seconds",
            "Time a text waited in the queue before its batch started",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.inference = Histogram(
            "ner_serve_inference_duration_seconds",
            "Time of one batch's model call (tokenize, run, decode)",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "ner_serve_batch_size", "Texts in one model call", buckets=BATCH_SIZE_BUCKETS, registry=r
        )
        self.batch_tokens = Histogram(
            "ner_serve_batch_tokens",
            "Padded tokens in one model call (windows x widest window), as estimated when queued: "
            "an upper bound (UTF-8 bytes) for a text shorter than one window, exact for longer ones",
            buckets=BATCH_TOKEN_BUCKETS,
            registry=r,
        )
        self.queue_depth = Gauge(
            "ner_serve_queue_depth", "Texts waiting for the model", registry=r, multiprocess_mode="livesum"
        )
        self.in_flight = Gauge(
            "ner_serve_requests_in_flight",
            "Prediction requests accepted and not yet answered",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.texts = Counter("ner_serve_texts", "Texts run through the model", registry=r)
        self.ready = Gauge(
            "ner_serve_ready",
            "1 when the model is loaded and warmed and the server is not draining (with workers: every worker)",
            registry=r,
            multiprocess_mode="livemin",
        )

    def observe_request(self, path: str, status: int, seconds: float) -> None:
        """One answered request: its duration and its count, by path label and status. The labelled children
        are kept (a bounded set: known paths and `other`, times the statuses), not looked up each time."""
        label = self.path_label(path)
        children = self._request_children.get((label, status))
        if children is None:
            children = (self.request_duration.labels(label), self.requests.labels(label, str(status)))
            self._request_children[(label, status)] = children
        children[0].observe(seconds)
        children[1].inc()

    def render(self) -> bytes:
        if self.multiprocess_dir is None:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=self.multiprocess_dir)
        registry.register(_WorkersMemory(Path(self.multiprocess_dir)))
        registry.register(_WorkerRestarts(Path(self.multiprocess_dir) / RESTARTS_FILE))
        return generate_latest(registry)

    @staticmethod
    def path_label(path: str) -> str:
        """A bounded label: known routes by name, anything else as `other`."""
        return path if path in PATHS else "other"


class _WorkersMemory:
    """`process_resident_memory_bytes` summed over the workers that write to a multiprocess directory
    (their pids are in its file names); Linux /proc, like prometheus_client's process collector."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def collect(self) -> Iterator[Metric]:
        pids = {int(m.group(1)) for f in self.directory.glob("*.db") if (m := re.search(r"_(\d+)\.db$", f.name))}
        page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
        total = 0
        for pid in pids:
            try:
                total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * page
            except (OSError, IndexError, ValueError):  # a worker that is gone, or no /proc
                continue
        yield GaugeMetricFamily(
            "process_resident_memory_bytes", "Resident memory size in bytes, summed over the live workers", value=total
        )


class _WorkerRestarts:
    """`ner_serve_worker_restarts_total` by reason (exit, signal, heartbeat): the replacement workers the
    supervisor started, from the small JSON file it rewrites in the multiprocess directory."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def collect(self) -> Iterator[Metric]:
        try:
            counts = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):  # no restart yet
            counts = {}
        family = CounterMetricFamily(
            "ner_serve_worker_restarts",
            "Worker processes replaced by the supervisor, by reason (exit: it exited; signal: a signal killed it; "
            "heartbeat: it stopped answering and was killed)",
            labels=["reason"],
        )
        for reason in ("exit", "signal", "heartbeat"):
            family.add_metric([reason], float(counts.get(reason, 0)))
        yield family
