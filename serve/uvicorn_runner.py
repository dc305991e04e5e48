"""`serve_until_stopped(app, settings, sock)`: uvicorn on a bound socket, draining on SIGTERM/SIGINT.

uvicorn's own shutdown closes the listener at once and, since 0.29, re-raises the signal after it,
so the process dies of SIGTERM instead of exiting 0. `DrainingServer` takes the signal itself:
`/ready` turns 503 and new predictions get 503 (with `Connection: close`, so load balancers and
clients move on), the requests already accepted finish, for at most `graceful_timeout` seconds (and at
least `shutdown_delay`, the time a load balancer needs to see the 503), and only then does uvicorn
close the listener and the idle connections. A second signal stops at once.

The same runner serves a lone process (`server.run`) and each supervised worker (`worker`); a worker
passes its `Heartbeat`, whose event-loop beat runs as a task on the server's loop.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
import time
from typing import Any

from ner_export.runtime.errors import MissingDependencyError, NerExportError

from .heartbeat import READY, Heartbeat
from .settings import ServeSettings

try:
    import uvicorn
except ImportError:  # pragma: no cover - exercised only without the serve extra
    raise MissingDependencyError("uvicorn", "serve", "ner-export serve") from None

__all__ = ["DrainingServer", "serve_until_stopped"]

log = logging.getLogger("ner_export.serve")


class DrainingServer(uvicorn.Server):
    """uvicorn.Server whose first SIGTERM/SIGINT drains the service instead of closing the listener."""

    def __init__(self, config: uvicorn.Config, service: Any, heartbeat: Heartbeat | None = None) -> None:
        super().__init__(config)
        self.service = service
        self.heartbeat = heartbeat
        self.abandoned = 0
        self.drain_cut = False  # set by a second signal during the drain
        self._draining: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        beating = asyncio.ensure_future(self._beat()) if self.heartbeat is not None else None
        try:
            await super().serve(sockets)
        finally:
            if beating is not None:
                beating.cancel()

    async def _beat(self) -> None:
        """Ready (taking connections) once uvicorn listens, then the event loop's pulse until cancelled."""
        assert self.heartbeat is not None
        while not self.started:
            await asyncio.sleep(0.01)
        self.heartbeat.set_state(READY)
        await self.heartbeat.keep_beating()

    def handle_exit(self, sig: int, frame: Any) -> None:
        # not recorded in self._captured_signals: uvicorn would re-raise it and the exit status would not be 0
        if self.service.load_error is not None:  # already stopping, quickly: forcing would only add a traceback
            self.should_exit = True
            return
        if self._loop is None or self._draining is not None:
            if self._draining is not None and not self.drain_cut:
                self.drain_cut = True  # the drain stops waiting and never claims every request was answered
                log.warning(
                    "%s again: stopping at once; %d requests in flight are cut",
                    signal.Signals(sig).name,
                    self.service.in_flight,
                )
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
        while (
            not self.drain_cut
            and time.monotonic() - started < settings.graceful_timeout
            and (service.in_flight > 0 or time.monotonic() - started < settings.shutdown_delay)
        ):
            await asyncio.sleep(0.01)
        if self.drain_cut:
            pass  # a second signal: handle_exit logged it, and uvicorn is already stopping
        elif service.in_flight:
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


def serve_until_stopped(
    app: Any, settings: ServeSettings, sock: socket.socket, heartbeat: Heartbeat | None = None
) -> None:
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
    server = DrainingServer(config, service, heartbeat)
    service.on_failure = lambda: setattr(server, "should_exit", True)  # a model that cannot load ends the process
    server.run(sockets=[sock])
    if service.load_error is not None:
        raise NerExportError(f"cannot serve {service.bundle_dir}: {service.load_error}")
    if server.abandoned:
        raise NerExportError(
            f"graceful timeout of {settings.graceful_timeout:g} s: {server.abandoned} accepted requests were abandoned"
        )
