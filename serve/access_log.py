"""`AccessLogMiddleware`: each request's id, its one access-log line and its request metrics.

A pure ASGI middleware, not Starlette's `BaseHTTPMiddleware`, which would hide client disconnects from
the route (the prediction route cancels a request whose client has gone). The request id is the
client's `X-Request-ID` when it is sane (up to 128 URL-safe characters), else one made here from a
random per-process prefix and a counter: a uuid4 per request would cost a getrandom call each time.
While the service drains, every answer carries `Connection: close`, so clients reconnect elsewhere
rather than to a listener about to close.
"""

from __future__ import annotations

import itertools
import logging
import os
import re
import time
from typing import Any

from starlette.datastructures import MutableHeaders

from .service import Service

__all__ = ["AccessLogMiddleware", "record_request", "request_id_of"]

access_log = logging.getLogger("ner_export.serve.access")

SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:/+=-]{1,128}$")
REQUEST_ID_PREFIX = os.urandom(8).hex()
REQUEST_ID_COUNTER = itertools.count(1)


def request_id_of(scope: dict[str, Any]) -> str:
    """The client's X-Request-ID when it is sane, else a new id unique in this process."""
    given = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
    return given if SANE_REQUEST_ID.match(given) else f"{REQUEST_ID_PREFIX}{next(REQUEST_ID_COUNTER):08x}"


class AccessLogMiddleware:
    """Pure ASGI middleware: request id, one access-log line and the request metrics, per request."""

    def __init__(self, app: Any, service: Service) -> None:
        self.app = app
        self.service = service

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = request_id_of(scope)
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
            record_request(self.service, scope, status, time.perf_counter() - started)


def record_request(service: Service, scope: dict[str, Any], status: int, elapsed: float) -> None:
    """A request's metrics, and its access-log line unless the access log is off (`scope["state"]` holds
    its request id and, for a prediction, its number of texts)."""
    service.metrics.observe_request(scope["path"], status, elapsed)
    if service.settings.access_log:
        client = scope.get("client")
        state = scope["state"]
        texts = state.get("texts")
        access_log.info(
            '%s "%s %s HTTP/%s" %d %.1fms id=%s%s',
            f"{client[0]}:{client[1]}" if client else "-",
            scope["method"],
            scope["path"],
            scope.get("http_version", "1.1"),
            status,
            elapsed * 1000,
            state["request_id"],
            "" if texts is None else f" texts={texts}",
        )
