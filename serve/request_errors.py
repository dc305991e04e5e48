"""Every refusal of the HTTP API as a `RequestError`, and the JSON body it is answered with.

Both engines (`ner-export serve` and the Ray Serve application) refuse requests through these helpers,
so a 413, 422, 429, 500 or 504 says the same words, carries the same `error_type` and, for a 429, the
same `Retry-After` rule whichever engine answers. An error is an exception rather than a ready response
so that the code that finds it (the body reader, the parser, admission) need not know the web framework;
each engine turns it into its response (`responses.error_response`), and the local one counts it in
`ner_serve_failures` under `reason`. Standard library only.
"""

from __future__ import annotations

import json
import math

from ner_export.runtime.errors import InputError

_JSON_ENCODER = json.JSONEncoder(ensure_ascii=False)  # made once: json.dumps(ensure_ascii=False) makes one a call

__all__ = [
    "RequestError",
    "too_large",
    "invalid",
    "overloaded",
    "timed_out",
    "prediction_error",
    "retry_after_seconds",
    "error_body",
]


class RequestError(Exception):
    """A request the service refuses; becomes `{"error": message, "error_type": error_type}` with `status`."""

    def __init__(
        self, status: int, message: str, error_type: str, reason: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_type = error_type
        self.reason = reason  # the ner_serve_failures label
        self.headers = headers or {}


def too_large(size: int, limit: int) -> RequestError:
    """413 for a body of `size` bytes over the payload limit."""
    return RequestError(
        413,
        f"body of {size} bytes exceeds the limit of {limit} bytes (--payload-limit)",
        "payload_too_large",
        "payload_too_large",
    )


def invalid(message: str) -> RequestError:
    """422 for a request body that does not follow the protocol; `message` names the field."""
    return RequestError(422, message, "validation", "invalid_request")


def overloaded(reason: str, why: str, retry_after: int) -> RequestError:
    """429 for a request admission refused: `reason` is the limit ("queue_full" or "queue_wait"), `why`
    the engine's account of the queue, `retry_after` the seconds the client is told to wait."""
    return RequestError(
        429, f"queue full: {why}; retry in {retry_after} s", "overloaded", reason, {"Retry-After": str(retry_after)}
    )


def retry_after_seconds(seconds: float) -> int:
    """A Retry-After value for a queue expected to drain in `seconds`: whole seconds, between 1 and 60."""
    return max(1, min(60, math.ceil(seconds)))


def timed_out(request_timeout: float, dropped: int, texts: int) -> RequestError:
    """504 for a request not answered within `request_timeout`; `dropped` of its `texts` never ran."""
    return RequestError(
        504,
        f"no answer within --request-timeout {request_timeout:g} s "
        f"({dropped} of {texts} texts still queued, now dropped)",
        "timeout",
        "timeout",
    )


def prediction_error(exc: Exception) -> RequestError:
    """The answer to a model call that failed on a request: 422 for input the runtime refuses, else 500."""
    if isinstance(exc, InputError):
        return RequestError(422, " ".join(str(exc).split()), "validation", "invalid_request")
    return RequestError(500, f"prediction failed: {type(exc).__name__}", "internal", "internal")


def error_body(message: str, error_type: str) -> bytes:
    """The JSON body of every error answer: `{"error": message, "error_type": error_type}`."""
    return _JSON_ENCODER.encode({"error": message, "error_type": error_type}).encode("utf-8")
