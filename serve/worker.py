"""`worker_main`: one supervised worker process of `ner-export serve --workers N`.

A worker is spawned (not forked, so it inherits no half-initialised onnxruntime) with the listening
socket the supervisor owns, and runs its own app, model and batcher on it. It loads and warms its
model before its server starts, so a replacement takes no connection it would have to answer 503:
until it listens, the other workers take them all. It tells the supervisor its state and shows its
pulse through its `Heartbeat` (the event loop's beat from a task, the batcher's between batches).
It runs in its own session, so a terminal's Ctrl-C reaches only the supervisor, which forwards one
SIGTERM; and it drains by itself if the supervisor dies.

For tests only, `NER_EXPORT_SERVE_FAULT` makes a worker fail once it is ready, the way a crash or a
hang would look to the supervisor: `exit` (exits with status 3 at once) or `hang` (stops itself with
SIGSTOP, every thread frozen, the process alive); `ACTION@PATH` applies it only to the one worker that
deletes the file PATH first. Nothing sets it but a test.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
import threading
import time
from typing import Any

from ner_export.runtime.errors import NerExportError

from .app import create_app
from .heartbeat import FAILED, LOADING, READY, Heartbeat
from .log_setup import configure_logging
from .settings import ServeSettings
from .uvicorn_runner import serve_until_stopped

__all__ = ["worker_main", "FAULT_ENV"]

log = logging.getLogger("ner_export.serve")

FAULT_ENV = "NER_EXPORT_SERVE_FAULT"  # test fault injection (module docstring)


def worker_main(
    bundle_dir: str, settings: ServeSettings, sock: socket.socket, index: int, parent: int, heartbeat: Heartbeat
) -> None:
    """One worker process: load and warm the model, then serve `sock` until SIGTERM; status 1 on failure."""
    os.setsid()  # a terminal's Ctrl-C goes to the supervisor, which forwards one SIGTERM
    configure_logging(settings.log_level)
    threading.Thread(target=_watch_parent, args=(index, parent), name="ner-serve-watch-parent", daemon=True).start()
    app = create_app(bundle_dir, settings)
    if not _load_before_serving(app.state.service, heartbeat):
        os._exit(0)  # stopped while loading: nothing was accepted; the loading thread cannot be joined
    _inject_fault_for_tests(heartbeat, index)
    try:
        serve_until_stopped(app, settings, sock, heartbeat)
    except NerExportError as exc:
        log.error("worker %d (pid %d): %s", index, os.getpid(), exc)
        sys.exit(1)


def _load_before_serving(service: Any, heartbeat: Heartbeat) -> bool:
    """Load and warm the model before listening; False when SIGTERM/SIGINT came first. A model that cannot
    load is reported (state FAILED) and ends the process with status 1."""
    settled = threading.Event()
    stop = threading.Event()

    def stop_loading(sig: int, frame: Any) -> None:
        stop.set()
        settled.set()

    previous = {sig: signal.signal(sig, stop_loading) for sig in (signal.SIGTERM, signal.SIGINT)}
    service.on_ready = settled.set
    service.on_failure = settled.set
    service.batcher.on_beat = heartbeat.beat_batcher
    heartbeat.set_state(LOADING)
    service.start()
    while not settled.wait(0.5):
        pass
    for sig, handler in previous.items():
        signal.signal(sig, handler)
    if service.load_error is not None:
        heartbeat.set_state(FAILED)  # the service has logged why
        sys.exit(1)
    return not stop.is_set()


def _watch_parent(index: int, parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(1.0)
    log.error("worker %d: the supervisor (pid %d) is gone; draining", index, parent)
    os.kill(os.getpid(), signal.SIGTERM)


def _inject_fault_for_tests(heartbeat: Heartbeat, index: int) -> None:
    """Apply `NER_EXPORT_SERVE_FAULT` (module docstring) once this worker is ready; nothing when unset."""
    spec = os.environ.get(FAULT_ENV, "")
    if not spec:
        return
    action, _, claim = spec.partition("@")
    if action not in ("exit", "hang"):
        raise NerExportError(f"{FAULT_ENV}={spec!r}: expected exit or hang, optionally @PATH")
    if claim:
        try:
            os.unlink(claim)
        except FileNotFoundError:
            return  # another worker took it

    def fail_when_ready() -> None:
        while heartbeat.state != READY:
            time.sleep(0.01)
        log.warning("worker %d (pid %d): %s=%s, a test fault: %s now", index, os.getpid(), FAULT_ENV, spec, action)
        if action == "exit":
            os._exit(3)
        os.kill(os.getpid(), signal.SIGSTOP)

    threading.Thread(target=fail_when_ready, name="ner-serve-test-fault", daemon=True).start()
