"""`run(bundle_dir, **settings)`: serve with uvicorn, and drain on SIGTERM/SIGINT before exiting 0.

uvicorn's own shutdown closes the listener at once and, since 0.29, re-raises the signal after it,
so the process dies of SIGTERM instead of exiting 0. This server takes the signal itself: `/ready`
turns 503 and new predictions get 503 (with `Connection: close`, so load balancers and clients move
on), the requests already accepted finish, for at most `graceful_timeout` seconds (and at least
`shutdown_delay`, the time a load balancer needs to see the 503), and only then does uvicorn close the
listener and the idle connections. A second signal stops at once. The socket is bound before uvicorn
starts, so `port=0` works and the log names the real port.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sys
import time
from typing import Any

from ner_export.runtime.errors import MissingDependencyError, NerExportError

from .app import create_app
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
        if self._loop is None or self._draining is not None or self.service.load_error is not None:
            if self.should_exit:
                self.force_exit = True
            self.should_exit = True
            return
        self._loop.call_soon_threadsafe(self._start_drain, signal.Signals(sig).name)

    def _start_drain(self, name: str) -> None:
        if self._draining is None:
            self._draining = asyncio.ensure_future(self._drain(name))

    async def _drain(self, name: str) -> None:
        service, s = self.service, self.service.settings
        service.begin_drain()
        log.info(
            "%s: draining (/ready 503, new requests 503); %d requests in flight, %d texts queued; "
            "closing in at most %g s",
            name,
            service.in_flight,
            service.batcher.queued,
            s.graceful_timeout,
        )
        started = time.monotonic()
        while time.monotonic() - started < s.graceful_timeout and (
            service.in_flight > 0 or time.monotonic() - started < s.shutdown_delay
        ):
            await asyncio.sleep(0.01)
        if service.in_flight:
            self.abandoned = service.abandon_all()
            log.error(
                "graceful timeout (%g s): %d requests still in flight are abandoned (answered 503)",
                s.graceful_timeout,
                self.abandoned,
            )
            waited = time.monotonic()
            while service.in_flight > 0 and time.monotonic() - waited < 1.0:  # let their 503s go out
                await asyncio.sleep(0.01)
        else:
            log.info("drained in %.2f s: every accepted request answered", time.monotonic() - started)
        self.should_exit = True


def _bind(host: str, port: int) -> socket.socket:
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


def _configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    for name in ("ner_export.serve", "uvicorn"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level.upper())
        logger.propagate = False
    logging.getLogger("uvicorn.access").disabled = True  # ner_export.serve.access writes one line per request


def run(bundle_dir: str | os.PathLike[str], settings: ServeSettings | None = None, **overrides: Any) -> None:
    """Serve a bundle until SIGTERM/SIGINT, then drain and return (exit status 0 from the CLI).

    Raises `NerExportError` when the model cannot be loaded or requests were still waiting at the
    graceful timeout (they are answered 503), so the CLI exits non-zero with one line saying why.
    """
    settings = ServeSettings.from_kwargs(settings, **overrides)
    app = create_app(bundle_dir, settings)  # a bad bundle path fails here, before logging is set up
    _configure_logging(settings.log_level)
    service = app.state.service
    sock = _bind(settings.host, settings.port)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
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
    log.info(
        "serving %s on http://%s:%d (pid %d); GET /ready turns 200 once the model is warm",
        bundle_dir,
        shown,
        port,
        os.getpid(),
    )

    service.on_failure = lambda: setattr(server, "should_exit", True)  # a model that cannot load ends the process
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
    if service.load_error is not None:
        raise NerExportError(f"cannot serve {bundle_dir}: {service.load_error}")
    if server.abandoned:
        raise NerExportError(
            f"graceful timeout of {settings.graceful_timeout:g} s: {server.abandoned} accepted requests were abandoned"
        )
