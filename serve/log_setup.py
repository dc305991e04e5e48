"""`configure_logging(level)`: where a serving process's log lines go, for both engines.

One stderr handler and one line format on the service's logger and uvicorn's, which stop propagating
to the root logger, so no line is written twice. uvicorn's own access log is turned off:
`ner_export.serve.access` writes one line per request, with its id. That logger hands its records to a
queue, as they are, and a thread of its own formats and writes them: the event loop, which answers
every client, pays for making the record only, not for formatting it or for the write to stderr (a
pipe that may be slow to drain). The queue is emptied at exit. The Ray engine's driver uses this too;
its replicas log through Ray's own files and format.
"""

from __future__ import annotations

import atexit
import logging
import logging.handlers
import queue
import sys

__all__ = ["configure_logging"]

_listeners: list[logging.handlers.QueueListener] = []


class _QueueAsIs(logging.handlers.QueueHandler):
    """Queues the record unformatted (its arguments are plain values): the listener's thread formats it."""

    def prepare(self, record: logging.LogRecord) -> logging.LogRecord:
        return record


def configure_logging(level: str) -> None:
    """Send `ner_export.serve` and `uvicorn` log lines at `level` and above to stderr, timestamped; the
    access log through a queue and a writer thread."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    for name in ("ner_export.serve", "uvicorn"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level.upper())
        logger.propagate = False
    logging.getLogger("uvicorn.access").disabled = True  # ner_export.serve.access writes one line per request
    while _listeners:
        _listeners.pop().stop()
    lines: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    listener = logging.handlers.QueueListener(lines, handler)
    listener.start()
    _listeners.append(listener)
    access = logging.getLogger("ner_export.serve.access")
    access.handlers[:] = [_QueueAsIs(lines)]
    access.propagate = False


@atexit.register
def _flush_access_log() -> None:
    while _listeners:
        _listeners.pop().stop()
