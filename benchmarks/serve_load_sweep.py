"""One server configuration under a sweep of offered rates: (a), (b) or (r) of a serve load run.

A sweep starts the server, offers each rate for `step_seconds`, then narrows the gap between the highest
rate that met the p99 limit and the lowest above it that did not: first at each target rate inside that
gap (a target such as 0.45x (c) is then measured at its own rate, not judged by the nearest bisection
point below it), then by bisecting `refine` times; for (a) it adds a step at 10%
of the best rate and one at twice the saturation rate (the overload step). Every step records the
server's own counters over the step (the difference of two `/metrics` reads) and the CPU the server's
process tree and this client spent on it, per answered request: what bounds a rate is then measured in
the same run rather than guessed.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .serve_load_client import offered_rate_step, run_async
from .serve_load_config import TARGETS, LoadConfig
from .serve_load_report import format_ms, format_number
from .serve_load_server import ServerProcess, cpu_seconds

__all__ = ["sweep", "meets_p99", "best_rate", "with_server_metrics", "cpu_use"]

Say = Callable[[str], None]


def with_server_metrics(step: dict[str, Any], before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """`step` with the server's batches, batch sizes, inference and queue-wait means and RSS over it."""

    def delta(name: str) -> float:
        return after.get(name, 0) - before.get(name, 0)

    buckets = {
        le: after["batch_size_buckets"].get(le, 0) - before["batch_size_buckets"].get(le, 0)
        for le in after.get("batch_size_buckets", {})
    }
    batches = delta("ner_serve_batch_size_count")
    texts = delta("ner_serve_batch_size_sum")
    waits = delta("ner_serve_queue_wait_seconds_count")
    step["server"] = {
        "batches": batches,
        "mean_batch_size": texts / batches if batches else None,
        "batch_size_cumulative": buckets,  # Prometheus buckets: batches with size <= le
        "mean_inference_ms": 1000 * delta("ner_serve_inference_duration_seconds_sum") / batches if batches else None,
        "mean_queue_wait_ms": 1000 * delta("ner_serve_queue_wait_seconds_sum") / waits if waits else None,
        "rss_mb_before": before.get("process_resident_memory_bytes", 0) / 2**20,
        "rss_mb_after": after.get("process_resident_memory_bytes", 0) / 2**20,
    }
    return step


def cpu_use(
    step: dict[str, Any], before: tuple[float | None, float], after: tuple[float | None, float]
) -> dict[str, float | None]:
    """CPU the server (its process tree) and the client (this process) spent on the step, per answered request."""
    answered = step["sent"] - step["transport_errors"] - step["unfinished"]
    server = after[0] - before[0] if after[0] is not None and before[0] is not None else None
    client = after[1] - before[1]
    return {
        "server_s": server,
        "client_s": client,
        "server_ms_per_request": 1000 * server / answered if server is not None and answered else None,
        "client_ms_per_request": 1000 * client / answered if answered else None,
    }


def meets_p99(step: dict[str, Any], limit_ms: float) -> bool:
    """A clean step (no 429, 5xx, transport error or unfinished request) at 90% of its rate, p99 within the limit."""
    p99 = step["latency_ms"]["p99"]
    clean = (
        step["status_429"] == 0
        and step["status_5xx"] == 0
        and step["transport_errors"] == 0
        and step["unfinished"] == 0
    )
    return clean and p99 is not None and p99 <= limit_ms and step["achieved_rps"] >= 0.9 * step["offered_rps"]


def best_rate(steps: list[dict[str, Any]], limit_ms: float) -> float | None:
    """The highest offered rate whose step meets the p99 limit, else None."""
    good = [s["offered_rps"] for s in steps if meets_p99(s, limit_ms)]
    return max(good) if good else None


class _Measurer:
    """Runs the steps of one sweep against one server, with the same random stream throughout."""

    def __init__(self, config: LoadConfig, label: str, server: ServerProcess, bodies: list[bytes], say: Say) -> None:
        self.config, self.label, self.server, self.bodies, self.say = config, label, server, bodies, say
        self.rng = random.Random(config.seed)

    def __call__(self, rate: float, kind: str = "sweep") -> dict[str, Any]:
        config, server = self.config, self.server
        before = server.metrics()
        cpu_before = (cpu_seconds(server.proc.pid), time.process_time())
        step = run_async(
            offered_rate_step(
                server.port,
                self.bodies,
                rate,
                config.step_seconds,
                config.max_requests_per_step,
                config.connections,
                self.rng,
            )
        )
        cpu_after = (cpu_seconds(server.proc.pid), time.process_time())
        step = with_server_metrics(step, before, server.metrics())
        step["cpu"] = cpu_use(step, cpu_before, cpu_after)
        step["kind"] = kind
        latency = step["latency_ms"]
        self.say(
            f"({self.label}) {kind} {rate:8.1f} req/s offered: {step['achieved_rps']:8.1f} ok/s, "
            f"p50 {format_ms(latency['p50'])} p99 {format_ms(latency['p99'])} ms, "
            f"429 {step['status_429']}, 5xx {step['status_5xx']}, errors {step['transport_errors']}, "
            f"mean batch {format_number(step['server']['mean_batch_size'])}"
        )
        return step


def _bracket(steps: list[dict[str, Any]], limit_ms: float) -> tuple[float, float] | None:
    """The highest rate meeting the p99 limit and the lowest above it missing it; None without both."""
    good = [s["offered_rps"] for s in steps if meets_p99(s, limit_ms)]
    if not good:
        return None
    bad = [s["offered_rps"] for s in steps if not meets_p99(s, limit_ms) and s["offered_rps"] > max(good)]
    return (max(good), min(bad)) if bad else None


def _refine(
    steps: list[dict[str, Any]], measure: _Measurer, times: int, limit_ms: float, target_rates: tuple[float, ...] = ()
) -> None:
    """Narrow the gap between the best rate meeting the p99 limit and the lowest above it missing it: each
    target rate inside it first (lowest first), then `times` bisections."""
    for rate in sorted(target_rates):
        gap = _bracket(steps, limit_ms)
        if gap is not None and gap[0] < rate < gap[1]:
            steps.append(measure(rate, "target rate"))
    for _ in range(times):
        gap = _bracket(steps, limit_ms)
        if gap is None:
            break
        steps.append(measure(sum(gap) / 2, "refine"))


def sweep(
    config: LoadConfig,
    label: str,
    args: list[str],
    bodies: list[bytes],
    rates: list[float],
    out: Path,
    say: Say,
    extra: bool,
    saturation_hint: float,
    target_rates: tuple[float, ...] = (),
) -> dict[str, Any]:
    """Start a server with `args`, offer it `rates` (then refine, `target_rates` first), stop it; with
    `extra`, the low-load and overload steps too. Returns the steps, the best rate meeting the p99 limit
    and the server's exit status."""
    server = ServerProcess(
        config.bundle, args, out / f"{config.name}-{label}.log", start_timeout=240 if "ray" in args else 60
    )
    say(f"({label}) ready in {server.ready_s:.1f} s")
    measure = _Measurer(config, label, server, bodies, say)
    steps: list[dict[str, Any]] = []
    try:
        info = server.info()
        for rate in rates:
            steps.append(measure(rate))
        limit = TARGETS["p99_limit_ms"]
        _refine(steps, measure, config.refine, limit, target_rates)
        result: dict[str, Any] = {
            "args": args,
            "info": {k: info.get(k) for k in ("batch_invariant", "batching", "graph", "runtime", "engine")},
            "steps": steps,
            "ready_s": server.ready_s,
        }
        best = best_rate(steps, limit)
        result["best_rate_p99_ok"] = best
        if extra:
            if best:
                result["low_load"] = measure(0.1 * best, "10% of best")
            saturation = max([s["achieved_rps"] for s in steps] + [saturation_hint])
            result["saturation_rps"] = saturation
            result["overload"] = measure(TARGETS["overload_factor"] * saturation, "2x saturation")
    finally:
        exit_status = server.stop()
    result["exit_status"] = exit_status
    return result
