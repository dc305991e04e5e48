"""`python -m ner_export.benchmarks.serve_load_overhead BUNDLE`: the server's CPU per request beyond the model.

Where a prediction request's CPU goes in `ner-export serve` apart from the model call: reading and
parsing the body, checking it, costing its texts, handing it to the batcher thread and back,
serialising the answer, the access-log line and the metrics. Two measures, both with one client
sending one request at a time, so nothing overlaps and every CPU-second belongs to one request:

- in process: the app (`create_app`) driven by direct ASGI calls, no sockets, on uvloop as uvicorn runs
  it when installed. The event loop's thread CPU (`time.thread_time`) is the HTTP path's whole cost on
  the loop (`driver_us`, the driver's own cost on an app that answers at once, is part of it); the
  batcher thread's CPU less the model's own (`model.predict`, timed inside the thread) is the
  hand-off's cost there. Then each step alone, timed in a loop on the same bodies (`steps`), to say
  which part costs what.
- end to end (`--server`): `ner-export serve` in a subprocess, a raw-socket keep-alive client, and the
  server process's CPU from /proc per request, less the model's (the same texts through `model.predict`
  one by one in this process): what uvicorn's HTTP parsing and the socket writes add.

Trade-offs: a tiny bundle makes the model's share small, so the HTTP path shows clearly; the step
timings run each function outside the server, so they exclude cache effects of the full path and add up
to a little less than the in-process total. Bounded: `--requests` requests per measure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import platform
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .serve_load_server import ServerProcess, cpu_seconds

__all__ = ["main", "measure_in_process", "measure_steps", "measure_server"]

TEXTS = (
    "John Smith lives in Paris.",
    "Maria Lopez works for Reuters in London, said the minister on Monday.",
    "The Bank of Tokyo and the French company agreed in Berlin.",
    "the world cup in germany , france and the united states",
)
BODIES = [json.dumps({"inputs": text}).encode() for text in TEXTS]


class _ModelClock:
    """Times the model's `predict` in place (an instance attribute over the method): the CPU the calling
    thread spends inside it, summed."""

    def __init__(self, model: Any) -> None:
        self.cpu = 0.0
        predict = model.predict

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.thread_time()
            try:
                return predict(*args, **kwargs)
            finally:
                self.cpu += time.thread_time() - started

        model.predict = timed


async def _asgi_post(app: Any, body: bytes) -> tuple[int, bytes]:
    """One POST /predict through the ASGI app, as uvicorn would call it; (status, body)."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/predict",
        "raw_path": b"/predict",
        "root_path": "",
        "query_string": b"",
        "headers": [
            (b"host", b"127.0.0.1"),
            (b"content-type", b"application/json"),
            (b"content-length", b"%d" % len(body)),
        ],
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8080),
    }
    messages = [{"type": "http.request", "body": body, "more_body": False}]
    answered = asyncio.Event()
    status, chunks = 0, []

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop()
        await answered.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        else:
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                answered.set()

    await app(scope, receive, send)
    return status, b"".join(chunks)


def measure_in_process(bundle: str, requests: int, access_log: bool) -> dict[str, float]:
    """CPU microseconds per request on the event loop and, less the model, on the batcher thread."""
    from ner_export.serve import create_app
    from ner_export.serve.log_setup import configure_logging

    stderr, sys.stderr = sys.stderr, open(os.devnull, "w")  # noqa: SIM115 - the server's log lines, written and dropped
    try:
        configure_logging("info")  # as `run` does: the access log as the server writes it
    finally:
        sys.stderr = stderr
    app = create_app(bundle, precision="fp32", threads=1, access_log=access_log)
    service = app.state.service

    async def scenario() -> dict[str, float]:
        async with app.router.lifespan_context(app):
            while not service.ready:
                await asyncio.sleep(0.01)
            timed = _ModelClock(service.batcher.model)
            worker = service.batcher._threads[0]  # noqa: SLF001 - its CPU clock, to measure it
            clock = time.pthread_getcpuclockid(worker.ident)
            for body in BODIES * 25:  # warm every path
                await _asgi_post(app, body)
            loop_started, batcher_started, wall = time.thread_time(), time.clock_gettime(clock), time.perf_counter()
            timed.cpu = 0.0
            for i in range(requests):
                status, _ = await _asgi_post(app, BODIES[i % len(BODIES)])
                assert status == 200, status
            wall = time.perf_counter() - wall
            loop = time.thread_time() - loop_started
            batcher = time.clock_gettime(clock) - batcher_started - timed.cpu
            return {
                "loop_us": loop / requests * 1e6,
                "batcher_less_model_us": batcher / requests * 1e6,
                "model_us": timed.cpu / requests * 1e6,
                "wall_us": wall / requests * 1e6,
            }

    figures = _run_loop(scenario())
    figures["driver_us"] = _run_loop(_driver_cost(requests))
    return figures


def _run_loop(coroutine: Any) -> Any:
    """Run on uvloop when it is installed, as uvicorn does (its `loop="auto"`), else on asyncio's own loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


async def _driver_cost(requests: int) -> float:
    """The event-loop CPU microseconds per call of this module's ASGI driver itself, on an app that answers
    at once: the part of `loop_us` that is the measuring, not the server."""

    async def answer_at_once(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"[]"})

    started = time.thread_time()
    for i in range(requests):
        await _asgi_post(answer_at_once, BODIES[i % len(BODIES)])
    return (time.thread_time() - started) / requests * 1e6


def _per_call_us(function: Callable[[], Any], rounds: int) -> float:
    function()
    started = time.perf_counter()
    for _ in range(rounds):
        function()
    return (time.perf_counter() - started) / rounds * 1e6


def measure_steps(bundle: str, rounds: int) -> dict[str, float]:
    """Each step of the request path alone, in microseconds per call, on the same bodies."""
    from ner_export.runtime import NerModel
    from ner_export.serve import ServeSettings
    from ner_export.serve.access_log import request_id_of
    from ner_export.serve.metrics import Metrics
    from ner_export.serve.protocol import entities_json, parse_predict
    from ner_export.serve.responses import json_response

    settings = ServeSettings()
    model = NerModel.load(bundle, precision="fp32", threads=1)
    calls = [parse_predict(body, settings) for body in BODIES]
    results = [model.predict(call.texts) for call in calls]
    metrics = Metrics()
    access = logging.getLogger("ner_export.serve.access.steps")
    access.handlers[:] = [logging.FileHandler(os.devnull)]
    access.propagate = False
    access.setLevel(logging.INFO)
    scope = {"headers": [(b"host", b"127.0.0.1"), (b"content-type", b"application/json")]}
    k = iter(range(1 << 60))

    def access_line() -> None:
        access.info('%s "%s %s HTTP/%s" %d %.1fms id=%s%s', "127.0.0.1:5", "POST", "/predict", "1.1", 200, 1.0, "x", "")

    def record_metrics() -> None:
        metrics.request_duration.labels("/predict").observe(0.001)
        metrics.requests.labels("/predict", "200").inc()
        metrics.in_flight.inc()
        metrics.in_flight.dec()
        metrics.queue_wait.observe(0.0001)
        metrics.inference.observe(0.001)
        metrics.batch_size.observe(1)
        metrics.batch_tokens.observe(16)
        metrics.texts.inc(1)
        metrics.queue_depth.set(0)

    steps = {
        "parse and check the body": lambda: parse_predict(BODIES[next(k) % 4], settings),
        "serialise the answer": lambda: entities_json(calls[next(k) % 4], results[next(k) % 4]),
        "response object": lambda: json_response(200, b"[]"),
        "request id": lambda: request_id_of(scope),
        "access-log line": access_line,
        "metrics (request, queue, batch)": record_metrics,
    }
    return {name: _per_call_us(step, rounds) for name, step in steps.items()}


def _received(sock: socket.socket) -> bytes:
    """The next bytes from `sock`; ConnectionError when the server has closed it."""
    data = sock.recv(65536)
    if not data:
        raise ConnectionError("the server closed the connection")
    return data


def _post_keep_alive(sock: socket.socket, body: bytes, buffer: bytearray) -> int:
    """POST /predict on an open keep-alive socket; the status (reads exactly one response)."""
    sock.sendall(
        b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
        % (len(body), body)
    )
    while b"\r\n\r\n" not in buffer:
        buffer += _received(sock)
    head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
    length = int(
        next(line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")).split(b":")[1]
    )
    while len(rest) < length:
        rest += _received(sock)
    buffer[:] = rest[length:]
    return int(head.split(b" ", 2)[1])


def measure_server(
    bundle: str, requests: int, log: Path, precision: str | None = "fp32", rounds: int = 3
) -> dict[str, float]:
    """The server process's CPU microseconds per request (and less the model's) over a keep-alive connection.

    Server and in-process model run the same graph (`precision`; None: the bundle's default) on one thread.
    The two are measured by turns, `rounds` blocks of `requests` each, and the best block of each is
    kept: on a shared machine a slow spell then hits both alike instead of one of them.
    """
    from ner_export.runtime import NerModel

    model = NerModel.load(bundle, precision=precision, threads=1)
    for text in TEXTS * 25:
        model.predict([text])
    model_blocks: list[float] = []
    server_blocks: list[float] = []
    server = ServerProcess(bundle, [*(["--precision", precision] if precision else []), "--threads", "1"], log)
    try:
        for _ in range(rounds):
            started = time.process_time()
            for i in range(requests):
                model.predict([TEXTS[i % len(TEXTS)]])
            model_blocks.append((time.process_time() - started) / requests * 1e6)
            # a connection of its own per block: the server closes one left idle through the model's block
            with socket.create_connection(("127.0.0.1", server.port)) as sock:
                buffer = bytearray()
                for i in range(100):
                    _post_keep_alive(sock, BODIES[i % len(BODIES)], buffer)
                before = cpu_seconds(server.proc.pid) or 0.0
                for i in range(requests):
                    assert _post_keep_alive(sock, BODIES[i % len(BODIES)], buffer) == 200
                server_blocks.append(((cpu_seconds(server.proc.pid) or 0.0) - before) / requests * 1e6)
    finally:
        server.stop()
    return {
        "server_us": min(server_blocks),
        "model_us": min(model_blocks),
        "beyond_model_us": min(server_blocks) - min(model_blocks),
        "rounds": rounds,
        "server_us_by_round": [round(x, 1) for x in server_blocks],
        "model_us_by_round": [round(x, 1) for x in model_blocks],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle")
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--server", action="store_true", help="also measure end to end through a real server")
    parser.add_argument("--out", help="write the figures here as JSON")
    args = parser.parse_args(argv)
    figures: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "processor": platform.processor()},
        "in_process": measure_in_process(args.bundle, args.requests, access_log=True),
        "in_process_no_access_log": measure_in_process(args.bundle, args.requests, access_log=False),
        "steps_us": measure_steps(args.bundle, rounds=args.requests * 3),
    }
    if args.server:
        figures["server"] = measure_server(args.bundle, args.requests, Path(args.out or "overhead").with_suffix(".log"))
    text = json.dumps(figures, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    sys.exit(main())
