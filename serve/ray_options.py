"""`RayOptions` and the Ray Serve deployment options that `ServeSettings` and they mean.

How Ray Serve runs the replicas (how many, or autoscaling; CPUs each; requests each takes at once)
is kept apart from `ServeSettings`, which says how each replica loads, batches and limits, so that one
set of keyword arguments (`build_app(bundle, num_replicas=2, max_wait_ms=2)`) is split by name and
every `ServeSettings` check still applies. Settings that only the local engine uses (`workers` and its
supervision, `streams`, `shutdown_delay`) are refused here rather than silently ignored. Nothing here imports Ray,
so the options can be checked where Ray is not installed.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

from ner_export.runtime.checks import require_positive_int

from .settings import ServeSettings

__all__ = ["RayOptions", "split_settings", "replica_resources", "deployment_options"]


@dataclass(frozen=True)
class RayOptions:
    """How Ray Serve runs the replicas; everything about the model, batching and limits is `ServeSettings`."""

    num_replicas: int | None = None  # fixed replica count; None: 1, or what autoscaling_config decides
    autoscaling_config: dict[str, Any] | None = (
        None  # Ray's AutoscalingConfig fields (min_replicas, max_replicas, target_ongoing_requests, ...)
    )
    num_cpus: float | None = None  # CPUs reserved per replica (ray_actor_options); None: `threads`, else 1
    max_ongoing_requests: int | None = (
        None  # requests Ray sends one replica at once; None: max_queued_texts + max_batch_size
    )

    def __post_init__(self) -> None:
        if self.num_replicas is not None:
            require_positive_int("num_replicas", self.num_replicas)
        if self.num_replicas is not None and self.autoscaling_config is not None:
            raise ValueError(
                "num_replicas and autoscaling_config exclude each other: autoscaling decides the number of replicas"
            )
        if self.autoscaling_config is not None and not isinstance(self.autoscaling_config, dict):
            raise ValueError(
                "autoscaling_config must be a dict of Ray's AutoscalingConfig fields, "
                f"got {type(self.autoscaling_config).__name__}"
            )
        if self.num_cpus is not None and (
            not isinstance(self.num_cpus, (int, float)) or isinstance(self.num_cpus, bool) or self.num_cpus < 0
        ):
            raise ValueError(f"num_cpus={self.num_cpus!r} must be a number >= 0")
        if self.max_ongoing_requests is not None:
            require_positive_int("max_ongoing_requests", self.max_ongoing_requests)


RAY_OPTION_NAMES = frozenset(f.name for f in fields(RayOptions))


def split_settings(
    settings: ServeSettings | None, options: RayOptions | None, overrides: dict[str, Any]
) -> tuple[ServeSettings, RayOptions]:
    """`overrides` split by name into `RayOptions` and `ServeSettings` fields (an unknown name is a TypeError)."""
    ray_kwargs = {name: overrides.pop(name) for name in list(overrides) if name in RAY_OPTION_NAMES}
    options = RayOptions(**{**asdict(options or RayOptions()), **ray_kwargs})
    settings = ServeSettings.from_kwargs(settings, **overrides)
    if settings.workers != 1:
        raise ValueError("workers is not used by the ray engine: Ray Serve runs replicas (num_replicas)")
    defaults = ServeSettings()
    supervision = [
        name
        for name in ("crash_loop_deaths", "crash_loop_window", "heartbeat_timeout")
        if getattr(settings, name) != getattr(defaults, name)
    ]
    if supervision:
        raise ValueError(
            f"{', '.join(supervision)} supervise the local engine's --workers: Ray Serve replaces replicas itself"
        )
    if settings.streams not in (None, 1):
        raise ValueError("streams is not used by the ray engine: a replica runs one @serve.batch call at a time")
    if settings.shutdown_delay:
        raise ValueError(
            "shutdown_delay is not used by the ray engine: Ray Serve stops routing to a replica before it drains "
            "(graceful_timeout becomes the deployment's graceful_shutdown_timeout_s)"
        )
    return settings, options


def replica_resources(settings: ServeSettings, options: RayOptions) -> tuple[float, int]:
    """(CPUs reserved per replica, onnxruntime threads per replica), each defaulting to the other, else 1."""
    num_cpus = float(options.num_cpus) if options.num_cpus is not None else float(settings.threads or 1)
    threads = settings.threads or max(1, math.ceil(num_cpus))
    return num_cpus, threads


def deployment_options(settings: ServeSettings, options: RayOptions) -> dict[str, Any]:
    """The Ray Serve deployment options these settings mean (`Deployment.options(**...)`)."""
    num_cpus, _ = replica_resources(settings, options)
    actor: dict[str, Any] = {"num_cpus": num_cpus}
    if settings.device == "cuda":
        actor["num_gpus"] = 1
    found: dict[str, Any] = {
        "ray_actor_options": actor,
        # enough for a full queue and a running batch, so that overload reaches the replica's 429, not Ray's queue
        "max_ongoing_requests": options.max_ongoing_requests or settings.max_queued_texts + settings.max_batch_size,
        "graceful_shutdown_timeout_s": settings.graceful_timeout,
        "logging_config": {"log_level": settings.log_level.upper(), "enable_access_log": settings.access_log},
    }
    if options.autoscaling_config is not None:
        found["autoscaling_config"] = options.autoscaling_config
    else:
        found["num_replicas"] = options.num_replicas or 1
    return found
