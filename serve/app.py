"""`create_app(bundle_dir, **settings)`: the ASGI application behind `ner-export serve`.

FastAPI rather than bare Starlette: the /docs page comes for free, which is what users integrating a
service look for first, and FastAPI is Starlette underneath, so the hot path need not pay for it: the
OpenAPI document is written by hand (`openapi`), the prediction routes are plain Starlette routes served
by `predict_endpoint`, and `FastPredictApp` answers them straight from the ASGI call, past FastAPI's
middleware stack and router, which on a 2-core machine cost more event-loop time than the rest of a
request's handling together.

The model loads in the batcher's worker thread after the server starts (the lifespan starts the
`Service`), so `/health` answers at once and `/ready` is 503 until the model is loaded and warmed (or
while draining). Every request passes `AccessLogMiddleware` (request id, access log, metrics).
Nothing here imports torch, transformers or anything else beyond `ner_export.runtime`.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from ner_export.runtime.errors import MissingDependencyError

from .settings import ServeSettings

try:
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse, Response
    from starlette.exceptions import HTTPException
    from starlette.routing import Route
except ImportError as exc:  # pragma: no cover - exercised only without the serve extra
    raise MissingDependencyError(exc.name or "fastapi", "serve", "ner-export serve") from None

from .access_log import AccessLogMiddleware, record_request, request_id_of
from .metrics import CONTENT_TYPE
from .openapi import PREDICT_PATHS, openapi_schema
from .predict_endpoint import predict_endpoint
from .protocol import versions
from .request_errors import error_body
from .responses import json_response
from .service import Service

__all__ = ["create_app", "FastPredictApp"]


class FastPredictApp(FastAPI):
    """FastAPI, with POST / and /predict answered straight from the ASGI call (request id, access log
    and metrics included, as `AccessLogMiddleware` gives every request); everything else goes through FastAPI."""

    fast_predict: Any = None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if (
            self.fast_predict is not None
            and scope["type"] == "http"
            and scope["method"] == "POST"
            and scope["path"] in PREDICT_PATHS
            and not scope.get("root_path")
        ):
            await self.fast_predict(scope, receive, send)
            return
        await super().__call__(scope, receive, send)


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
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        service.start()
        try:
            yield
        finally:
            await asyncio.get_running_loop().run_in_executor(None, service.stop)

    app = FastPredictApp(
        title="ner-export serve",
        version=versions().get("ner-export", "0"),
        description=(
            "Named-entity recognition with a ner-export bundle, in Hugging Face's token-classification protocol."
        ),
        lifespan=lifespan,
    )
    app.state.service = service
    _add_predict_routes(app, service)
    _add_status_routes(app, service)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException) -> Response:
        kind = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return json_response(exc.status_code, error_body(str(exc.detail), kind), getattr(exc, "headers", None))

    app.openapi = lambda: _cached_openapi(app, settings)  # type: ignore[method-assign]
    app.add_middleware(AccessLogMiddleware, service=service)
    return app


def _add_predict_routes(app: FastPredictApp, service: Service) -> None:
    """Serve POST / and /predict: plain Starlette routes, and the fast path (the same handler)."""
    predict = predict_endpoint(service)

    async def predict_route(request: Request) -> Response:
        status, body, headers = await predict(request.scope, request.receive)
        return json_response(status, body, headers)

    for path in PREDICT_PATHS:  # under a mounted app (root_path), the fast path does not apply: the router serves
        app.router.routes.append(Route(path, predict_route, methods=["POST"]))

    async def predict_asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
        started = time.perf_counter()
        request_id = request_id_of(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500
        try:
            status, body, headers = await predict(scope, receive)
            raw = [
                (b"content-length", b"%d" % len(body)),
                (b"content-type", b"application/json"),
                (b"x-request-id", request_id.encode("latin-1")),
            ]
            if headers:
                raw += [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers.items()]
            if service.draining:
                raw.append((b"connection", b"close"))  # clients reconnect elsewhere, not to a closing listener
            await send({"type": "http.response.start", "status": status, "headers": raw})
            await send({"type": "http.response.body", "body": body})
        finally:
            record_request(service, scope, status, time.perf_counter() - started)

    app.fast_predict = predict_asgi


def _add_status_routes(app: FastAPI, service: Service) -> None:
    """GET /health, /ready, /info and /metrics."""

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
        return Response(service.metrics.render(), media_type=CONTENT_TYPE)


def _cached_openapi(app: FastAPI, settings: ServeSettings) -> dict[str, Any]:
    """The OpenAPI document (`openapi`), built once."""
    if app.openapi_schema is None:
        app.openapi_schema = openapi_schema(settings, title=app.title, version=app.version, description=app.description)
    return app.openapi_schema
