"""`POST /` and `/predict` of `ner-export serve`: admission, the wait for the batcher, and the answer.

The handler takes the raw Starlette `Request` and returns a ready `Response`: no dependency solving,
pydantic validation or serialisation runs per request (`openapi` describes the route).
A request is refused with 503 while the model loads or the service drains, 413/422 while its body is
read and parsed, and 429 when admission (`Batcher.submit`) refuses its texts; once accepted, its texts
are queued as one `Job` and it waits for the first of: its answer, its client going away (the queued
texts are dropped, 499 in the log) or `request_timeout` (504). Every refusal is counted in
`ner_serve_failures` under its reason.

Texts are costed (`TokenCounter`) on the event loop, which is cheap for short texts; a request holding
more than `INLINE_COST_CHARS` characters is costed in a thread instead, since the event loop serves
every client at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from .batcher import Job
from .protocol import PredictCall, entities_json
from .request_errors import (
    RequestError,
    error_body,
    overloaded,
    prediction_error,
    timed_out,
)
from .responses import error_response, json_response, read_predict_call
from .service import Abandoned, Service

__all__ = ["predict_endpoint", "INLINE_COST_CHARS"]

log = logging.getLogger("ner_export.serve")

INLINE_COST_CHARS = 20_000  # above this many characters a request's token count is taken in a thread


def predict_endpoint(service: Service) -> Callable[[Request], Awaitable[Response]]:
    """The prediction handler of `service`, for a Starlette route (and FastAPI's description of it)."""

    async def predict(request: Request) -> Response:
        if service.draining or not service.ready:
            return _unavailable(service)
        try:
            call = await read_predict_call(request, service.settings)
        except RequestError as exc:
            return _refuse(exc, service)
        request.state.texts = len(call.texts)
        if not call.texts:
            return json_response(200, entities_json(call, []))
        if service.draining:
            return _unavailable(service)
        job = await _costed_job(call, service)
        if job is None:
            return _unavailable(service)
        refused = service.batcher.submit(job)
        if refused is not None:
            return _refuse(_overloaded(refused, service), service)
        return await _answer(request, call, job, service)

    return predict


async def _costed_job(call: PredictCall, service: Service) -> Job | None:
    """The request's texts as a job, each with its cost; None when the service began draining meanwhile."""
    assert service.counter is not None  # set before ready
    loop = asyncio.get_running_loop()
    counter = service.counter
    if sum(map(len, call.texts)) > INLINE_COST_CHARS:  # long texts: tokenize off the event loop, which serves everyone
        costs = await loop.run_in_executor(None, lambda: [counter.cost(t) for t in call.texts])
        if service.draining:
            return None
    else:
        costs = [counter.cost(t) for t in call.texts]
    return Job(call.texts, costs, call.aggregation, loop.create_future(), loop)


def _overloaded(refused: str, service: Service) -> RequestError:
    """The 429 for a job admission refused: the limit it hit, and what the queue holds."""
    batcher, settings = service.batcher, service.settings
    if refused == "queue_full":
        why = f"{batcher.queued} texts waiting (limit {settings.max_queued_texts}, --max-queued-texts)"
    else:
        why = (
            f"the {batcher.queued} texts waiting would keep this request from the model for about "
            f"{batcher.expected_wait() * 1000:.0f} ms (limit {settings.max_queue_ms:g} ms, --max-queue-ms)"
        )
    return overloaded(refused, why, batcher.retry_after())


async def _answer(request: Request, call: PredictCall, job: Job, service: Service) -> Response:
    """Wait for an accepted job's entities, its client leaving or the request timeout, whichever comes first."""
    service.in_flight += 1
    service.jobs.add(job)
    service.metrics.in_flight.inc()
    gone = asyncio.ensure_future(_wait_for_disconnect(request.receive))
    try:
        done, _ = await asyncio.wait(
            {job.future, gone}, timeout=service.settings.request_timeout, return_when=asyncio.FIRST_COMPLETED
        )
        if job.future in done:
            return _result_response(request, call, job, service)
        dropped = service.batcher.cancel(job)
        if gone in done:
            service.metrics.failures.labels("client_disconnect").inc()
            log.info("client of request %s disconnected; %d queued texts dropped", request.state.request_id, dropped)
            return json_response(499, error_body("client closed the request", "client_closed"))
        return _refuse(timed_out(service.settings.request_timeout, dropped, len(call.texts)), service)
    finally:
        gone.cancel()
        if not job.future.done():  # cancelled (server stopping): its queued texts must not run
            service.batcher.cancel(job)
        service.in_flight -= 1
        service.jobs.discard(job)
        service.metrics.in_flight.dec()


def _result_response(request: Request, call: PredictCall, job: Job, service: Service) -> Response:
    """The answer of a settled job: its entities, or the error that failed it."""
    try:
        results = job.future.result()
    except Abandoned:
        graceful_timeout = service.settings.graceful_timeout
        return _refuse(
            RequestError(
                503,
                f"server stopped before this request was answered (--graceful-timeout {graceful_timeout:g} s)",
                "unavailable",
                "shutdown",
            ),
            service,
        )
    except Exception as exc:  # noqa: BLE001 - the model failed on this request: 422 for bad input, else 500
        error = prediction_error(exc)
        if error.status == 500:
            log.error("prediction failed (request %s): %s", request.state.request_id, exc)
        return _refuse(error, service)
    return json_response(200, entities_json(call, results))


async def _wait_for_disconnect(receive: Any) -> None:
    """Return once the client has gone (the body is already read, so nothing else arrives)."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return


def _refuse(exc: RequestError, service: Service) -> Response:
    """The error response, counted in `ner_serve_failures` under its reason."""
    service.metrics.failures.labels(exc.reason).inc()
    return error_response(exc)


def _unavailable(service: Service) -> Response:
    """503 while the model loads or the service drains; the client may retry in a second (elsewhere)."""
    reason = "shutting down" if service.draining else f"not ready ({service.status()})"
    error = RequestError(503, f"server is {reason}", "unavailable", "unavailable", {"Retry-After": "1"})
    return _refuse(error, service)
