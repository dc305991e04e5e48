"""Prometheus metrics of one service, in a registry of its own.

A private `CollectorRegistry` (not the process-global default) lets several apps live in one process
(tests, a user mounting two models) without name clashes, and `/metrics` shows exactly this service
plus the process collector (RSS, CPU time, open files), which is what a load test watches for leaks.
Buckets are chosen for a model that answers in milliseconds: fine below 25 ms, coarse up to 10 s.
"""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)

__all__ = ["Metrics", "CONTENT_TYPE_LATEST", "PATHS"]

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_SIZE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
BATCH_TOKEN_BUCKETS = (16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536)
PATHS = ("/", "/predict", "/health", "/ready", "/info", "/metrics", "/openapi.json", "/docs")


class Metrics:
    """Every metric the service exports; the batcher and the HTTP layer update them from their threads."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
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
        self.queue_depth = Gauge("ner_serve_queue_depth", "Texts waiting for the model", registry=r)
        self.in_flight = Gauge(
            "ner_serve_requests_in_flight", "Prediction requests accepted and not yet answered", registry=r
        )
        self.texts = Counter("ner_serve_texts", "Texts run through the model", registry=r)
        self.ready = Gauge(
            "ner_serve_ready", "1 when the model is loaded and warmed and the server is not draining", registry=r
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)

    @staticmethod
    def path_label(path: str) -> str:
        """A bounded label: known routes by name, anything else as `other`."""
        return path if path in PATHS else "other"
