"""`run(bundle_dir, **settings)`: serve with uvicorn, and drain on SIGTERM/SIGINT before exiting 0.

uvicorn's own shutdown closes the listener at once and, since 0.29, re-raises the signal after it,
so the process dies of SIGTERM instead of exiting 0. This server takes the signal itself: `/ready`
turns 503 and new predictions get 503 (with `Connection: close`, so load balancers and clients move
on), the requests already accepted finish, for at most `graceful_timeout` seconds (and at least
`shutdown_delay`, the time a load balancer needs to see the 503), and only then does uvicorn close the
listener and the idle connections. A second signal stops at once. The socket is bound before uvicorn
starts, so `port=0` works and the log names the real port.

With `workers` > 1 this process only supervises: it binds the socket, starts that many worker
processes (spawned, so none inherits a half-initialised onnxruntime), each serving the same socket with
its own model, batcher and `threads` (default: the CPUs / workers), and the kernel spreads connections
among them. Why processes rather than more threads: on a few cores, one model call on every core
stalls whenever the event loop or the client takes a core from one of its threads (the others wait for
it at each parallel step), while single-threaded calls in separate processes, each with its own event
loop, do not wait for each other (PERFORMANCE.md, serving). The supervisor forwards SIGTERM/SIGINT once
to every worker, which drains as above; the workers run in their own session, so a terminal's Ctrl-C
reaches only the supervisor, and each stops by itself if the supervisor dies. A worker that exits
unexpectedly (a model that cannot load, a crash) stops the others and the service exits non-zero, for
the orchestrator to restart it whole. `/metrics` is summed over the workers (`metrics`); `/health`,
`/ready` and `/info` describe the worker that took the connection.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import multiprocessing.connection
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from dataclasses import replace
from typing import Any

from prometheus_client import multiprocess

from ner_export.runtime import available_cpus
from ner_export.runtime.errors import MissingDependencyError, NerExportError

from .app import create_app
from .log_setup import configure_logging
from .settings import ServeSettings

try:
    import uvicorn
except ImportError:  # pragma: no cover - exercised only without the serve extra
    raise MissingDependencyError("uvicorn", "serve", "ner-export serve") from None

__all__ = ["run"]

log = logging.getLogger("ner_export.serve")


class _DrainingServer(uvicorn.Server):
    """uvicorn.Server whose first SIGTERM/SIGINT drains the service instead of closing the listener."""

    def __init__(self, config: uvicorn.Config, service: Any) -> None:
        super().__init__(config)
        self.service = service
        self.abandoned = 0
        self._draining: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)

    def handle_exit(self, sig: int, frame: Any) -> None:
        # not recorded in self._captured_signals: uvicorn would re-raise it and the exit status would not be 0
        if self.service.load_error is not None:  # already stopping, quickly: forcing would only add a traceback
            self.should_exit = True
            return
        if self._loop is None or self._draining is not None:
            if self.should_exit:
                self.force_exit = True
            self.should_exit = True
            return
        self._loop.call_soon_threadsafe(self._start_drain, signal.Signals(sig).name)

    def _start_drain(self, name: str) -> None:
        if self._draining is None:
            self._draining = asyncio.ensure_future(self._drain(name))

    async def _drain(self, name: str) -> None:
        service, settings = self.service, self.service.settings
        service.begin_drain()
        log.info(
            "%s: draining (/ready 503, new requests 503); %d requests in flight, %d texts queued; "
            "closing in at most %g s",
            name,
            service.in_flight,
            service.batcher.queued,
            settings.graceful_timeout,
        )
        started = time.monotonic()
        while time.monotonic() - started < settings.graceful_timeout and (
            service.in_flight > 0 or time.monotonic() - started < settings.shutdown_delay
        ):
            await asyncio.sleep(0.01)
        if service.in_flight:
            self.abandoned = service.abandon_all()
            log.error(
                "graceful timeout (%g s): %d requests still in flight are abandoned (answered 503)",
                settings.graceful_timeout,
                self.abandoned,
            )
            waited = time.monotonic()
            while service.in_flight > 0 and time.monotonic() - waited < 1.0:  # let their 503s go out
                await asyncio.sleep(0.01)
        else:
            log.info("drained in %.2f s: every accepted request answered", time.monotonic() - started)
        self.should_exit = True


def _bind_listener(host: str, port: int) -> socket.socket:
    family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[
        0
    ]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise NerExportError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.set_inheritable(True)
    return sock


def run(bundle_dir: str | os.PathLike[str], settings: ServeSettings | None = None, **overrides: Any) -> None:
    """Serve a bundle until SIGTERM/SIGINT, then drain and return (exit status 0 from the CLI).

    Raises `NerExportError` when the model cannot be loaded or requests were still waiting at the
    graceful timeout (they are answered 503), so the CLI exits non-zero with one line saying why.
    With `workers` > 1, serves from that many processes (module docstring).
    """
    settings = ServeSettings.from_kwargs(settings, **overrides)
    app = create_app(bundle_dir, settings)  # a bad bundle path fails here, before logging is set up
    configure_logging(settings.log_level)
    sock = _bind_listener(settings.host, settings.port)
    if settings.workers > 1:
        try:
            _supervise_workers(bundle_dir, settings, sock)
        finally:
            sock.close()
        return
    log.info(
        "serving %s on %s (pid %d); GET /ready turns 200 once the model is warm",
        bundle_dir,
        _listening_url(sock),
        os.getpid(),
    )
    try:
        _serve_until_stopped(app, settings, sock)
    finally:
        sock.close()


def _listening_url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _serve_until_stopped(app: Any, settings: ServeSettings, sock: socket.socket) -> None:
    """Run uvicorn on `sock` with the drain; NerExportError for a failed load or abandoned requests."""
    service = app.state.service
    config = uvicorn.Config(
        app,
        log_config=None,
        access_log=False,
        lifespan="on",
        log_level=settings.log_level,
        timeout_graceful_shutdown=2,
        server_header=False,  # the drain above is the graceful part
    )
    server = _DrainingServer(config, service)
    service.on_failure = lambda: setattr(server, "should_exit", True)  # a model that cannot load ends the process
    server.run(sockets=[sock])
    if service.load_error is not None:
        raise NerExportError(f"cannot serve {service.bundle_dir}: {service.load_error}")
    if server.abandoned:
        raise NerExportError(
            f"graceful timeout of {settings.graceful_timeout:g} s: {server.abandoned} accepted requests were abandoned"
        )


def _supervise_workers(bundle_dir: str | os.PathLike[str], settings: ServeSettings, sock: socket.socket) -> None:
    """Start `settings.workers` worker processes on `sock`, forward signals, wait for them all."""
    threads = settings.threads or max(1, available_cpus() // settings.workers)
    worker_settings = replace(settings, threads=threads)
    metrics_dir = tempfile.mkdtemp(prefix="ner-export-serve-metrics-")
    saved_env = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir  # inherited by the spawned workers
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(
            target=_worker_main,
            args=(str(bundle_dir), worker_settings, sock, k, os.getpid()),
            name=f"ner-serve-worker-{k}",
            daemon=False,
        )
        for k in range(settings.workers)
    ]
    stopping = threading.Event()

    def forward(sig: int, frame: Any) -> None:
        name = signal.Signals(sig).name
        log.info("%s: %s %d workers", name, "stopping" if stopping.is_set() else "draining", len(workers))
        stopping.set()
        for worker in workers:
            if worker.pid is not None and worker.is_alive():
                os.kill(worker.pid, signal.SIGTERM)  # a second signal is forwarded too: the workers stop at once

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGTERM, signal.SIGINT)}
    failures: list[str] = []
    try:
        for worker in workers:
            worker.start()
        log.info(
            "serving %s on %s with %d workers of %d threads (supervisor pid %d, workers %s); "
            "GET /ready turns 200 once the model is warm",
            bundle_dir,
            _listening_url(sock),
            len(workers),
            threads,
            os.getpid(),
            ", ".join(str(w.pid) for w in workers),
        )
        running = list(workers)
        while running:
            multiprocessing.connection.wait([w.sentinel for w in running], timeout=1.0)
            for worker in [w for w in running if not w.is_alive()]:
                running.remove(worker)
                worker.join()
                multiprocess.mark_process_dead(worker.pid, metrics_dir)  # drops its live gauges
                if worker.exitcode != 0 or not stopping.is_set():
                    failures.append(f"{worker.name} (pid {worker.pid}) exited with status {worker.exitcode}")
                    if not stopping.is_set():
                        log.error("%s; stopping the other workers", failures[-1])
                        forward(signal.SIGTERM, None)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for worker in workers:
            if worker.is_alive():
                worker.kill()
                worker.join(5)
        if saved_env is None:
            os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
        else:
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = saved_env
        shutil.rmtree(metrics_dir, ignore_errors=True)
    if failures:
        raise NerExportError("; ".join(failures) + " (the log above says why)")


def _worker_main(bundle_dir: str, settings: ServeSettings, sock: socket.socket, index: int, parent: int) -> None:
    """One worker process: its own app, model and batcher on the shared socket; exit status 1 on failure."""
    os.setsid()  # a terminal's Ctrl-C goes to the supervisor, which forwards one SIGTERM
    configure_logging(settings.log_level)

    def watch_parent() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        log.error("worker %d: the supervisor (pid %d) is gone; draining", index, parent)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch_parent, name="ner-serve-watch-parent", daemon=True).start()
    try:
        _serve_until_stopped(create_app(bundle_dir, settings), settings, sock)
    except NerExportError as exc:
        log.error("worker %d (pid %d): %s", index, os.getpid(), exc)
        sys.exit(1)
