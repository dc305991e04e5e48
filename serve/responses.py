"""The HTTP side both engines share: reading a prediction request and writing JSON answers.

Plain Starlette `Request` and `Response` (FastAPI's are the same classes, and Ray Serve hands a
replica a Starlette request), so `ner-export serve` and the Ray Serve application read a body under
the same payload limit and answer in the same bytes. The body is read by streaming and refused (413)
as soon as it passes the limit, or at once when its Content-Length already does: a client cannot make
the service buffer more than `payload_limit` bytes.
"""

from __future__ import annotations

from ner_export.runtime.errors import MissingDependencyError

from .protocol import PredictCall, parse_predict
from .request_errors import RequestError, error_body, too_large
from .settings import ServeSettings

try:
    from starlette.requests import Request
    from starlette.responses import Response
except ImportError as exc:  # pragma: no cover - exercised only without the serve extra
    raise MissingDependencyError(exc.name or "starlette", "serve", "ner-export serve") from None

__all__ = ["json_response", "error_response", "read_predict_call"]


def json_response(status: int, body: bytes, headers: dict[str, str] | None = None) -> Response:
    """A response of ready JSON bytes: no serialisation on the way out."""
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def error_response(exc: RequestError) -> Response:
    """The `{"error", "error_type"}` answer to a refused request, with its status and headers."""
    return json_response(exc.status, error_body(exc.message, exc.error_type), exc.headers)


async def read_predict_call(request: Request, settings: ServeSettings) -> PredictCall:
    """Read the body under `settings.payload_limit` and parse it; RequestError (413 or 422) otherwise."""
    limit = settings.payload_limit
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > limit:
        raise too_large(int(length), limit)
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise too_large(len(body), limit)
    return parse_predict(bytes(body), settings)
