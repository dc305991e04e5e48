"""`ner_export.serve.ray_app`: the HTTP API of `ner-export serve` as a Ray Serve application.

For users whose platform is already Ray: replicas, autoscaling, placement and rolling updates come
from Ray Serve, the wire format from `protocol` (the same parser, answers, JSON errors and /info body as
`ner-export serve`), the model from the runtime. Trade-offs:

- One `NerModel` per replica, loaded and warmed in the constructor. Ray routes to a replica only once it
  is constructed, so a replica that answers at all is ready: `/ready` is 200, and a bundle that cannot
  load fails the deployment (Ray retries the constructor) instead of serving 503s.
- Batching is Ray's `@serve.batch`, one item per text (or, on a graph that is not batch-invariant, one
  item per request and batches of one request, so answers equal offline `predict(texts)`). Ray forms the
  next batch while the model is still busy (read from Ray 2.60's `_BatchQueue`: batches wait on a
  semaphore after they are formed), so under load with `max_wait_ms=0` its batches stay small; a few
  ms of wait fill them. `ner-export serve`'s own batcher takes whatever is queued the moment the model is
  free, which is one reason it costs less on a small model.
- Model calls run in one worker thread per replica (onnxruntime releases the GIL), off the event loop
  that receives requests; a padded-token budget is enforced by the runtime (`max_batch_tokens`).
- Plain `__call__(Request)` routing rather than a FastAPI ingress: no per-request dependency machinery;
  the price is no OpenAPI page (the plain server has one).
- Limits as in `ner-export serve`, per replica: 413/422 from `protocol`, 429 (with Retry-After) when
  this replica's waiting texts would exceed `max_queued_texts` or would take longer than `max_queue_ms`
  (estimated from texts and the replica's measured texts/s), 504 at `request_timeout`. A timed-out or
  disconnected request is cancelled, and `@serve.batch` never computes cancelled items. No `/metrics`:
  Ray exports its own `serve_*` metrics (batch sizes included); `/info` carries this replica's counters.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import os
import signal
import socket
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ner_export.runtime import NerModel, available_cpus
from ner_export.runtime.errors import InputError, MissingDependencyError, NerExportError
from ner_export.runtime.manifest import MANIFEST_NAME, BundleManifest

from .app import log_batching_decision, warm_up
from .protocol import RequestError, entities_json, error_body, info_body, parse_predict, too_large
from .settings import ServeSettings

try:
    import ray
    from ray import serve
    from starlette.requests import Request
    from starlette.responses import Response
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
    "start_local_ray",
]

log = logging.getLogger("ray.serve.ner_export")  # a child of Ray's serve logger: its replica log files and format
driver_log = logging.getLogger("ner_export.serve")
_HEAVY = ("torch", "transformers", "optimum")


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
        if self.num_replicas is not None and (
            not isinstance(self.num_replicas, int) or isinstance(self.num_replicas, bool) or self.num_replicas < 1
        ):
            raise ValueError(f"num_replicas={self.num_replicas!r} must be a positive integer")
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
        if self.max_ongoing_requests is not None and (
            not isinstance(self.max_ongoing_requests, int) or self.max_ongoing_requests < 1
        ):
            raise ValueError(f"max_ongoing_requests={self.max_ongoing_requests!r} must be a positive integer")


_RAY_FIELDS = frozenset(f.name for f in fields(RayOptions))


def split_settings(
    settings: ServeSettings | None, options: RayOptions | None, overrides: dict[str, Any]
) -> tuple[ServeSettings, RayOptions]:
    """`overrides` split by name into `RayOptions` and `ServeSettings` fields (an unknown name is a TypeError)."""
    ray_kwargs = {name: overrides.pop(name) for name in list(overrides) if name in _RAY_FIELDS}
    options = RayOptions(**{**asdict(options or RayOptions()), **ray_kwargs})
    settings = ServeSettings.from_kwargs(settings, **overrides)
    if settings.workers != 1:
        raise ValueError("workers is not used by the ray engine: Ray Serve runs replicas (num_replicas)")
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


@dataclass(eq=False)
class _Work:
    """Texts waiting for one model call: one text (batching across requests) or a whole request."""

    texts: list[str]
    aggregation: str
    created: float = field(default_factory=time.perf_counter)
    started: bool = False  # taken into a batch, or given up: no longer counted as waiting


class NerReplica:
    """One replica: one `NerModel`, batching through `@serve.batch`, the HTTP API of `ner-export serve`."""

    def __init__(self, bundle_dir: str, settings: dict[str, Any], threads: int) -> None:
        started = time.perf_counter()
        s = self.settings = ServeSettings(**settings)
        self.bundle_dir = Path(bundle_dir)
        self.manifest = BundleManifest.read(self.bundle_dir)
        self.graph = self.manifest.graph_for(s.device, s.precision, s.backend)
        self.bundle_sha256 = hashlib.sha256((self.bundle_dir / MANIFEST_NAME).read_bytes()).hexdigest()
        self.threads = threads
        self.model = NerModel.load(self.bundle_dir, **s.model_options(threads))
        warm_up(self.model, s.max_batch_size)
        self.cross_request = self.model.batch_invariant or s.allow_batch_dependent
        log.info(
            "model loaded and warmed in %.2f s (%s graph %s, %d threads)",
            time.perf_counter() - started,
            self.model.precision,
            self.graph.file,
            threads,
        )
        log_batching_decision(log, self.model, s.allow_batch_dependent)
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ner-model")
        self._queued = 0  # texts accepted by this replica and not yet in a batch
        self._texts_per_second = 0.0  # smoothed, for Retry-After
        self.stats = {"batches": 0, "texts": 0, "inference_seconds": 0.0, "queue_wait_seconds": 0.0}
        self._predict_texts.set_max_batch_size(s.max_batch_size)
        self._predict_texts.set_batch_wait_timeout_s(s.max_wait_ms / 1000)

    # ------------------------------------------------------------------ batching
    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.0)  # both reset per replica from the settings
    async def _predict_texts(self, works: list[_Work]) -> list[Any]:
        """Across requests: one text per item, as many as Ray's batch holds, in one model call."""
        return await self._run(works)

    @serve.batch(max_batch_size=1, batch_wait_timeout_s=0.0)
    async def _predict_request(self, works: list[_Work]) -> list[Any]:
        """Within one request only (a graph that is not batch-invariant): one request per model call."""
        return await self._run(works)

    async def _run(self, works: list[_Work]) -> list[Any]:
        now = time.perf_counter()
        for work in works:
            if not work.started:
                work.started = True
                self._queued -= len(work.texts)
            self.stats["queue_wait_seconds"] += (now - work.created) * len(work.texts)
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._compute, works)

    def _compute(self, works: list[_Work]) -> list[Any]:
        """In the model thread: each work's entity lists, or the exception that failed it alone."""
        s = self.settings
        started = time.perf_counter()
        results: list[Any] = [None] * len(works)
        groups: dict[str, list[int]] = {}
        for i, work in enumerate(works):
            groups.setdefault(work.aggregation, []).append(i)
        for aggregation, members in groups.items():
            texts = [text for i in members for text in works[i].texts]
            try:
                found = self.model.predict(texts, batch_size=s.max_batch_size, aggregation=aggregation)
            except Exception:  # noqa: BLE001 - run each work alone below, so one bad request fails only itself
                for i in members:
                    try:
                        results[i] = self.model.predict(
                            works[i].texts, batch_size=s.max_batch_size, aggregation=aggregation
                        )
                    except Exception as exc:  # noqa: BLE001 - becomes this request's 422/500
                        results[i] = exc
                continue
            at = 0
            for i in members:
                n = len(works[i].texts)
                results[i] = found[at : at + n]
                at += n
        elapsed = time.perf_counter() - started
        n_texts = sum(len(work.texts) for work in works)
        self.stats["batches"] += 1
        self.stats["texts"] += n_texts
        self.stats["inference_seconds"] += elapsed
        rate = n_texts / max(elapsed, 1e-6)
        self._texts_per_second = rate if self._texts_per_second == 0 else 0.8 * self._texts_per_second + 0.2 * rate
        return results

    # ------------------------------------------------------------------ HTTP
    async def __call__(self, request: Request) -> Response:
        path = _path(request.scope)
        method = request.method
        if path in ("/", "/predict"):
            if method != "POST":
                return _json(405, error_body("Method Not Allowed", "method_not_allowed"), {"Allow": "POST"})
            return await self._predict(request)
        if path in ("/health", "/ready", "/info"):
            if method not in ("GET", "HEAD"):
                return _json(405, error_body("Method Not Allowed", "method_not_allowed"), {"Allow": "GET, HEAD"})
            if path == "/health":
                return _json(200, b'{"status": "ok"}')
            if path == "/ready":
                return _json(200, b'{"status": "ready"}')
            return _json(200, json.dumps(self.info()).encode("utf-8"))
        if path == "/metrics":
            return _json(
                404,
                error_body(
                    "no /metrics on the ray engine: "
                    "Ray Serve exports its own serve_* metrics through Ray's metrics endpoint",
                    "not_found",
                ),
            )
        return _json(404, error_body("Not Found", "not_found"))

    async def _predict(self, request: Request) -> Response:
        s = self.settings
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > s.payload_limit:
            return _error(too_large(int(length), s.payload_limit))
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > s.payload_limit:
                return _error(too_large(len(body), s.payload_limit))
        try:
            call = parse_predict(bytes(body), s)
        except RequestError as exc:
            return _error(exc)
        if not call.texts:
            return _json(200, entities_json(call, []))
        n = len(call.texts)
        rate = self._texts_per_second
        wait = self._queued / rate if rate > 0 else 0.0  # estimated from texts: a replica has no token estimates
        reason = s.refusal(self._queued, n, wait)
        if reason is not None:
            why = (
                f"limit {s.max_queued_texts}, --max-queued-texts"
                if reason == "queue_full"
                else f"about {wait * 1000:.0f} ms of work, limit {s.max_queue_ms:g} ms, --max-queue-ms"
            )
            retry = max(1, min(60, math.ceil(wait))) if rate > 0 else 1
            return _error(
                RequestError(
                    429,
                    f"queue full: {self._queued} texts waiting in this replica ({why}); retry in {retry} s",
                    "overloaded",
                    reason,
                    {"Retry-After": str(retry)},
                )
            )
        if self.cross_request:
            works, batched = [_Work([text], call.aggregation) for text in call.texts], self._predict_texts
        else:
            works, batched = [_Work(call.texts, call.aggregation)], self._predict_request
        self._queued += n
        tasks = [asyncio.ensure_future(batched(work)) for work in works]
        try:
            done, pending = await asyncio.wait(tasks, timeout=s.request_timeout)
            if pending:
                dropped = sum(len(work.texts) for work in works if not work.started)
                return _error(
                    RequestError(
                        504,
                        f"no answer within --request-timeout {s.request_timeout:g} s "
                        f"({dropped} of {n} texts still queued, now dropped)",
                        "timeout",
                        "timeout",
                    )
                )
            results: list[Any] = []
            for task in tasks:
                found = task.result()
                if isinstance(found, BaseException):
                    raise found
                results.extend(found)
        except InputError as exc:
            return _error(RequestError(422, " ".join(str(exc).split()), "validation", "invalid_request"))
        except Exception as exc:  # noqa: BLE001 - the model failed on this request
            log.error("prediction failed: %s: %s", type(exc).__name__, exc)
            return _error(RequestError(500, f"prediction failed: {type(exc).__name__}", "internal", "internal"))
        finally:  # timed out, failed or cancelled (client gone): what is still queued is never computed
            for task in tasks:
                task.cancel()
            for work in works:
                if not work.started:
                    work.started = True
                    self._queued -= len(work.texts)
        return _json(200, entities_json(call, results))

    def info(self) -> dict[str, Any]:
        body = info_body(
            status="ready",
            bundle_dir=self.bundle_dir,
            manifest=self.manifest,
            graph=self.graph,
            bundle_sha256=self.bundle_sha256,
            settings=self.settings,
            cross_request=self.cross_request,
            threads=self.threads,
            stride=self.model.stride,
            extra_versions=("ray",),
        )
        context = serve.get_replica_context()
        body["engine"] = "ray"
        body["replica"] = {
            "id": context.replica_id.unique_id,
            "deployment": context.deployment,
            "app": context.app_name,
            "pid": os.getpid(),
            "queued_texts": self._queued,
            **self.stats,
            "rss_bytes": _rss_bytes(),
            "imported": {name: name in sys.modules for name in _HEAVY},
        }
        return body


NerDeployment = serve.deployment(name="NerModel")(NerReplica)


def _path(scope: dict[str, Any]) -> str:
    """The request path below the application's route prefix."""
    path, root = scope.get("path", "/"), scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    return path or "/"


def _json(status: int, body: bytes, headers: dict[str, str] | None = None) -> Response:
    return Response(body, status_code=status, media_type="application/json", headers=headers)


def _error(exc: RequestError) -> Response:
    return _json(exc.status, error_body(exc.message, exc.error_type), exc.headers)


def _rss_bytes() -> int | None:
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


# --------------------------------------------------------------------------- building and running
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


def start_local_ray(num_cpus: int, *, quiet: bool = False) -> None:
    """Start a single-node Ray on this machine, bound to 127.0.0.1, with no dashboard.

    The twin of `ner_export.annotate.ray_engine.start_local_ray` (serve and annotate may not import each
    other; keep the two alike). Ray 2.60 rewrites `_node_ip_address="127.0.0.1"` to the machine's
    outward address, and its GCS, raylet and workers then listen on every interface, unless multi-node
    clustering is off: RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 turns it off (on Linux too), which is what a
    private, single-node Ray wants. Ray reads the variable when it is imported, so the constant is set as
    well; the variable also reaches the processes Ray starts. Each Serve replica still opens its own
    inter-deployment gRPC server on [::] (hard-coded in Ray Serve 2.60, no setting for it).
    """
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    from ray._private import ray_constants

    ray_constants.ENABLE_RAY_CLUSTER = False
    ray.init(
        num_cpus=num_cpus,
        include_dashboard=False,
        _node_ip_address="127.0.0.1",
        log_to_driver=not quiet,
        logging_level=logging.WARNING if quiet else logging.INFO,
    )


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


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
    `start_local_ray`), and shut down at the end; with one (`auto`, `ray://host:port`) the application
    is deployed on that cluster and only it is removed at the end. `settings.host`/`port` are the Serve
    HTTP proxy's (port 0 picks a free one); a Serve already running on a joined cluster keeps its own.
    """
    settings, options = split_settings(settings, None, dict(overrides))
    app = build_app(bundle_dir, settings, options=options)  # a bad bundle fails here, before Ray starts
    from .server import _configure_logging

    _configure_logging(settings.log_level)
    num_cpus, _ = replica_resources(settings, options)
    own_cluster = address is None
    if own_cluster:
        cpus = available_cpus()
        wanted = (options.num_replicas or 1) * num_cpus if options.autoscaling_config is None else num_cpus
        if wanted > cpus:
            raise NerExportError(
                f"{options.num_replicas or 1} replica(s) x {num_cpus:g} CPUs exceed the {cpus} CPUs of this machine; "
                "lower --num-replicas or --num-cpus, or join a cluster with --address"
            )
        start_local_ray(cpus)
    else:
        ray.init(address=address)
    try:
        port = settings.port or _free_port(settings.host)
        serve.start(http_options={"host": settings.host, "port": port})
        started = time.perf_counter()
        try:
            serve.run(app, name=app_name, route_prefix=route_prefix)
        except RuntimeError as exc:
            raise NerExportError(f"cannot serve {bundle_dir}: {' '.join(str(exc).split())}") from None
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
            num_cpus,
            time.perf_counter() - started,
            os.getpid(),
            "" if own_cluster else "; a Serve already running on the cluster keeps its own host and port",
        )
        stop = threading.Event()
        previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)}
        while not stop.wait(0.5):
            pass
        for sig, handler in previous.items():  # a second signal stops at once
            signal.signal(sig, handler)
        driver_log.info(
            "stopping: Ray Serve drains the replicas (at most --graceful-timeout %g s)", settings.graceful_timeout
        )
        if own_cluster:
            serve.shutdown()
        else:
            serve.delete(app_name)
    finally:
        ray.shutdown()
