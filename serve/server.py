"""`run(bundle_dir, **settings)`: serve with uvicorn, and drain on SIGTERM/SIGINT before exiting 0.

The socket is bound here, before anything serves, so `port=0` works and the log names the real port.
With one worker this process serves it (`uvicorn_runner`: the drain on SIGTERM/SIGINT); with
`workers` > 1 it owns the socket and supervises that many worker processes on it (`supervisor`: a
dead or hung worker is replaced, a crash loop ends the service). Why processes rather than more
threads: on a few cores, one model call on every core stalls whenever the event loop or the client
takes a core from one of its threads (the others wait for it at each parallel step), while
single-threaded calls in separate processes, each with its own event loop, do not wait for each other
(PERFORMANCE.md, serving).
"""

from __future__ import annotations

import logging
import os
import socket
from typing import Any

from ner_export.runtime.errors import NerExportError

from .app import create_app
from .log_setup import configure_logging
from .settings import ServeSettings
from .supervisor import supervise_workers
from .uvicorn_runner import serve_until_stopped

__all__ = ["run"]

log = logging.getLogger("ner_export.serve")


def bind_listener(host: str, port: int) -> socket.socket:
    """A listening TCP socket on `host`:`port` that worker processes can inherit; NerExportError if taken."""
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

    Raises `NerExportError` when the model cannot be loaded, requests were still waiting at the
    graceful timeout (they are answered 503), or, with `workers` > 1, the workers crash-looped, so the
    CLI exits non-zero with one line saying why.
    """
    settings = ServeSettings.from_kwargs(settings, **overrides)
    app = create_app(bundle_dir, settings)  # a bad bundle path fails here, before logging is set up
    configure_logging(settings.log_level)
    sock = bind_listener(settings.host, settings.port)
    try:
        if settings.workers > 1:
            supervise_workers(bundle_dir, settings, sock, listening_url(sock))
            return
        log.info(
            "serving %s on %s (pid %d); GET /ready turns 200 once the model is warm",
            bundle_dir,
            listening_url(sock),
            os.getpid(),
        )
        serve_until_stopped(app, settings, sock)
    finally:
        sock.close()


def listening_url(sock: socket.socket) -> str:
    """The http:// URL of a bound socket, with the port the kernel chose for port 0."""
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
