"""The verdicts of a serve load run: each target for (a), and Ray Serve's overhead against (a).

Each target row gives its value, its limit, whether it holds and by how much it misses, so a report
says how far off a missed target is rather than only that it missed. A missed rate target carries a
note on what bounds it, measured in the same run: the CPU a request took at (a)'s best rate (its
inverse caps the served rate at any latency) and the batching economy (e).
"""

from __future__ import annotations

from typing import Any

from ner_export.runtime import available_cpus

from .serve_load_config import TARGETS
from .serve_load_offline import ECONOMY_SIZES
from .target_rows import target_row

__all__ = ["targets", "ray_overhead", "cpu_bound", "target_row"]


def cpu_bound(run: dict[str, Any], cpus: int) -> dict[str, float] | None:
    """At a run's best rate: CPU per request (server + client) and the most requests/s the CPUs give at that cost."""
    best = run.get("best_rate_p99_ok")
    step = next((s for s in run["steps"] if s["offered_rps"] == best), None)
    cpu = (step or {}).get("cpu") or {}
    server, client = cpu.get("server_ms_per_request"), cpu.get("client_ms_per_request")
    if server is None or client is None:
        return None
    return {"server_ms": server, "client_ms": client, "max_rps": 1000 * cpus / (server + client)}


def targets(
    offline: dict[str, Any], configs: dict[str, Any], economy: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """Each target in `TARGETS` for (a): its value, the limit, whether it holds, and the miss (module docstring)."""
    a = configs["a"]
    rows = _rate_targets(offline, configs, economy)
    low = a.get("low_load")
    rows.append(
        target_row(
            "(a) p50 ms at 10% of that rate",
            low["latency_ms"]["p50"] if low else None,
            TARGETS["p50_at_10pct_ms"],
            "max",
        )
    )
    over = a.get("overload")
    if over:
        rows += _overload_targets(over)
    return rows


def _rate_targets(
    offline: dict[str, Any], configs: dict[str, Any], economy: dict[str, Any] | None
) -> list[dict[str, Any]]:
    """(a)'s best rate with p99 <= 50 ms against (c) and against (b), each with what bounds it."""
    a, b = configs["a"], configs["b"]
    best_a, best_b = a.get("best_rate_p99_ok"), b.get("best_rate_p99_ok")
    ceiling = offline["throughput_sps"]
    bound = cpu_bound(a, available_cpus())
    versus_offline = target_row(
        "(a) best rate with p99 <= 50 ms / (c) offline throughput",
        best_a / ceiling if best_a else None,
        TARGETS["vs_offline"],
        "min",
        (
            "no offered rate met p99 <= 50 ms"
            if not best_a
            else f"at that rate a request took {bound['server_ms']:.2f} ms of server CPU and {bound['client_ms']:.2f} "
            f"of client CPU: at that cost the CPUs serve at most {bound['max_rps']:.0f} req/s at any latency "
            f"({bound['max_rps'] / ceiling:.2f}x (c))"
            if bound
            else ""
        ),
    )
    gains = (economy or {}).get("gain_over_lone")
    versus_batch1 = target_row(
        "(a) best rate with p99 <= 50 ms / (b) its own",
        best_a / best_b if best_a and best_b else None,
        TARGETS["vs_batch1"],
        "min",
        (
            "a rate is missing: (a) or (b) met p99 <= 50 ms at no offered rate"
            if not (best_a and best_b)
            else "batching economy (e): calls of "
            + ", ".join(f"{k} queued texts {gains[str(k)]:.2f}x" for k in ECONOMY_SIZES if k > 1)
            + f", sorted batches {gains['sorted']:.2f}x the model's sentences/s of lone calls"
            if gains
            else ""
        ),
    )
    return [versus_offline, versus_batch1]


def _overload_targets(over: dict[str, Any]) -> list[dict[str, Any]]:
    """At twice the saturation rate: accepted p99, no 5xx, fast 429s, flat RSS."""
    rss = over["server"]
    growth = (rss["rss_mb_after"] - rss["rss_mb_before"]) / rss["rss_mb_before"] if rss["rss_mb_before"] else None
    return [
        target_row(
            "(a) at 2x saturation: accepted p99 ms", over["latency_ms"]["p99"], TARGETS["overload_p99_ms"], "max"
        ),
        target_row("(a) at 2x saturation: 5xx responses", over["status_5xx"] + over["transport_errors"], 0, "max"),
        target_row(
            "(a) at 2x saturation: 429 p99 ms (the excess refused fast)",
            over["latency_429_ms"]["p99"],
            TARGETS["fast_429_p99_ms"],
            "max",
            "" if over["status_429"] else "no 429 at all: the offered load did not overflow the queue",
        ),
        target_row("(a) at 2x saturation: RSS growth over the step", growth, TARGETS["rss_growth"], "max"),
    ]


def ray_overhead(a: dict[str, Any], r: dict[str, Any]) -> dict[str, Any]:
    """(r) Ray Serve against (a) ner-export serve: the best rates with p99 <= 50 ms, and latency at each common rate."""
    best_a, best_r = a.get("best_rate_p99_ok"), r.get("best_rate_p99_ok")
    by_rate = {s["offered_rps"]: s for s in r["steps"]}
    rows = []
    for step in sorted(a["steps"], key=lambda s: s["offered_rps"]):
        other = by_rate.get(step["offered_rps"])
        if other is not None:
            rows.append(
                {
                    "offered_rps": step["offered_rps"],
                    "a": {k: step["latency_ms"][k] for k in ("p50", "p99")} | {"achieved_rps": step["achieved_rps"]},
                    "r": {k: other["latency_ms"][k] for k in ("p50", "p99")} | {"achieved_rps": other["achieved_rps"]},
                }
            )
    return {
        "best_rate_p99_ok": {"a": best_a, "r": best_r, "r_over_a": best_r / best_a if best_a and best_r else None},
        "ready_s": {"a": a.get("ready_s"), "r": r.get("ready_s")},
        "by_rate": rows,
    }
