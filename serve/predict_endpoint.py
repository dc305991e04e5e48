"""`POST /` and `/predict` of `ner-export serve`: admission, the wait for the batcher, and the answer.

The handler works on the ASGI call itself (`scope`, `receive`) and returns the answer as plain values
(status, JSON bytes, extra headers): no Starlette request or response object, dependency solving,
pydantic validation or serialisation runs per request (`openapi` describes the route), and the fast
path in `app` writes the two ASGI messages itself. A request is refused with 503 while the model loads
or the service drains, 413/422 while its body is read and parsed, and 429 when admission
(`Batcher.submit`) refuses its texts; once accepted, its texts are queued as one `Job` and it awaits
the job's future, which settles on the first of: its answer (from the batcher thread), its client going
away (the queued texts are dropped, 499 in the log) or `request_timeout` (504). The timeout is a timer
handle, not a task; the watch for a disconnect, which needs a task reading `receive`, starts only once
a request has waited `WATCH_DISCONNECT_AFTER_S`: most requests are answered before, and a client gone
sooner costs at most that long of the model. Every refusal is counted in `ner_serve_failures` under
its reason.

Texts are costed (`TokenCounter`) on the event loop, which is cheap for short texts; a request holding
more than `INLINE_COST_CHARS` characters is costed in a thread instead, since the event loop serves
every client at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from .batcher import Job
from .protocol import PredictCall, entities_json, parse_predict
from .request_errors import RequestError, error_body, overloaded, prediction_error, timed_out
from .responses import read_body
from .service import Abandoned, Service

__all__ = ["predict_endpoint", "Answer", "INLINE_COST_CHARS", "WATCH_DISCONNECT_AFTER_S"]

log = logging.getLogger("ner_export.serve")

INLINE_COST_CHARS = 20_000  # above this many characters a request's token count is taken in a thread
WATCH_DISCONNECT_AFTER_S = 0.05  # a request waiting longer than this watches for its client leaving

Answer = tuple[int, bytes, "dict[str, str] | None"]  # status, JSON body, extra headers


class _ClientGone(Exception):
    """Set on a job's future when its client disconnected while it waited."""


class _TimedOut(Exception):
    """Set on a job's future at its request timeout."""


def predict_endpoint(service: Service) -> Callable[[dict[str, Any], Any], Awaitable[Answer]]:
    """The prediction handler of `service`: `await predict(scope, receive)` gives (status, body, headers)."""

    async def predict(scope: dict[str, Any], receive: Any) -> Answer:
        if service.draining or not service.ready:
            return _unavailable(service)
        try:
            body = await read_body(scope, receive, service.settings.payload_limit)
            call = parse_predict(body, service.settings)
        except RequestError as exc:
            return _refuse(exc, service)
        scope.setdefault("state", {})["texts"] = len(call.texts)
        if not call.texts:
            return 200, entities_json(call, []), None
        if service.draining:
            return _unavailable(service)
        job = await _costed_job(call, service)
        if job is None:
            return _unavailable(service)
        refused = service.batcher.submit(job)
        if refused is not None:
            return _refuse(_overloaded(refused, service), service)
        return await _answer(scope, receive, call, job, service)

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


async def _answer(scope: dict[str, Any], receive: Any, call: PredictCall, job: Job, service: Service) -> Answer:
    """Await an accepted job's entities; its future also settles when the client leaves or at the timeout."""
    loop = job.loop
    watcher: list[asyncio.Task[None]] = []

    def time_out() -> None:
        if not job.future.done():
            job.future.set_exception(_TimedOut())

    timers = (
        loop.call_later(
            WATCH_DISCONNECT_AFTER_S, lambda: watcher.append(loop.create_task(_settle_when_gone(receive, job)))
        ),
        loop.call_later(service.settings.request_timeout, time_out),
    )
    service.in_flight += 1
    service.jobs.add(job)
    service.metrics.in_flight.inc()
    try:
        results = await job.future
    except _ClientGone:
        dropped = service.batcher.cancel(job)
        service.metrics.failures.labels("client_disconnect").inc()
        request_id = scope.get("state", {}).get("request_id")
        log.info("client of request %s disconnected; %d queued texts dropped", request_id, dropped)
        return 499, error_body("client closed the request", "client_closed"), None
    except _TimedOut:
        dropped = service.batcher.cancel(job)
        return _refuse(timed_out(service.settings.request_timeout, dropped, len(call.texts)), service)
    except Abandoned:
        graceful_timeout = service.settings.graceful_timeout
        why = f"server stopped before this request was answered (--graceful-timeout {graceful_timeout:g} s)"
        return _refuse(RequestError(503, why, "unavailable", "shutdown"), service)
    except Exception as exc:  # noqa: BLE001 - the model failed on this request: 422 for bad input, else 500
        error = prediction_error(exc)
        if error.status == 500:
            log.error("prediction failed (request %s): %s", scope.get("state", {}).get("request_id"), exc)
        return _refuse(error, service)
    finally:
        for timer in timers:
            timer.cancel()
        for task in watcher:
            task.cancel()
        if not job.future.done() or job.future.cancelled():  # cancelled (server stopping): its texts must not run
            service.batcher.cancel(job)
        service.in_flight -= 1
        service.jobs.discard(job)
        service.metrics.in_flight.dec()
    return 200, entities_json(call, results), None


async def _settle_when_gone(receive: Any, job: Job) -> None:
    """Settle the job with `_ClientGone` once its client has gone (the body is read: nothing else arrives)."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            if not job.future.done():
                job.future.set_exception(_ClientGone())
            return


def _refuse(exc: RequestError, service: Service) -> Answer:
    """The error answer, counted in `ner_serve_failures` under its reason."""
    service.metrics.failures.labels(exc.reason).inc()
    return exc.status, error_body(exc.message, exc.error_type), exc.headers or None


def _unavailable(service: Service) -> Answer:
    """503 while the model loads or the service drains; the client may retry in a second (elsewhere)."""
    reason = "shutting down" if service.draining else f"not ready ({service.status()})"
    error = RequestError(503, f"server is {reason}", "unavailable", "unavailable", {"Retry-After": "1"})
    return _refuse(error, service)
