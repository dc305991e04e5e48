"""`ner_export.serve.ray_app`: the HTTP API of `ner-export serve` as a Ray Serve application.

For users whose platform is already Ray: replicas, autoscaling, placement and rolling updates come
from Ray Serve; each replica (`ray_replica.NerReplica`) answers exactly as `ner-export serve` does.
This module holds the deployment, `build_app` (the application, for `serve.run` or a Serve config)
and `run` (what `ner-export serve --engine ray` calls); how the replicas run is `RayOptions`
(`ray_options`). The bundle is checked in the driver, before anything is deployed, and the bundle
directory must exist at the same path on every node that runs a replica.

Without a cluster address, `run` starts a private, single-node Ray on 127.0.0.1
(`ner_export.runtime.local_ray`) and shuts it down at the end; with one, it deploys on that cluster
and removes only its own application. Importing this module imports Ray; `ner_export.serve` does not.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any

from ner_export.runtime import available_cpus
from ner_export.runtime.errors import MissingDependencyError, NerExportError
from ner_export.runtime.local_ray import start_local_ray
from ner_export.runtime.manifest import BundleManifest

from .log_setup import configure_logging
from .ray_options import RayOptions, deployment_options, replica_resources, split_settings
from .ray_replica import NerReplica
from .settings import ServeSettings

try:
    import ray
    from ray import serve
except ImportError as exc:  # pragma: no cover - exercised only without the ray extra
    raise MissingDependencyError(exc.name or "ray", "ray", "ner-export serve --engine ray") from None

__all__ = [
    "RayOptions",
    "NerReplica",
    "NerDeployment",
    "build_app",
    "deployment_options",
    "split_settings",
    "replica_resources",
    "run",
]

driver_log = logging.getLogger("ner_export.serve")

NerDeployment = serve.deployment(name="NerModel")(NerReplica)


def build_app(
    bundle_dir: str | os.PathLike[str],
    settings: ServeSettings | None = None,
    *,
    options: RayOptions | None = None,
    **overrides: Any,
) -> Any:
    """The Ray Serve application (`serve.run(build_app("bundle/", num_replicas=2))`).

    `overrides` are `ServeSettings` fields (the knobs of `ner-export serve`) and `RayOptions` fields
    (num_replicas, autoscaling_config, num_cpus, max_ongoing_requests). The bundle's manifest and graph
    are checked here, in the driver, so a wrong path or precision fails before anything is deployed.
    The bundle directory must exist at the same path on every node that runs a replica.
    """
    settings, options = split_settings(settings, options, dict(overrides))
    bundle = Path(bundle_dir).resolve()
    BundleManifest.read(bundle).graph_for(settings.device, settings.precision, settings.backend)
    _, threads = replica_resources(settings, options)
    return NerDeployment.options(**deployment_options(settings, options)).bind(str(bundle), settings.to_dict(), threads)


def run(
    bundle_dir: str | os.PathLike[str],
    settings: ServeSettings | None = None,
    *,
    address: str | None = None,
    app_name: str = "ner-export",
    route_prefix: str = "/",
    **overrides: Any,
) -> None:
    """Serve a bundle on Ray Serve until SIGTERM/SIGINT, then delete the application and return.

    Without `address` a local Ray is started with this machine's CPUs, bound to 127.0.0.1 (see
    `ner_export.runtime.local_ray`), and shut down at the end; with one (`auto`, `ray://host:port`) the
    application is deployed on that cluster and only it is removed at the end. `settings.host`/`port` are
    the Serve HTTP proxy's (port 0 picks a free one); a Serve already running on a joined cluster keeps its own.
    """
    settings, options = split_settings(settings, None, dict(overrides))
    app = build_app(bundle_dir, settings, options=options)  # a bad bundle fails here, before Ray starts
    configure_logging(settings.log_level)
    own_cluster = address is None
    if own_cluster:
        start_local_ray(_local_ray_cpus(options, replica_resources(settings, options)[0]))
    else:
        ray.init(address=address)
    try:
        port = settings.port or free_port(settings.host)
        serve.start(http_options={"host": settings.host, "port": port})
        started = time.perf_counter()
        try:
            serve.run(app, name=app_name, route_prefix=route_prefix)
        except RuntimeError as exc:
            raise NerExportError(f"cannot serve {bundle_dir}: {' '.join(str(exc).split())}") from None
        _log_serving(bundle_dir, settings, options, port, route_prefix, time.perf_counter() - started, own_cluster)
        _wait_for_stop_signal()
        driver_log.info(
            "stopping: Ray Serve drains the replicas (at most --graceful-timeout %g s)", settings.graceful_timeout
        )
        if own_cluster:
            serve.shutdown()
        else:
            serve.delete(app_name)
    finally:
        ray.shutdown()


def _local_ray_cpus(options: RayOptions, replica_cpus: float) -> int:
    """The CPUs a local Ray gets (all of this machine's); NerExportError when the fixed replicas need more."""
    cpus = available_cpus()
    wanted = (options.num_replicas or 1) * replica_cpus if options.autoscaling_config is None else replica_cpus
    if wanted > cpus:
        raise NerExportError(
            f"{options.num_replicas or 1} replica(s) x {replica_cpus:g} CPUs exceed the {cpus} CPUs of this machine; "
            "lower --num-replicas or --num-cpus, or join a cluster with --address"
        )
    return cpus


def _log_serving(
    bundle_dir: str | os.PathLike[str],
    settings: ServeSettings,
    options: RayOptions,
    port: int,
    route_prefix: str,
    seconds: float,
    own_cluster: bool,
) -> None:
    """The startup line: where the application answers, its replicas, and how long deploying took."""
    shown = f"[{settings.host}]" if ":" in settings.host else settings.host
    replicas = (
        f"autoscaling {options.autoscaling_config}"
        if options.autoscaling_config
        else f"{options.num_replicas or 1} replica(s)"
    )
    driver_log.info(
        "serving %s on http://%s:%d%s (ray engine: %s, %g CPUs each, ready in %.1f s; pid %d)%s",
        bundle_dir,
        shown,
        port,
        route_prefix.rstrip("/"),
        replicas,
        replica_resources(settings, options)[0],
        seconds,
        os.getpid(),
        "" if own_cluster else "; a Serve already running on the cluster keeps its own host and port",
    )


def _wait_for_stop_signal() -> None:
    """Block until SIGTERM or SIGINT; a second signal then stops at once (the previous handlers are back)."""
    stop = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
    while not stop.wait(0.5):
        pass
    for sig, handler in previous.items():
        signal.signal(sig, handler)


def free_port(host: str) -> int:
    """A port free on `host` now, for the Serve HTTP proxy when port 0 is asked for."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])
