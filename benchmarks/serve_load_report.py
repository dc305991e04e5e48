"""The reports of a serve load run: Markdown (the tables a reader checks) and a latency chart.

The Markdown opens with what was measured and on what (bundle, graph, data, CPUs shared by client and
server), then (c) and (e), one table per server configuration (every step, with its server-side batch
size, CPU per request and RSS), Ray Serve against (a) when (r) ran, and the targets with their misses.
matplotlib is imported only to draw the chart, so the rest of the benchmark runs without it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .serve_load_config import TARGETS
from .serve_load_operations import format_number, operations_lines

__all__ = ["markdown", "plot", "format_ms", "format_number"]

TITLES = {
    "a": "(a) serve, micro-batching",
    "b": "(b) serve, --max-batch-size 1",
    "r": "(r) Ray Serve (--engine ray, one replica, @serve.batch)",
}
ECONOMY_NAMES = {
    "1": "1 (lone, as (b))",
    "4": "4 queued texts",
    "16": "16 queued texts",
    "sorted": "sorted batches of 32",
}


def format_ms(value: float | None) -> str:
    """Milliseconds to one decimal, or "-" for none."""
    return "-" if value is None else f"{value:.1f}"


def markdown(results: dict[str, Any]) -> str:
    """The run's report in Markdown (the .md file, also printed by the command)."""
    lines = _header_lines(results) + _economy_lines(results.get("batching_economy"))
    for key, run in results["configs"].items():
        lines += _config_lines(key, run)
    overhead = results.get("ray_overhead")
    if overhead:
        lines += _ray_overhead_lines(overhead)
    if results.get("operations"):
        lines += operations_lines(results["operations"])
    lines += _target_lines(results["targets"])
    lines += ["", f"Command: `{results['command']}`", ""]
    return "\n".join(lines)


def _header_lines(results: dict[str, Any]) -> list[str]:
    offline = results["offline"]
    return [
        f"# Serve load: {results['name']}",
        "",
        *(
            ["**Smoke run** (tiny rates, half-second steps): it checks the script and measures nothing.", ""]
            if results.get("smoke")
            else []
        ),
        f"Bundle `{results['bundle']['path']}` (bundle.json sha256 {results['bundle']['bundle_json_sha256'][:12]}), "
        f"{offline['precision']} graph, batch_invariant {offline['batch_invariant']}; "
        f"{results['dataset']['sentences']} sentences of `{Path(results['dataset']['path']).name}`, one per request; "
        f"{results['machine']['cpus_available']} CPUs shared by the client and the server "
        "(the client is one asyncio process). Open loop: Poisson arrivals, latency from the scheduled send time "
        "(client lag: how late the client itself started a request; it is part of the latency, not hidden from it).",
        "",
        f"(c) offline `model.predict(batch_size=32)`: **{offline['throughput_sps']:.0f} sentences/s**.",
        "",
    ]


def _economy_lines(economy: dict[str, Any] | None) -> list[str]:
    if not economy:
        return []
    rates, gains = economy["sentences_per_s"], economy["gain_over_lone"]
    return [
        "## (e) What batching can buy here",
        "",
        f"The model alone, in-process, {economy['threads']} threads in {economy['streams']} streams, one "
        f"Python thread per stream calling `predict(texts, stream=True)`, {economy['sentences']} test sentences in "
        "random order (best of the rounds): sentences/s by texts per call. Micro-batching can raise (a) above (b) "
        "only by what a call of queued texts saves per sentence over a lone call; HTTP costs both alike per request.",
        "",
        "| texts per call | sentences/s | / lone calls |",
        "|---|---|---|",
        *(f"| {ECONOMY_NAMES.get(k, k)} | {rates[k]:.0f} | {gains[k]:.2f} |" for k in rates),
        "",
    ]


def _config_lines(key: str, run: dict[str, Any]) -> list[str]:
    """One configuration's section: its server arguments and best rate, and a row per step."""
    batching = (run.get("info") or {}).get("batching") or {}
    lines = [
        f"## {TITLES[key]}",
        "",
        f"Server arguments: `{' '.join(run['args'])}`; batching across requests: {batching.get('cross_request')}; "
        f"streams: {batching.get('streams', '-')}; "
        f"highest offered rate with p99 <= 50 ms: **{format_number(run.get('best_rate_p99_ok'))} req/s**; "
        f"ready {format_number(run.get('ready_s'))} s after start; server exit status {run.get('exit_status')}.",
        "",
        "| step | offered req/s | achieved ok/s | p50 ms | p95 ms | p99 ms | p99.9 ms | 429 | 5xx | errors "
        "| 429 p99 ms | mean batch | client lag p99 ms | CPU ms/request server/client | RSS MB before/after |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    steps = sorted(run["steps"], key=lambda s: s["offered_rps"]) + [
        run[k] for k in ("low_load", "overload") if run.get(k)
    ]
    lines += [_step_row(step) for step in steps]
    lines.append("")
    return lines


def _step_row(step: dict[str, Any]) -> str:
    latency, server, cpu = step["latency_ms"], step["server"], step.get("cpu") or {}
    cpu_ms = (
        f"{format_number(cpu.get('server_ms_per_request'), '.2f')}/"
        f"{format_number(cpu.get('client_ms_per_request'), '.2f')}"
    )
    return (
        f"| {step['kind']} | {step['offered_rps']:.1f} | {step['achieved_rps']:.1f} "
        f"| {format_ms(latency['p50'])} | {format_ms(latency['p95'])} | {format_ms(latency['p99'])} "
        f"| {format_ms(latency['p99.9'])} "
        f"| {step['status_429']} | {step['status_5xx']} | {step['transport_errors'] + step['unfinished']} "
        f"| {format_ms(step['latency_429_ms']['p99'])} | {format_number(server['mean_batch_size'])} "
        f"| {format_ms(step['client_lag_ms']['p99'])} "
        f"| {cpu_ms} "
        f"| {server['rss_mb_before']:.0f}/{server['rss_mb_after']:.0f} |"
    )


def _ray_overhead_lines(overhead: dict[str, Any]) -> list[str]:
    best = overhead["best_rate_p99_ok"]
    lines = [
        "## Ray Serve against ner-export serve",
        "",
        f"Highest offered rate with p99 <= 50 ms: (a) ner-export serve **{format_number(best['a'])} req/s**, "
        f"(r) Ray Serve **{format_number(best['r'])} req/s** (r/a = {format_number(best['r_over_a'], '.2f')}); "
        f"ready after start: (a) {format_number(overhead['ready_s']['a'])} s, "
        f"(r) {format_number(overhead['ready_s']['r'])} s "
        "(Ray and Serve start-up included). Same generator, rates and sentences; (r)'s RSS is its replica's alone.",
        "",
        "| offered req/s | (a) p50 ms | (r) p50 ms | (a) p99 ms | (r) p99 ms | (a) ok/s | (r) ok/s |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in overhead["by_rate"]:
        a, r = row["a"], row["r"]
        lines.append(
            f"| {row['offered_rps']:.1f} | {format_ms(a['p50'])} | {format_ms(r['p50'])} "
            f"| {format_ms(a['p99'])} | {format_ms(r['p99'])} "
            f"| {a['achieved_rps']:.1f} | {r['achieved_rps']:.1f} |"
        )
    lines.append("")
    return lines


def _target_lines(targets: list[dict[str, Any]]) -> list[str]:
    lines = [
        "## Targets",
        "",
        "| target | value | limit | holds | missed by | note |",
        "|---|---|---|---|---|---|",
    ]
    for t in targets:
        sign = ">=" if t["kind"] == "min" else "<="
        lines.append(
            f"| {t['target']} | {format_number(t['value'], '.3f')} | {sign} {t['limit']:g} "
            f"| {'yes' if t['holds'] else 'NO'} | {format_number(t['miss_by'], '.3f')} | {t['note']} |"
        )
    return lines


def plot(results: dict[str, Any], path: Path) -> None:
    """Latency (p50 dashed, p99 solid) against offered load, one colour per configuration."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axis = plt.subplots(figsize=(8, 5))
    colours = {"a": "#1f77b4", "b": "#ff7f0e", "r": "#9467bd"}
    names = {"a": "(a) micro-batching", "b": "(b) --max-batch-size 1", "r": "(r) Ray Serve"}
    for key, run in results["configs"].items():
        steps = sorted((s for s in run["steps"] if s["latency_ms"]["p99"] is not None), key=lambda s: s["offered_rps"])
        rates = [s["offered_rps"] for s in steps]
        axis.plot(rates, [s["latency_ms"]["p99"] for s in steps], "o-", color=colours[key], label=f"{names[key]} p99")
        axis.plot(
            rates,
            [s["latency_ms"]["p50"] for s in steps],
            "s--",
            color=colours[key],
            alpha=0.6,
            label=f"{names[key]} p50",
        )
    axis.axvline(
        results["offline"]["throughput_sps"], color="#2ca02c", linestyle=":", label="(c) offline predict(batch_size=32)"
    )
    axis.axhline(TARGETS["p99_limit_ms"], color="grey", linestyle="-.", linewidth=0.8, label="p99 target 50 ms")
    axis.set_yscale("log")
    axis.set_xlabel("offered load (requests/s, one sentence each)")
    axis.set_ylabel("latency from scheduled send (ms)")
    axis.set_title(f"ner-export serve on {results['machine']['cpus_available']} CPUs shared with the client")
    axis.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
