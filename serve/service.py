"""`Service`: the state one `ner-export serve` app serves from, and its life cycle.

One object holds the settings, the manifest, the batcher, the metrics, and the flags the routes read
(`ready`, `draining`, `load_error`, requests in flight), so the routes, the access-log middleware and
the SIGTERM drain in `server` all look at the same state. The model loads in the batcher's worker
thread after the server starts (`start`), so `/health` answers at once and `/ready` is 503 until the
model is loaded and warmed; the callbacks the batcher calls from that thread only set flags and
gauges, which the event loop reads without locks (single assignments of plain values).
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

from ner_export.runtime import NerModel, available_cpus
from ner_export.runtime.manifest import BundleManifest

from .batcher import Batcher, Job, TokenCounter
from .metrics import Metrics
from .model_loading import (
    bundle_sha256,
    heavy_modules_imported,
    log_batching_decision,
    log_model_loaded,
    warm_up,
)
from .protocol import info_body
from .settings import ServeSettings

__all__ = ["Service", "Abandoned"]

log = logging.getLogger("ner_export.serve")


class Abandoned(Exception):
    """Set on a waiting request's future when the server stops before its answer (graceful timeout)."""


class Service:
    """The state one app serves from: settings, manifest, batcher, metrics, readiness and draining."""

    def __init__(self, bundle_dir: str | os.PathLike[str], settings: ServeSettings) -> None:
        self.bundle_dir = Path(bundle_dir)
        self.settings = settings
        self.manifest = BundleManifest.read(self.bundle_dir)  # a wrong path fails here, before serving
        self.graph = self.manifest.graph_for(settings.device, settings.precision, settings.backend)
        self.bundle_sha256 = bundle_sha256(self.bundle_dir)
        self.metrics = Metrics()
        self.batcher = Batcher(self._load, settings, self.metrics, self._loaded, self._failed)
        self.counter: TokenCounter | None = None
        self.ready = False
        self.draining = False
        self.load_error: str | None = None
        self.in_flight = 0
        self.started_at = time.time()
        self.on_failure: Any = None  # called (from the worker thread) when the model cannot load or the batcher dies
        self.on_ready: Any = None  # called (from the worker thread) once the model is loaded and warmed
        self.started = False
        self.jobs: set[Job] = set()  # accepted and not yet answered

    # ------------------------------------------------------------------ lifecycle
    def _load(self) -> NerModel:
        settings = self.settings
        started = time.perf_counter()
        model = NerModel.load(self.bundle_dir, **settings.model_options())
        self.counter = TokenCounter.for_model(model)
        warm_up(model, settings.max_batch_size)
        log_model_loaded(log, time.perf_counter() - started, model, self.graph, settings.threads or available_cpus())
        return model

    def _loaded(self, model: NerModel) -> None:
        log_batching_decision(log, model, self.settings.allow_batch_dependent)
        self.ready = True
        self.metrics.ready.set(1)
        if self.on_ready is not None:
            self.on_ready()

    def _failed(self, exc: BaseException) -> None:
        self.ready = False
        self.metrics.ready.set(0)
        self.load_error = " ".join(str(exc).split()) or type(exc).__name__
        log.error("cannot serve: %s", self.load_error)
        if self.on_failure is not None:
            self.on_failure()

    def start(self) -> None:
        """Start the batcher's worker thread, which loads and warms the model (once: later calls do nothing,
        so a supervised worker can load before its server starts, whose lifespan calls this again)."""
        if not self.started:
            self.started = True
            self.batcher.start()

    def stop(self) -> None:
        """Stop the batcher after its current batch (at most `graceful_timeout`); queued texts are dropped."""
        self.ready = False
        dropped = self.batcher.stop(self.settings.graceful_timeout)
        if dropped:
            log.warning("stopped with %d texts of abandoned requests still queued; they were not computed", dropped)

    def begin_drain(self) -> None:
        """Stop taking new work: /ready turns 503 and new prediction requests get 503."""
        self.draining = True
        self.ready = False
        self.metrics.ready.set(0)

    def abandon_all(self) -> int:
        """At the graceful timeout: answer every accepted request still waiting with 503; returns how many."""
        jobs = [job for job in self.jobs if not job.future.done()]
        for job in jobs:
            self.batcher.cancel(job)
            job.future.set_exception(Abandoned())
        return len(jobs)

    @property
    def alive(self) -> bool:
        """False once the model failed to load or the batcher died (/health turns 503)."""
        return self.load_error is None and self.batcher.alive

    # ------------------------------------------------------------------ reports
    def info(self) -> dict[str, Any]:
        """The body of `GET /info`, with this process's pid and whether it imported a training library."""
        model = self.batcher.model
        body = info_body(
            status=self.status(),
            bundle_dir=self.bundle_dir,
            manifest=self.manifest,
            graph=self.graph,
            bundle_sha256=self.bundle_sha256,
            settings=self.settings,
            cross_request=self.graph.batch_invariant or self.settings.allow_batch_dependent,
            threads=self.settings.threads,
            stride=model.stride if model is not None else None,
        )
        body["batching"]["streams"] = self.batcher.streams  # the model's, once loaded
        body["process"] = {"pid": os.getpid(), "started_at": self.started_at, "imported": heavy_modules_imported()}
        return body

    def status(self) -> str:
        """failed, draining, ready or loading: what `/ready` and `/info` report."""
        if self.load_error is not None or not self.batcher.alive:
            return "failed"
        if self.draining:
            return "draining"
        return "ready" if self.ready else "loading"
