"""`create_app(bundle_dir, **settings)`: the ASGI application behind `ner-export serve`.

FastAPI rather than bare Starlette: the OpenAPI schema and the /docs page come for free, which is what
users integrating a service look for first, and FastAPI is Starlette underneath, so the hot path need
not pay for it: the prediction routes are plain Starlette routes (FastAPI only describes them), take
the raw `Request`, read and parse the body themselves (payload limit enforced while streaming; errors
as `{"error", "error_type"}` naming field and index, see `protocol`), and return a ready `Response`, so
no dependency solving, pydantic validation or serialisation runs per request.

The model loads in the batcher's worker thread after the server starts, so `/health` answers at once
and `/ready` is 503 until the model is loaded and warmed (or while draining). A pure ASGI middleware,
not `BaseHTTPMiddleware` (which would hide client disconnects from the route), assigns each request an
id (the client's `X-Request-ID` when it is sane), writes one access-log line, and counts the request.
Nothing here imports torch, transformers or anything else beyond `ner_export.runtime`.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import logging
import os
import re
import sys
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from ner_export.runtime import NerModel, available_cpus
from ner_export.runtime.errors import InputError, MissingDependencyError
from ner_export.runtime.manifest import MANIFEST_NAME, BundleManifest

from .settings import ServeSettings

try:
    from fastapi import FastAPI, Request
    from fastapi.openapi.utils import get_openapi
    from fastapi.responses import JSONResponse, Response
    from fastapi.routing import APIRoute
    from starlette.datastructures import MutableHeaders
    from starlette.exceptions import HTTPException
    from starlette.routing import Route
except ImportError as exc:  # pragma: no cover - exercised only without the serve extra
    raise MissingDependencyError(exc.name or "fastapi", "serve", "ner-export serve") from None

from .batcher import Batcher, Job, TokenCounter
from .metrics import CONTENT_TYPE_LATEST, Metrics
from .protocol import (
    EntityOut,
    ErrorOut,
    PredictRequest,
    RequestError,
    entities_json,
    error_body,
    info_body,
    parse_predict,
    too_large,
    versions,
)

__all__ = ["create_app", "Service", "Abandoned", "warm_up", "log_batching_decision"]

log = logging.getLogger("ner_export.serve")
access_log = logging.getLogger("ner_export.serve.access")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:/+=-]{1,128}$")
# request ids made here: a random per-process prefix and a counter (uuid4 per request costs a getrandom call)
_ID_PREFIX = os.urandom(8).hex()
_ID_COUNTER = itertools.count(1)
_HEAVY = ("torch", "transformers", "optimum")
_INLINE_CHARS = 20_000  # above this many characters a request's token count is taken in a thread
_WARMUP_TEXTS = ("a", "John Smith lives in Paris .", " ".join(["word"] * 60))


class Abandoned(Exception):
    """Set on a waiting request's future when the server stops before its answer (graceful timeout)."""


def warm_up(model: NerModel, batch_size: int) -> None:
    """Run a few texts, batched and alone, twice: first runs allocate onnxruntime's arenas for these shapes."""
    for _ in range(2):
        model.predict(list(_WARMUP_TEXTS), batch_size=batch_size)
        for text in _WARMUP_TEXTS:
            model.predict([text])


def log_batching_decision(logger: logging.Logger, model: NerModel, allow_batch_dependent: bool) -> None:
    """Say at start whether requests are batched together, and why (the graph's batch invariance)."""
    if model.batch_invariant:
        logger.info(
            "micro-batching across requests: the %s graph is batch-invariant "
            "(a text's entities never depend on its batch)",
            model.precision,
        )
    elif allow_batch_dependent:
        logger.warning(
            "micro-batching across requests on the %s graph, which is NOT batch-invariant (--allow-batch-dependent): "
            "a text's scores may shift slightly with the other texts in its batch",
            model.precision,
        )
    else:
        logger.warning(
            "the %s graph is not batch-invariant: batching only within each request, never across requests, so every "
            "answer equals offline model.predict(texts); pass --allow-batch-dependent to batch across requests "
            "(answers may then shift slightly), or serve a batch-invariant graph (e.g. --precision fp32)",
            model.precision,
        )


class Service:
    """The state one app serves from: settings, manifest, batcher, metrics, readiness and draining."""

    def __init__(self, bundle_dir: str | os.PathLike[str], settings: ServeSettings) -> None:
        self.bundle_dir = Path(bundle_dir)
        self.settings = settings
        self.manifest = BundleManifest.read(self.bundle_dir)  # a wrong path fails here, before serving
        self.graph = self.manifest.graph_for(settings.device, settings.precision, settings.backend)
        self.bundle_sha256 = hashlib.sha256((self.bundle_dir / MANIFEST_NAME).read_bytes()).hexdigest()
        self.metrics = Metrics()
        self.batcher = Batcher(self._load, settings, self.metrics, self._loaded, self._failed)
        self.counter: TokenCounter | None = None
        self.ready = False
        self.draining = False
        self.load_error: str | None = None
        self.in_flight = 0
        self.started_at = time.time()
        self.on_failure: Any = None  # called (from the worker thread) when the model cannot load or the batcher dies
        self.jobs: set[Job] = set()  # accepted and not yet answered

    # ------------------------------------------------------------------ lifecycle
    def _load(self) -> NerModel:
        s = self.settings
        started = time.perf_counter()
        model = NerModel.load(self.bundle_dir, **s.model_options())
        from tokenizers import Tokenizer

        tokenizer = Tokenizer.from_file(str(self.bundle_dir / self.manifest.tokenizer_file))
        tokenizer.no_truncation()
        tokenizer.no_padding()
        self.counter = TokenCounter(tokenizer, self.manifest.max_length, model.stride)
        warm_up(model, s.max_batch_size)
        log.info(
            "model loaded and warmed in %.2f s (%s graph %s, %d threads)",
            time.perf_counter() - started,
            model.precision,
            self.graph.file,
            s.threads or available_cpus(),
        )
        return model

    def _loaded(self, model: NerModel) -> None:
        log_batching_decision(log, model, self.settings.allow_batch_dependent)
        self.ready = True
        self.metrics.ready.set(1)

    def _failed(self, exc: BaseException) -> None:
        self.ready = False
        self.metrics.ready.set(0)
        self.load_error = " ".join(str(exc).split()) or type(exc).__name__
        log.error("cannot serve: %s", self.load_error)
        if self.on_failure is not None:
            self.on_failure()

    def start(self) -> None:
        self.batcher.start()

    def stop(self) -> None:
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
        return self.load_error is None and self.batcher.alive

    # ------------------------------------------------------------------ reports
    def info(self) -> dict[str, Any]:
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
        body["process"] = {
            "pid": os.getpid(),
            "started_at": self.started_at,
            "imported": {name: name in sys.modules for name in _HEAVY},
        }
        return body

    def status(self) -> str:
        if self.load_error is not None or not self.batcher.alive:
            return "failed"
        if self.draining:
            return "draining"
        return "ready" if self.ready else "loading"


def _json(status: int, body: bytes, headers: dict[str, str] | None = None) -> Response:
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def _error(exc: RequestError, service: Service) -> Response:
    service.metrics.failures.labels(exc.reason).inc()
    return _json(exc.status, error_body(exc.message, exc.error_type), exc.headers)


async def _disconnected(receive: Any) -> None:
    """Return once the client has gone (the body is already read, so nothing else arrives)."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


class _AccessLog:
    """Pure ASGI middleware: request id, one access-log line and the request metrics, per request."""

    def __init__(self, app: Any, service: Service) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        given = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = given if _REQUEST_ID.match(given) else f"{_ID_PREFIX}{next(_ID_COUNTER):08x}"
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        status = 500

        async def send_with_id(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = MutableHeaders(scope=message)
                headers["x-request-id"] = request_id
                if self.service.draining:
                    headers["connection"] = "close"  # clients reconnect elsewhere, not to a closing listener
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            path = self.service.metrics.path_label(scope["path"])
            self.service.metrics.request_duration.labels(path).observe(elapsed)
            self.service.metrics.requests.labels(path, str(status)).inc()
            if self.service.settings.access_log:
                client = scope.get("client")
                peer = f"{client[0]}:{client[1]}" if client else "-"
                texts = state.get("texts")
                access_log.info(
                    '%s "%s %s HTTP/%s" %d %.1fms id=%s%s',
                    peer,
                    scope["method"],
                    scope["path"],
                    scope.get("http_version", "1.1"),
                    status,
                    elapsed * 1000,
                    request_id,
                    "" if texts is None else f" texts={texts}",
                )


def create_app(bundle_dir: str | os.PathLike[str], settings: ServeSettings | None = None, **overrides: Any) -> FastAPI:
    """The service as an ASGI app, for `uvicorn`, `hypercorn` or any ASGI server you run yourself.

    `settings` (or the defaults) with `overrides` applied, e.g. `create_app("bundle/", precision="fp32",
    max_wait_ms=2)`; see `ServeSettings` for every knob. The bundle's manifest is read now (a wrong path
    raises `BundleError` here); the model loads when the server starts (lifespan), in the background.
    `ner_export.serve.run` adds the SIGTERM drain (503 while in-flight requests finish).
    """
    settings = ServeSettings.from_kwargs(settings, **overrides)
    service = Service(bundle_dir, settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> Any:
        service.start()
        try:
            yield
        finally:
            await asyncio.get_running_loop().run_in_executor(None, service.stop)

    app = _ServeApp(
        title="ner-export serve",
        version=versions().get("ner-export", "0"),
        description=(
            "Named-entity recognition with a ner-export bundle, in Hugging Face's token-classification protocol."
        ),
        lifespan=lifespan,
    )
    app.state.service = service

    errors = {
        413: {"model": ErrorOut},
        422: {"model": ErrorOut},
        429: {"model": ErrorOut},
        503: {"model": ErrorOut},
        504: {"model": ErrorOut},
    }
    predict_doc = {
        "response_model": list[EntityOut] | list[list[EntityOut]],
        "responses": errors,
        "openapi_extra": {
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/PredictRequest"}}},
            }
        },
        "summary": "Entities of one text, or of each text of a list",
    }

    async def predict(request: Request) -> Response:
        s = service.settings
        if service.draining or not service.ready:
            return _unavailable(service)
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > s.payload_limit:
            return _error(too_large(int(length), s.payload_limit), service)
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > s.payload_limit:
                return _error(too_large(len(body), s.payload_limit), service)
        try:
            call = parse_predict(bytes(body), s)
        except RequestError as exc:
            return _error(exc, service)
        request.state.texts = len(call.texts)
        if not call.texts:
            return _json(200, entities_json(call, []))
        if service.draining:
            return _unavailable(service)
        assert service.counter is not None  # set before ready
        loop = asyncio.get_running_loop()
        counter = service.counter
        if sum(map(len, call.texts)) > _INLINE_CHARS:  # long texts: tokenize off the event loop, which serves everyone
            costs = await loop.run_in_executor(None, lambda: [counter.cost(t) for t in call.texts])
            if service.draining:
                return _unavailable(service)
        else:
            costs = [counter.cost(t) for t in call.texts]
        job = Job(call.texts, costs, call.aggregation, loop.create_future(), loop)
        refused = service.batcher.submit(job)
        if refused is not None:
            retry = service.batcher.retry_after()
            if refused == "queue_full":
                why = f"{service.batcher.queued} texts waiting (limit {s.max_queued_texts}, --max-queued-texts)"
            else:
                why = (
                    f"the {service.batcher.queued} texts waiting would keep this request from the model for about "
                    f"{service.batcher.expected_wait() * 1000:.0f} ms (limit {s.max_queue_ms:g} ms, --max-queue-ms)"
                )
            return _error(
                RequestError(
                    429, f"queue full: {why}; retry in {retry} s", "overloaded", refused, {"Retry-After": str(retry)}
                ),
                service,
            )
        service.in_flight += 1
        service.jobs.add(job)
        service.metrics.in_flight.inc()
        gone = asyncio.ensure_future(_disconnected(request.receive))
        try:
            done, _ = await asyncio.wait(
                {job.future, gone}, timeout=s.request_timeout, return_when=asyncio.FIRST_COMPLETED
            )
            if job.future in done:
                try:
                    results = job.future.result()
                except Abandoned:
                    return _error(
                        RequestError(
                            503,
                            "server stopped before this request was answered "
                            f"(--graceful-timeout {s.graceful_timeout:g} s)",
                            "unavailable",
                            "shutdown",
                        ),
                        service,
                    )
                except InputError as exc:
                    return _error(
                        RequestError(422, " ".join(str(exc).split()), "validation", "invalid_request"), service
                    )
                except Exception as exc:  # noqa: BLE001 - the model failed on this request
                    log.error("prediction failed (request %s): %s", request.state.request_id, exc)
                    return _error(
                        RequestError(500, f"prediction failed: {type(exc).__name__}", "internal", "internal"), service
                    )
                return _json(200, entities_json(call, results))
            dropped = service.batcher.cancel(job)
            if gone in done:
                service.metrics.failures.labels("client_disconnect").inc()
                log.info(
                    "client of request %s disconnected; %d queued texts dropped", request.state.request_id, dropped
                )
                return _json(499, error_body("client closed the request", "client_closed"))
            return _error(
                RequestError(
                    504,
                    f"no answer within --request-timeout {s.request_timeout:g} s "
                    f"({dropped} of {len(call.texts)} texts still queued, now dropped)",
                    "timeout",
                    "timeout",
                ),
                service,
            )
        finally:
            gone.cancel()
            if not job.future.done():  # cancelled (server stopping): its queued texts must not run
                service.batcher.cancel(job)
            service.in_flight -= 1
            service.jobs.discard(job)
            service.metrics.in_flight.dec()

    # Prediction requests skip FastAPI's middleware stack and router (`_ServeApp`): on a 2-core machine
    # they cost more event-loop time than the rest of a request's handling together. The same handler,
    # as FastAPI routes, describes them in the OpenAPI schema and serves them under a mounted app.
    described = [APIRoute(path, predict, methods=["POST"], **predict_doc) for path in ("/", "/predict")]
    for path in ("/", "/predict"):
        app.router.routes.append(Route(path, predict, methods=["POST"]))

    async def predict_asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
        response = await predict(Request(scope, receive))
        await response(scope, receive, send)

    app.fast_predict = _AccessLog(predict_asgi, service)

    @app.get("/health", summary="Liveness: 200 while the process can serve (503 if the model failed to load)")
    async def health() -> Response:
        if not service.alive:
            return JSONResponse({"status": "failed", "error": service.load_error}, status_code=503)
        return JSONResponse({"status": "ok"})

    @app.get("/ready", summary="Readiness: 200 once the model is loaded and warmed; 503 before, and while draining")
    async def ready() -> Response:
        status = service.status()
        return JSONResponse({"status": status}, status_code=200 if status == "ready" else 503)

    @app.get(
        "/info",
        summary="Labels, bundle sha256, manifest summary, quantization, batch_invariant, batching settings, versions",
    )
    async def info() -> Response:
        return JSONResponse(service.info())

    @app.get("/metrics", summary="Prometheus metrics")
    async def metrics() -> Response:
        service.metrics.queue_depth.set(service.batcher.queued)
        return Response(service.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        kind = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return _json(exc.status_code, error_body(str(exc.detail), kind), getattr(exc, "headers", None))

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=[*described, *app.routes]
            )
            request_schema = PredictRequest.model_json_schema(ref_template="#/components/schemas/{model}")
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components.update(request_schema.pop("$defs", {}))
            components["PredictRequest"] = request_schema
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    app.add_middleware(_AccessLog, service=service)
    return app


class _ServeApp(FastAPI):
    """FastAPI, with POST / and /predict answered straight from the ASGI call (request id, access log
    and metrics included, as `_AccessLog` gives every request); everything else goes through FastAPI."""

    fast_predict: Any = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if (
            self.fast_predict is not None
            and scope["type"] == "http"
            and scope["method"] == "POST"
            and scope["path"] in ("/", "/predict")
            and not scope.get("root_path")
        ):
            await self.fast_predict(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


def _unavailable(service: Service) -> Response:
    reason = "shutting down" if service.draining else f"not ready ({service.status()})"
    return _error(RequestError(503, f"server is {reason}", "unavailable", "unavailable", {"Retry-After": "1"}), service)
