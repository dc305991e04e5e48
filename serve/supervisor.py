"""`supervise_workers`: `ner-export serve --workers N`, N worker processes on one socket, kept alive.

This process binds the socket (`server.run`) and only supervises: it starts that many workers
(`worker.worker_main`), each serving the same socket with its own model, batcher and `threads`, and
the kernel spreads connections among the workers that are listening. The socket stays open here
whatever happens to a worker, so the port never refuses a connection while one worker is left.

A worker that dies (any exit, or a signal such as the OOM killer's SIGKILL) is replaced by a new
process, which loads and warms its model before it takes connections; a worker that stops answering
(its heartbeat, from its event loop and from its batcher, older than `heartbeat_timeout`) is killed
with SIGKILL and replaced the same way. The others serve throughout. Requests inside a worker when it
dies fail with it (their connections close); nothing else does. Replacements start with a back-off:
at once after the first death within `crash_loop_window`, then after 1, 2, 4 ... (at most 30) seconds,
and `crash_loop_deaths` deaths within `crash_loop_window` seconds end the service: the other workers
drain and `run` raises with one line saying why, so the orchestrator sees a service that cannot stay
up rather than one restarting forever. The log says which worker died, how (exit status or signal
name), and when its replacement was ready; `/metrics` counts the replacements started
(`ner_serve_worker_restarts_total`, by reason: exit, signal, heartbeat).

A worker that cannot load its model at the first start is a configuration error, not a crash: the
service stops at once and `run` raises naming the worker, as a lone process would. A replacement
that cannot load counts as a death (the same model loaded before, so the cause is the machine's, and
may pass), and the crash-loop limit bounds the retries.

SIGTERM/SIGINT is forwarded once to every worker, which drains (`uvicorn_runner`), and pending
replacements are dropped; a second signal is forwarded too, and stops the workers at once. `/metrics`
is summed over the workers (`metrics`); `/health`, `/ready` and `/info` describe the worker that took
the connection.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import multiprocessing.connection
import os
import shutil
import signal
import socket
import tempfile
import time
from collections import deque
from dataclasses import dataclass, replace
from typing import Any

from prometheus_client import multiprocess

from ner_export.runtime import available_cpus
from ner_export.runtime.errors import NerExportError

from .heartbeat import READY, Heartbeat
from .metrics import RESTARTS_FILE
from .settings import ServeSettings
from .worker import worker_main

__all__ = ["supervise_workers", "death_account"]

log = logging.getLogger("ner_export.serve")

POLL_SECONDS = 0.1  # how often the supervisor looks at its workers' exits and heartbeats
MAX_BACKOFF_SECONDS = 30.0


def death_account(exitcode: int | None) -> str:
    """How a process ended, in words: "exited with status 3" or "was killed by SIGKILL"."""
    if exitcode is not None and exitcode < 0:
        try:
            return f"was killed by {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"was killed by signal {-exitcode}"
    return f"exited with status {exitcode}"


@dataclass
class _Slot:
    """One worker position: its current process, and what the supervisor knows about it."""

    index: int
    process: Any = None
    heartbeat: Heartbeat | None = None
    generation: int = 0  # 0: the first start
    started_at: float = 0.0
    ready: bool = False
    killed_for: str | None = None  # why the supervisor killed it (no heartbeat), if it did
    replaces: str | None = None  # the death this process replaces, for its ready line
    died_at: float = 0.0
    restart_at: float | None = None  # when its replacement is due
    restart_reason: str = ""

    @property
    def name(self) -> str:
        return f"ner-serve-worker-{self.index}"


class _Supervisor:
    """The workers' life cycle; `supervise_workers` runs one to the end."""

    def __init__(self, bundle_dir: str, settings: ServeSettings, sock: socket.socket, metrics_dir: str) -> None:
        self.bundle_dir = bundle_dir
        self.settings = settings
        self.sock = sock
        self.metrics_dir = metrics_dir
        self.context = multiprocessing.get_context("spawn")
        self.slots = [_Slot(k) for k in range(settings.workers)]
        self.deaths: deque[float] = deque()
        self.restarts: dict[str, int] = {}
        self.stopping = False
        self.stop_deadline = float("inf")
        self.failures: list[str] = []

    # ------------------------------------------------------------------ starting and stopping
    def start(self, slot: _Slot) -> None:
        slot.heartbeat = Heartbeat(self.context)
        slot.process = self.context.Process(
            target=worker_main,
            args=(self.bundle_dir, self.settings, self.sock, slot.index, os.getpid(), slot.heartbeat),
            name=slot.name,
            daemon=False,
        )
        slot.process.start()
        slot.started_at, slot.ready, slot.killed_for, slot.restart_at = time.monotonic(), False, None, None

    def forward(self, sig: int, frame: Any) -> None:
        """SIGTERM/SIGINT: every worker drains (a second signal: stops at once); no replacement starts."""
        log.info(
            "%s: %s %d workers",
            signal.Signals(sig).name,
            "stopping" if self.stopping else "draining",
            len(self.running()),
        )
        self.stop_all()

    def stop_all(self) -> None:
        if not self.stopping:
            self.stopping = True
            self.stop_deadline = time.monotonic() + 2 * self.settings.graceful_timeout + 10
        for slot in self.slots:
            slot.restart_at = None
            if slot.process is not None and slot.process.is_alive():
                os.kill(slot.process.pid, signal.SIGTERM)

    def running(self) -> list[_Slot]:
        return [slot for slot in self.slots if slot.process is not None]

    # ------------------------------------------------------------------ the loop
    def watch(self) -> None:
        """Until every worker has stopped: reap the dead, replace them, note the ready, kill the silent."""
        while self.running() or any(slot.restart_at is not None for slot in self.slots):
            sentinels = [slot.process.sentinel for slot in self.running()]
            if sentinels:
                multiprocessing.connection.wait(sentinels, timeout=POLL_SECONDS)
            else:
                time.sleep(POLL_SECONDS)
            now = time.monotonic()
            for slot in self.slots:
                if slot.process is not None and not slot.process.is_alive():
                    self.reap(slot, now)
                elif slot.process is not None:
                    self.look_at(slot, now)
                elif slot.restart_at is not None and now >= slot.restart_at and not self.stopping:
                    self.replace(slot)
            if self.stopping and now > self.stop_deadline:
                for slot in self.running():
                    self.failures.append(f"{slot.name} (pid {slot.process.pid}) did not stop; killed")
                    slot.process.kill()
                self.stop_deadline = float("inf")

    def look_at(self, slot: _Slot, now: float) -> None:
        """A live worker: note when it becomes ready; kill it when its heartbeat has gone silent."""
        assert slot.heartbeat is not None
        if not slot.ready:
            if slot.heartbeat.state == READY:
                slot.ready = True
                took = now - slot.started_at
                if slot.replaces is None:
                    log.info("worker %d (pid %d) ready in %.2f s", slot.index, slot.process.pid, took)
                else:
                    log.info(
                        "worker %d (pid %d) ready in %.2f s, %.2f s after %s; it takes connections now",
                        slot.index,
                        slot.process.pid,
                        took,
                        now - slot.died_at,
                        slot.replaces,
                    )
            return
        silence, which = slot.heartbeat.silence()
        if not self.stopping and slot.killed_for is None and silence > self.settings.heartbeat_timeout:
            timeout = self.settings.heartbeat_timeout
            slot.killed_for = f"no {which} heartbeat for {silence:.1f} s (--heartbeat-timeout {timeout:g})"
            log.error("worker %d (pid %d) unresponsive: %s; killing it", slot.index, slot.process.pid, slot.killed_for)
            slot.process.kill()

    def reap(self, slot: _Slot, now: float) -> None:
        """A worker has ended: a clean stop, a failed first start (the service stops), or a death to replace."""
        process = slot.process
        process.join()
        multiprocess.mark_process_dead(process.pid, self.metrics_dir)  # drops its live gauges
        slot.process = None
        how = f"was killed as unresponsive ({slot.killed_for})" if slot.killed_for else death_account(process.exitcode)
        account = f"{slot.name} (pid {process.pid}) {how}"
        if self.stopping:
            if process.exitcode != 0:
                self.failures.append(f"{slot.name} (pid {process.pid}) exited with status {process.exitcode}")
            return
        assert slot.heartbeat is not None
        if slot.generation == 0 and not (slot.ready or slot.heartbeat.state == READY):
            self.failures.append(f"{slot.name} (pid {process.pid}) exited with status {process.exitcode}")
            log.error("%s before it was ready; stopping the other workers", account)
            self.stop_all()
            return
        self.deaths.append(now)
        while self.deaths and now - self.deaths[0] > self.settings.crash_loop_window:
            self.deaths.popleft()
        if len(self.deaths) >= self.settings.crash_loop_deaths:
            reason = (
                f"worker crash loop: {len(self.deaths)} worker deaths within {self.settings.crash_loop_window:g} s "
                f"(--crash-loop-deaths {self.settings.crash_loop_deaths}, --crash-loop-window "
                f"{self.settings.crash_loop_window:g}); the last: {account}"
            )
            log.error("%s; draining the other workers", reason)
            self.failures.append(reason)
            self.stop_all()
            return
        backoff = 0.0 if len(self.deaths) == 1 else min(MAX_BACKOFF_SECONDS, 2.0 ** (len(self.deaths) - 2))
        log.error("%s; a replacement starts in %g s", account, backoff)
        slot.died_at, slot.restart_at = now, now + backoff
        slot.replaces = f"pid {process.pid} {how}"
        slot.restart_reason = "heartbeat" if slot.killed_for else ("signal" if (process.exitcode or 0) < 0 else "exit")

    def replace(self, slot: _Slot) -> None:
        slot.generation += 1
        self.start(slot)
        self.restarts[slot.restart_reason] = self.restarts.get(slot.restart_reason, 0) + 1
        _write_atomically(os.path.join(self.metrics_dir, RESTARTS_FILE), json.dumps(self.restarts))
        log.info("worker %d: replacement pid %d started, loading its model", slot.index, slot.process.pid)

    def kill_all(self) -> None:
        for slot in self.running():
            if slot.process.is_alive():
                slot.process.kill()
                slot.process.join(5)


def _write_atomically(path: str, text: str) -> None:
    with open(path + ".tmp", "w", encoding="utf-8") as out:
        out.write(text)
    os.replace(path + ".tmp", path)


def supervise_workers(
    bundle_dir: str | os.PathLike[str], settings: ServeSettings, sock: socket.socket, url: str
) -> None:
    """Serve `sock` from `settings.workers` supervised worker processes until SIGTERM/SIGINT (module
    docstring); NerExportError when a worker failed its first start, the workers crash-looped, or a
    worker's drain did not end cleanly."""
    threads = settings.threads or max(1, available_cpus() // settings.workers)
    metrics_dir = tempfile.mkdtemp(prefix="ner-export-serve-metrics-")
    saved_env = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir  # inherited by the spawned workers
    supervisor = _Supervisor(str(bundle_dir), replace(settings, threads=threads), sock, metrics_dir)
    previous = {sig: signal.signal(sig, supervisor.forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        for slot in supervisor.slots:
            supervisor.start(slot)
        log.info(
            "serving %s on %s with %d workers of %d threads (supervisor pid %d, workers %s); "
            "each takes connections once its model is warm",
            bundle_dir,
            url,
            settings.workers,
            threads,
            os.getpid(),
            ", ".join(str(slot.process.pid) for slot in supervisor.slots),
        )
        supervisor.watch()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        supervisor.kill_all()
        if saved_env is None:
            os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
        else:
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = saved_env
        shutil.rmtree(metrics_dir, ignore_errors=True)
    if supervisor.failures:
        crash_loop = [f for f in supervisor.failures if f.startswith("worker crash loop")]
        if crash_loop:
            raise NerExportError(crash_loop[0])
        raise NerExportError("; ".join(supervisor.failures) + " (the log above says why)")
