"""`configure_logging(level)`: where a serving process's log lines go, for both engines.

One stderr handler and one line format on the service's logger and uvicorn's, which stop propagating
to the root logger, so no line is written twice. uvicorn's own access log is turned off:
`ner_export.serve.access` writes one line per request, with its id. The Ray engine's driver uses it
too; its replicas log through Ray's own files and format.
"""

from __future__ import annotations

import logging
import sys

__all__ = ["configure_logging"]


def configure_logging(level: str) -> None:
    """Send `ner_export.serve` and `uvicorn` log lines at `level` and above to stderr, timestamped."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    for name in ("ner_export.serve", "uvicorn"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(level.upper())
        logger.propagate = False
    logging.getLogger("uvicorn.access").disabled = True  # ner_export.serve.access writes one line per request
