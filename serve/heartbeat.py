"""`Heartbeat`: what a worker process tells its supervisor without a message: its state and its pulse.

Three doubles in shared memory, one block per worker, written by the worker and read by the
supervisor: the worker's state (loading, ready, failed), and the last `time.monotonic()` at which its
event loop and its batcher thread each showed they still run. Shared memory rather than a pipe: a
worker whose event loop is stuck cannot send anything, and the supervisor must still see how long it
has been silent; a plain store of a double needs no lock, and a torn read can only happen on a value
being overwritten by a newer one. CLOCK_MONOTONIC is one clock for every process on the machine, so
the supervisor compares the beats with its own `time.monotonic()`.

The event loop beats from a task every `BEAT_INTERVAL` seconds; the batcher beats between batches and
while it waits for work, so a long model call is silent: `heartbeat_timeout` must exceed the longest
batch. The beats count only once the worker is ready: loading a model has no pulse to give.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

__all__ = ["Heartbeat", "BEAT_INTERVAL", "LOADING", "READY", "FAILED"]

BEAT_INTERVAL = 1.0  # seconds between two beats of a live event loop or an idle batcher
LOADING, READY, FAILED = 0.0, 1.0, 2.0
_STATE, _LOOP, _BATCHER = 0, 1, 2


class Heartbeat:
    """One worker's state and last beats, in shared memory made by `context` (a multiprocessing context)."""

    def __init__(self, context: Any) -> None:
        self._values = context.RawArray("d", 3)
        now = time.monotonic()
        self._values[_LOOP] = self._values[_BATCHER] = now

    # ------------------------------------------------------------------ the worker's side
    def set_state(self, state: float) -> None:
        now = time.monotonic()
        self._values[_LOOP] = self._values[_BATCHER] = now  # the silence counts from readiness, not from the start
        self._values[_STATE] = state

    def beat_loop(self) -> None:
        self._values[_LOOP] = time.monotonic()

    def beat_batcher(self) -> None:
        self._values[_BATCHER] = time.monotonic()

    async def keep_beating(self) -> None:
        """The event loop's pulse: a task that beats every `BEAT_INTERVAL` seconds until cancelled."""
        while True:
            self.beat_loop()
            await asyncio.sleep(BEAT_INTERVAL)

    # ------------------------------------------------------------------ the supervisor's side
    @property
    def state(self) -> float:
        return float(self._values[_STATE])

    def silence(self) -> tuple[float, str]:
        """Seconds since the quieter of the two beats, and which one it is ("event loop" or "batcher")."""
        now = time.monotonic()
        loop, batcher = now - self._values[_LOOP], now - self._values[_BATCHER]
        return (loop, "event loop") if loop >= batcher else (batcher, "batcher")
