"""`NerReplica`: one Ray Serve replica of the `ner-export serve` HTTP API.

The wire format comes from `protocol` (the same parser, answers, JSON errors and /info body as
`ner-export serve`), the refusals from `request_errors`, the model from the runtime. Trade-offs:

- One `NerModel` per replica, loaded and warmed in the constructor. Ray routes to a replica only once it
  is constructed, so a replica that answers at all is ready: `/ready` is 200, and a bundle that cannot
  load fails the deployment (Ray retries the constructor) instead of serving 503s.
- Batching is Ray's `@serve.batch`, one item per text (or, on a graph that is not batch-invariant, one
  item per request and batches of one request, so answers equal offline `predict(texts)`). Ray forms the
  next batch while the model is still busy (read from Ray 2.60's `_BatchQueue`: batches wait on a
  semaphore after they are formed), so under load with `max_wait_ms=0` its batches stay small; a few
  ms of wait fill them. `ner-export serve`'s own batcher takes whatever is queued the moment the model is
  free, which is one reason it costs less on a small model.
- Model calls run in one worker thread per replica (onnxruntime releases the GIL), off the event loop
  that receives requests; a padded-token budget is enforced by the runtime (`max_batch_tokens`).
- Plain `__call__(Request)` routing rather than a FastAPI ingress: no per-request dependency machinery;
  the price is no OpenAPI page (the plain server has one).
- Limits as in `ner-export serve`, per replica: 413/422 from `protocol`, 429 (with Retry-After) when
  this replica's waiting texts would exceed `max_queued_texts` or would take longer than `max_queue_ms`
  (estimated from texts and the replica's measured texts/s), 504 at `request_timeout`. A timed-out or
  disconnected request is cancelled, and `@serve.batch` never computes cancelled items. No `/metrics`:
  Ray exports its own `serve_*` metrics (batch sizes included); `/info` carries this replica's counters.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ner_export.runtime import NerModel
from ner_export.runtime.errors import MissingDependencyError
from ner_export.runtime.manifest import BundleManifest

from .model_loading import bundle_sha256, heavy_modules_imported, log_batching_decision, log_model_loaded, warm_up
from .protocol import PredictCall, entities_json, info_body
from .request_errors import RequestError, error_body, overloaded, prediction_error, retry_after_seconds, timed_out
from .responses import error_response, json_response, read_predict_call
from .settings import ServeSettings

try:
    from ray import serve
    from starlette.requests import Request
    from starlette.responses import Response
except ImportError as exc:  # pragma: no cover - exercised only without the ray extra
    raise MissingDependencyError(exc.name or "ray", "ray", "ner-export serve --engine ray") from None

__all__ = ["NerReplica", "PendingTexts"]

log = logging.getLogger("ray.serve.ner_export")  # a child of Ray's serve logger: its replica log files and format

PREDICT_PATHS = ("/", "/predict")
STATUS_PATHS = ("/health", "/ready", "/info")


@dataclass(eq=False)
class PendingTexts:
    """Texts waiting for one model call: one text (batching across requests) or a whole request."""

    texts: list[str]
    aggregation: str
    created: float = field(default_factory=time.perf_counter)
    started: bool = False  # taken into a batch, or given up: no longer counted as waiting


class NerReplica:
    """One replica: one `NerModel`, batching through `@serve.batch`, the HTTP API of `ner-export serve`."""

    def __init__(self, bundle_dir: str, settings: dict[str, Any], threads: int) -> None:
        started = time.perf_counter()
        self.settings = ServeSettings(**settings)
        self.bundle_dir = Path(bundle_dir)
        self.manifest = BundleManifest.read(self.bundle_dir)
        self.graph = self.manifest.graph_for(self.settings.device, self.settings.precision, self.settings.backend)
        self.bundle_sha256 = bundle_sha256(self.bundle_dir)
        self.threads = threads
        self.model = NerModel.load(self.bundle_dir, **self.settings.model_options(threads))
        warm_up(self.model, self.settings.max_batch_size)
        self.cross_request = self.model.batch_invariant or self.settings.allow_batch_dependent
        log_model_loaded(log, time.perf_counter() - started, self.model, self.graph, threads)
        log_batching_decision(log, self.model, self.settings.allow_batch_dependent)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ner-model")
        self._queued = 0  # texts accepted by this replica and not yet in a batch
        self._texts_per_second = 0.0  # smoothed, for Retry-After
        self.stats = {"batches": 0, "texts": 0, "inference_seconds": 0.0, "queue_wait_seconds": 0.0}
        self._predict_texts.set_max_batch_size(self.settings.max_batch_size)
        self._predict_texts.set_batch_wait_timeout_s(self.settings.max_wait_ms / 1000)

    # ------------------------------------------------------------------ batching
    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.0)  # both reset per replica from the settings
    async def _predict_texts(self, batch: list[PendingTexts]) -> list[Any]:
        """Across requests: one text per item, as many as Ray's batch holds, in one model call."""
        return await self._run_batch(batch)

    @serve.batch(max_batch_size=1, batch_wait_timeout_s=0.0)
    async def _predict_request(self, batch: list[PendingTexts]) -> list[Any]:
        """Within one request only (a graph that is not batch-invariant): one request per model call."""
        return await self._run_batch(batch)

    async def _run_batch(self, batch: list[PendingTexts]) -> list[Any]:
        now = time.perf_counter()
        for pending in batch:
            if not pending.started:
                pending.started = True
                self._queued -= len(pending.texts)
            self.stats["queue_wait_seconds"] += (now - pending.created) * len(pending.texts)
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._predict_batch, batch)

    def _predict_batch(self, batch: list[PendingTexts]) -> list[Any]:
        """In the model thread: each item's entity lists, or the exception that failed it alone."""
        batch_size = self.settings.max_batch_size
        started = time.perf_counter()
        results: list[Any] = [None] * len(batch)
        by_aggregation: dict[str, list[int]] = {}
        for i, pending in enumerate(batch):
            by_aggregation.setdefault(pending.aggregation, []).append(i)
        for aggregation, members in by_aggregation.items():
            texts = [text for i in members for text in batch[i].texts]
            try:
                found = self.model.predict(texts, batch_size=batch_size, aggregation=aggregation)
            except Exception:  # noqa: BLE001 - run each item alone below, so one bad request fails only itself
                for i in members:
                    try:
                        results[i] = self.model.predict(batch[i].texts, batch_size=batch_size, aggregation=aggregation)
                    except Exception as exc:  # noqa: BLE001 - becomes this request's 422/500
                        results[i] = exc
                continue
            at = 0
            for i in members:
                n = len(batch[i].texts)
                results[i] = found[at : at + n]
                at += n
        self._count_batch(sum(len(pending.texts) for pending in batch), time.perf_counter() - started)
        return results

    def _count_batch(self, texts: int, elapsed: float) -> None:
        """This replica's counters (in /info) and its smoothed texts/s (for admission and Retry-After)."""
        self.stats["batches"] += 1
        self.stats["texts"] += texts
        self.stats["inference_seconds"] += elapsed
        rate = texts / max(elapsed, 1e-6)
        self._texts_per_second = rate if self._texts_per_second == 0 else 0.8 * self._texts_per_second + 0.2 * rate

    # ------------------------------------------------------------------ HTTP
    async def __call__(self, request: Request) -> Response:
        path = route_path(request.scope)
        method = request.method
        if path in PREDICT_PATHS:
            if method != "POST":
                return json_response(405, error_body("Method Not Allowed", "method_not_allowed"), {"Allow": "POST"})
            return await self._predict(request)
        if path in STATUS_PATHS:
            if method not in ("GET", "HEAD"):
                return json_response(
                    405, error_body("Method Not Allowed", "method_not_allowed"), {"Allow": "GET, HEAD"}
                )
            if path == "/health":
                return json_response(200, b'{"status": "ok"}')
            if path == "/ready":
                return json_response(200, b'{"status": "ready"}')
            return json_response(200, json.dumps(self.info()).encode("utf-8"))
        if path == "/metrics":
            return json_response(
                404,
                error_body(
                    "no /metrics on the ray engine: "
                    "Ray Serve exports its own serve_* metrics through Ray's metrics endpoint",
                    "not_found",
                ),
            )
        return json_response(404, error_body("Not Found", "not_found"))

    async def _predict(self, request: Request) -> Response:
        try:
            call = await read_predict_call(request, self.settings)
        except RequestError as exc:
            return error_response(exc)
        if not call.texts:
            return json_response(200, entities_json(call, []))
        refusal = self._admission(len(call.texts))
        if refusal is not None:
            return error_response(refusal)
        try:
            results = await self._entities(call)
        except RequestError as exc:  # the request timeout
            return error_response(exc)
        except Exception as exc:  # noqa: BLE001 - the model failed on this request: 422 for bad input, else 500
            error = prediction_error(exc)
            if error.status == 500:
                log.error("prediction failed: %s: %s", type(exc).__name__, exc)
            return error_response(error)
        return json_response(200, entities_json(call, results))

    def _admission(self, incoming: int) -> RequestError | None:
        """The 429 for a request of `incoming` texts that this replica's queue cannot take, else None."""
        settings = self.settings
        rate = self._texts_per_second
        wait = self._queued / rate if rate > 0 else 0.0  # estimated from texts: a replica has no token estimates
        reason = settings.refusal(self._queued, incoming, wait)
        if reason is None:
            return None
        limit = (
            f"limit {settings.max_queued_texts}, --max-queued-texts"
            if reason == "queue_full"
            else f"about {wait * 1000:.0f} ms of work, limit {settings.max_queue_ms:g} ms, --max-queue-ms"
        )
        return overloaded(reason, f"{self._queued} texts waiting in this replica ({limit})", retry_after_seconds(wait))

    async def _entities(self, call: PredictCall) -> list[Any]:
        """Each text's entities through `@serve.batch`; the 504 RequestError at `request_timeout`, or the
        exception that failed the request. Whatever is still queued when it returns is never computed."""
        if self.cross_request:
            batch = [PendingTexts([text], call.aggregation) for text in call.texts]
            predict = self._predict_texts
        else:
            batch, predict = [PendingTexts(call.texts, call.aggregation)], self._predict_request
        self._queued += len(call.texts)
        tasks = [asyncio.ensure_future(predict(pending)) for pending in batch]
        try:
            _, waiting = await asyncio.wait(tasks, timeout=self.settings.request_timeout)
            if waiting:
                dropped = sum(len(pending.texts) for pending in batch if not pending.started)
                raise timed_out(self.settings.request_timeout, dropped, len(call.texts))
            results: list[Any] = []
            for task in tasks:
                found = task.result()
                if isinstance(found, BaseException):
                    raise found
                results.extend(found)
            return results
        finally:  # timed out, failed or cancelled (client gone): what is still queued is never computed
            for task in tasks:
                task.cancel()
            for pending in batch:
                if not pending.started:
                    pending.started = True
                    self._queued -= len(pending.texts)

    def info(self) -> dict[str, Any]:
        """The body of `GET /info`, with this replica's identity and counters."""
        body = info_body(
            status="ready",
            bundle_dir=self.bundle_dir,
            manifest=self.manifest,
            graph=self.graph,
            bundle_sha256=self.bundle_sha256,
            settings=self.settings,
            cross_request=self.cross_request,
            threads=self.threads,
            stride=self.model.stride,
            extra_versions=("ray",),
        )
        context = serve.get_replica_context()
        body["engine"] = "ray"
        body["replica"] = {
            "id": context.replica_id.unique_id,
            "deployment": context.deployment,
            "app": context.app_name,
            "pid": os.getpid(),
            "queued_texts": self._queued,
            **self.stats,
            "rss_bytes": rss_bytes(),
            "imported": heavy_modules_imported(),
        }
        return body


def route_path(scope: dict[str, Any]) -> str:
    """The request path below the application's route prefix."""
    path, root = scope.get("path", "/"), scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    return path or "/"


def rss_bytes() -> int | None:
    """This process's resident memory (Linux /proc), else None."""
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None
