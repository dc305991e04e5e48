"""The HTTP side both engines share: reading a prediction request and writing JSON answers.

Plain Starlette `Request` and `Response` (FastAPI's are the same classes, and Ray Serve hands a
replica a Starlette request), so `ner-export serve` and the Ray Serve application read a body under
the same payload limit and answer in the same bytes. The body is read by streaming and refused (413)
as soon as it passes the limit, or at once when its Content-Length already does: a client cannot make
the service buffer more than `payload_limit` bytes.
"""

from __future__ import annotations

from typing import Any

from ner_export.runtime.errors import MissingDependencyError

from .protocol import PredictCall, parse_predict
from .request_errors import RequestError, error_body, too_large
from .settings import ServeSettings

try:
    from starlette.requests import Request
    from starlette.responses import Response
except ImportError as exc:  # pragma: no cover - exercised only without the serve extra
    raise MissingDependencyError(exc.name or "starlette", "serve", "ner-export serve") from None

__all__ = ["json_response", "error_response", "read_body", "read_predict_call"]


def json_response(status: int, body: bytes, headers: dict[str, str] | None = None) -> Response:
    """A response of ready JSON bytes: no serialisation on the way out."""
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def error_response(exc: RequestError) -> Response:
    """The `{"error", "error_type"}` answer to a refused request, with its status and headers."""
    return json_response(exc.status, error_body(exc.message, exc.error_type), exc.headers)


async def read_body(scope: dict[str, Any], receive: Any, limit: int) -> bytes:
    """The request body, read from the ASGI `receive` under `limit` bytes; RequestError 413 beyond it (at
    once when Content-Length already says so), 499 when the client leaves before sending it all."""
    for name, value in scope["headers"]:
        if name == b"content-length" and value.isdigit() and int(value) > limit:
            raise too_large(int(value), limit)
    body = b""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise RequestError(499, "client closed the request", "client_closed", "client_disconnect")
        body += message.get("body", b"")
        if len(body) > limit:
            raise too_large(len(body), limit)
        if not message.get("more_body", False):
            return body


async def read_predict_call(request: Request, settings: ServeSettings) -> PredictCall:
    """Read the body under `settings.payload_limit` and parse it; RequestError (413 or 422) otherwise."""
    return parse_predict(await read_body(request.scope, request.receive, settings.payload_limit), settings)
