"""`ServeLaunch` and `launch`: what `ner-export serve` starts, on which engine, with which options.

One set of options (the `ServeSettings` fields plus the Ray engine's `RayOptions` and cluster address)
is split here, once, between the two engines: the local engine (`serve.server.run`, uvicorn in this
process) takes only `ServeSettings`; the Ray engine (`serve.ray_app.run`, a Ray Serve application)
takes both, and refuses the settings only the local engine uses. Every refusal (a Ray option given to
the local engine, a setting the chosen engine cannot use, a bad value) is a `ValueError` raised when
the `ServeLaunch` is built, before a model loads or Ray starts, so the CLI reports it as a usage
error. `serve.ray_app`, which imports ray, is imported only when the Ray engine launches: serving
locally never needs ray.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from .ray_options import RayOptions, split_settings
from .server import run
from .settings import ENGINES, ServeSettings

__all__ = ["ENGINES", "ServeLaunch", "launch"]

_RAY_ONLY = ("address", *(f.name for f in fields(RayOptions)))  # in the order the refusal names them


@dataclass(frozen=True)
class ServeLaunch:
    """A serve run: `bundle`, the `engine`, the Ray cluster `address` (Ray only; None starts a local Ray on
    127.0.0.1), and `options`: `ServeSettings` fields and `RayOptions` fields by name (None: not given).
    `settings` and `ray_options` are `options` split for the engine, filled in when it is built."""

    bundle: str
    engine: str = ENGINES[0]
    address: str | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    settings: ServeSettings = field(init=False)
    ray_options: dict[str, Any] = field(init=False)

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise ValueError(f"engine {self.engine!r} is not one of {', '.join(ENGINES)}")
        given = {"address": self.address, **self.options}
        ray_options = {name: given[name] for name in _RAY_ONLY[1:] if given.get(name) is not None}
        settings_options = {name: value for name, value in self.options.items() if name not in _RAY_ONLY}
        if self.engine == "local":
            wrong = [f"--{name.replace('_', '-')}" for name in _RAY_ONLY if given.get(name) is not None]
            if wrong:
                raise ValueError(f"{', '.join(wrong)} only apply to --engine ray")
            settings = ServeSettings.from_kwargs(None, **settings_options)
        else:
            settings, _ = split_settings(None, None, {**ray_options, **settings_options})
        object.__setattr__(self, "settings", settings)
        object.__setattr__(self, "ray_options", ray_options)


def launch(plan: ServeLaunch) -> None:
    """Serve `plan.bundle` on its engine until SIGTERM/SIGINT, then drain and return."""
    if plan.engine == "local":
        run(plan.bundle, plan.settings)
        return
    from .ray_app import run as run_on_ray

    run_on_ray(plan.bundle, plan.settings, address=plan.address, **plan.ray_options)
