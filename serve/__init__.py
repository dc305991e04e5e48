"""ner_export.serve: the bundle as a production HTTP service (`ner-export serve BUNDLE`).

    >>> from ner_export.serve import create_app
    >>> app = create_app("bundle/", precision="fp32", max_wait_ms=2)   # any ASGI server can run it
    >>> from ner_export.serve import run
    >>> run("bundle/", port=8080)                                      # uvicorn, with the SIGTERM drain

Hugging Face's token-classification protocol on `POST /` and `POST /predict`, dynamic micro-batching
of concurrent requests through one shared `NerModel` (never changing an answer), limits with JSON
errors, `/health`, `/ready`, `/info`, Prometheus `/metrics`, OpenAPI at `/openapi.json` and `/docs`, and
a graceful drain on SIGTERM/SIGINT. It imports nothing from this project but `ner_export.runtime`, so
a serving install (`ner-export[cpu,serve]`) has no torch. Needs the `serve` extra.

For users on Ray, `ner_export.serve.ray_app.build_app(bundle_dir, **settings)` is the same HTTP API as a
Ray Serve application (`ner-export serve --engine ray`; the `ray` extra); it is not imported here, so
this package never needs Ray.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import create_app
    from .server import run
    from .service import Service
    from .settings import ServeSettings

__all__ = ["create_app", "run", "ServeSettings", "Service"]

# Each public name loads its module on first use, so `ner_export.serve.settings` (the option choices the
# CLI offers) imports without fastapi and uvicorn.
_HOMES = {"create_app": ".app", "run": ".server", "Service": ".service", "ServeSettings": ".settings"}


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(_HOMES[name], __name__), name)
    globals()[name] = value
    return value
