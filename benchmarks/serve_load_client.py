"""The open-loop load generator: Poisson arrivals at one offered rate, latency from the scheduled time.

Requests are scheduled by a Poisson process and sent at their time whether or not earlier ones have
been answered, and latency is measured from the *scheduled* send time, so a server (or a client) that
falls behind shows up as latency instead of silently lowering the load (no coordinated omission). The
client shares the machine's cores with the server, so it is kept light: raw asyncio streams over a
small keep-alive connection pool, request bytes prebuilt, responses parsed only for status and length,
uvloop when installed. How late the client itself started each request is recorded too (client lag).
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import numpy as np

from .serve_load_config import HOST, MAX_IDLE_S

__all__ = ["ConnectionPool", "post", "offered_rate_step", "run_async", "percentiles"]

Connection = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class ConnectionPool:
    """Keep-alive HTTP/1.1 connections to one port; at most `size` open, extra callers wait."""

    def __init__(self, port: int, size: int) -> None:
        self.port, self.size = port, size
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = []  # and when released
        self.open = 0
        self.freed = asyncio.Condition()

    async def acquire(self) -> Connection:
        """An idle connection, or a new one while fewer than `size` are open; else wait for one."""
        async with self.freed:
            while True:
                while not self.idle and self.open >= self.size:
                    await self.freed.wait()
                if not self.idle:
                    break
                reader, writer, released = self.idle.pop()
                # the server closes a connection idle for its keep-alive timeout (uvicorn: 5 s); reusing
                # one then fails with no fault of the server's, so drop it as an HTTP client does
                if time.monotonic() - released < MAX_IDLE_S:
                    return reader, writer
                writer.close()
                self.open -= 1
            self.open += 1
        try:
            return await asyncio.open_connection(HOST, self.port)
        except OSError:
            await self.release(None)
            raise

    async def release(self, conn: Connection | None) -> None:
        """Give a connection back for reuse, or None for one that was closed."""
        async with self.freed:
            if conn is None:
                self.open -= 1
            else:
                self.idle.append((*conn, time.monotonic()))
            self.freed.notify()

    def close(self) -> None:
        for _, writer, _ in self.idle:
            writer.close()
        self.idle.clear()


async def post(pool: ConnectionPool, request: bytes) -> int:
    """Send one prebuilt request on a pooled connection; its status (the body is read and dropped)."""
    conn = await pool.acquire()
    reader, writer = conn
    try:
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        length, close = 0, False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and value.strip().lower() == b"close":
                close = True
        await reader.readexactly(length)
    except BaseException:
        writer.close()
        await pool.release(None)
        raise
    if close:
        writer.close()
        await pool.release(None)
    else:
        await pool.release(conn)
    return status


def poisson_schedule(rate: float, seconds: float, max_requests: int, rng: random.Random) -> list[float]:
    """Send times (s from the start) of a Poisson process at `rate` over `seconds`, at most `max_requests`."""
    offsets: list[float] = []
    total = 0.0
    while len(offsets) < max_requests:
        total += rng.expovariate(rate)
        if total > seconds:
            break
        offsets.append(total)
    return offsets


async def offered_rate_step(
    port: int, bodies: list[bytes], rate: float, seconds: float, max_requests: int, connections: int, rng: random.Random
) -> dict[str, Any]:
    """One offered rate: Poisson arrivals for `seconds` (at most `max_requests`), latency from schedule."""
    offsets = poisson_schedule(rate, seconds, max_requests, rng)
    pool = ConnectionPool(port, connections)
    loop = asyncio.get_running_loop()
    for conn in [await pool.acquire() for _ in range(min(8, connections))]:  # a warm pool, as in steady state
        await pool.release(conn)
    records: list[tuple[int, float]] = []  # (status or 0 for a transport error, latency s)
    lags: list[float] = []  # how late the client started each request (its own scheduling delay)

    async def one(scheduled: float, request: bytes) -> None:
        lags.append(loop.time() - scheduled)
        try:
            status = await post(pool, request)
        except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
            status = 0
        records.append((status, loop.time() - scheduled))

    tasks = []
    start = loop.time() + 0.05
    for offset in offsets:
        at = start + offset
        delay = at - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        body = bodies[rng.randrange(len(bodies))]
        tasks.append(asyncio.ensure_future(one(at, body)))
    window = max(offsets[-1] if offsets else seconds, 1e-3)
    _, unfinished = await asyncio.wait(tasks, timeout=30) if tasks else (set(), set())
    for task in unfinished:
        task.cancel()
    pool.close()
    return step_summary(rate, len(offsets), window, records, lags, len(unfinished))


def step_summary(
    rate: float, sent: int, window: float, records: list[tuple[int, float]], lags: list[float], unfinished: int
) -> dict[str, Any]:
    """A step's counts by status and its latency percentiles (answered, refused, client lag), in ms."""
    statuses = [status for status, _ in records]
    ok = np.array([latency for status, latency in records if status == 200]) * 1000
    refused = np.array([latency for status, latency in records if status == 429]) * 1000
    return {
        "offered_rps": rate,
        "sent": sent,
        "window_s": window,
        "achieved_rps": len(ok) / window,
        "ok": len(ok),
        "status_429": statuses.count(429),
        "status_5xx": sum(1 for s in statuses if 500 <= s < 600),
        "other_status": sum(1 for s in statuses if s not in (0, 200, 429) and not 500 <= s < 600),
        "transport_errors": statuses.count(0),
        "unfinished": unfinished,
        "latency_ms": percentiles(ok),
        "latency_429_ms": percentiles(refused),
        "client_lag_ms": percentiles(np.array(lags) * 1000),
    }


def run_async(coroutine: Any) -> Any:
    """asyncio.run, on uvloop when installed (it comes with uvicorn[standard]): a lighter client."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


def percentiles(values: np.ndarray) -> dict[str, float | None]:
    """p50, p95, p99, p99.9 and max of `values`; all None when there are none."""
    if len(values) == 0:
        return {"p50": None, "p95": None, "p99": None, "p99.9": None, "max": None}
    p50, p95, p99, p999 = np.percentile(values, [50, 95, 99, 99.9]).tolist()
    return {"p50": p50, "p95": p95, "p99": p99, "p99.9": p999, "max": float(values.max())}
