"""(o) The operations part of a serve load run: what a service must survive, checked on the same bundle.

Four measures, each run by a module of its own and gathered here with their targets, so that one
`serve_load --operations` run says whether the service holds on the bundle it served:

- the server's CPU per request beyond the model (`serve_load_overhead.measure_server`): one request at
  a time over a keep-alive connection (mean batch 1), the server process's CPU from /proc less the
  model's CPU for the same texts in this process, both on one thread and the same graph, measured by
  turns and the best round of each kept (a slow spell of a shared machine hits both alike);
- a worker killed under load (`serve_load_kill`): two workers, one SIGKILLed; the port must keep
  answering, only requests inside the killed worker may fail, every request sent after its replacement
  is ready must succeed, and the replacement must be ready within 5 s plus its model's load time;
- a soak (`serve_load_soak`): 20,000 mixed requests beside 500 idle keep-alive connections; no 5xx, RSS
  flat after warm-up, descriptors back to the idle count, p99 not hurt by the idle connections;
- schema fuzzing (`serve_schema_fuzz`): schemathesis, all checks, a fixed seed, against a server on
  127.0.0.1; no finding over at least 1,000 generated cases covering every operation.

Trade-off: they run one after another after the sweeps, each with its own server, so none disturbs
another's figures; together they add several minutes (the soak most) and are off unless asked for.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .serve_load_kill import run_kill
from .serve_load_overhead import measure_server
from .serve_load_server import ServerProcess
from .serve_load_soak import run_soak
from .serve_schema_fuzz import fuzz_schema
from .target_rows import target_row

__all__ = [
    "OperationsConfig",
    "OPERATION_TARGETS",
    "run_operations",
    "operation_targets",
    "operations_lines",
    "SMOKE_SIZES",
]

OPERATION_TARGETS = {
    "vs_offline": 0.45,  # (a)'s best rate with p99 <= 50 ms over (c)
    "beyond_model_ms": 0.6,  # server CPU per request less the model's, at mean batch 1
    "kill_ready_s": 5.0,  # kill to replacement ready, beyond the replacement's model load time
    "schema_cases": 1000,  # generated cases, with no finding
    "soak_rss_growth": 0.10,  # RSS at the end over RSS after warm-up
    "soak_idle_p99_ratio": 1.5,  # p99 with the idle connections over p99 without them
}


@dataclass(frozen=True)
class OperationsConfig:
    """The sizes of the four measures (module docstring); the defaults are the targets' own."""

    overhead_requests: int = 3000
    kill_seconds: float = 5.0  # load before the kill, and again after the replacement is ready
    soak_requests: int = 20_000
    soak_idle: int = 500
    soak_max_seconds: float = 1800.0
    schema_examples: int = 500  # per operation and phase; about 1,000 or more cases in all


SMOKE_SIZES = OperationsConfig(
    overhead_requests=50, kill_seconds=1.0, soak_requests=1100, soak_idle=20, soak_max_seconds=120.0, schema_examples=3
)


def run_operations(
    bundle: str, precision: str | None, sizes: OperationsConfig, out: Path, say: Callable[[str], None]
) -> dict[str, Any]:
    """Run the four measures against `bundle` (logs and reports under `out`); their figures by name."""
    out.mkdir(parents=True, exist_ok=True)
    graph = ["--precision", precision] if precision else []
    say("(o) server CPU per request beyond the model")
    overhead = measure_server(bundle, sizes.overhead_requests, out / "overhead.log", precision=precision)
    say("(o) one of two workers killed under load")
    kill = run_kill(
        bundle,
        (*graph, "--threads", "1"),
        before=sizes.kill_seconds,
        after=sizes.kill_seconds,
        log=out / "kill.log",
    )
    say(f"(o) soak: {sizes.soak_requests} requests beside {sizes.soak_idle} idle connections")
    soak = run_soak(
        bundle,
        sizes.soak_requests,
        sizes.soak_idle,
        max_seconds=sizes.soak_max_seconds,
        server_args=tuple(graph),
        log=out / "soak.log",
    )
    say("(o) schema fuzzing")
    server = ServerProcess(bundle, [*graph, "--no-access-log"], out / "schema.log")
    try:
        schema = fuzz_schema(f"http://127.0.0.1:{server.port}", out / "schema", sizes.schema_examples)
    finally:
        stopped = server.stop()
    schema["server_exit_status"] = stopped
    schema.pop("report", None)
    return {"sizes": asdict(sizes), "overhead": overhead, "kill": kill, "soak": soak, "schema": schema}


def operation_targets(found: dict[str, Any], best_rate: float | None, offline_sps: float) -> list[dict[str, Any]]:
    """The target rows of the operations measures and of (a)'s rate against (c) at this project's limit."""
    overhead = found["overhead"]
    return [
        target_row(
            "(a) best rate with p99 <= 50 ms / (c)",
            best_rate / offline_sps if best_rate else None,
            OPERATION_TARGETS["vs_offline"],
            "min",
        ),
        target_row(
            "server CPU ms per request beyond the model, mean batch 1",
            overhead["beyond_model_us"] / 1000,
            OPERATION_TARGETS["beyond_model_ms"],
            "max",
            f"server {overhead['server_us'] / 1000:.2f} ms, model {overhead['model_us'] / 1000:.2f} ms",
        ),
        *_kill_rows(found["kill"]),
        *_schema_rows(found["schema"]),
        *_soak_rows(found["soak"]),
    ]


def _kill_rows(kill: dict[str, Any]) -> list[dict[str, Any]]:
    after = kill["after_ready"]
    load = kill["replacement_load_s"]
    return [
        target_row("kill: connections refused", kill["refused"], 0, "max"),
        target_row(
            "kill: failed requests sent after the kill",
            sum(1 for failure in kill["failed"] if failure["sent_after_kill_s"] > 0),
            0,
            "max",
            f"{len(kill['failed'])} failed of {kill['requests']}",
        ),
        target_row(
            "kill: failed requests sent after the replacement was ready",
            after["sent"] - after["ok"],
            0,
            "max",
            f"{after['sent']} sent after it was ready",
        ),
        target_row(
            "kill: s from kill to replacement ready, beyond its model load",
            kill["kill_to_ready_s"] - load if kill["replaced"] else None,
            OPERATION_TARGETS["kill_ready_s"],
            "max",
            f"model load {format_number(load, '.2f')} s",
        ),
    ]


def _schema_rows(schema: dict[str, Any]) -> list[dict[str, Any]]:
    tested, total = schema["operations_tested"], schema["operations_total"]
    return [
        target_row(
            "schema: generated cases with no finding",
            schema["cases_generated"] if schema["passed"] else 0,
            OPERATION_TARGETS["schema_cases"],
            "min",
            f"schemathesis exit status {schema['exit_status']}, {schema['cases_generated']} cases",
        ),
        target_row(
            "schema: share of operations tested", tested / total if tested is not None and total else None, 1.0, "min"
        ),
    ]


def _soak_rows(soak: dict[str, Any]) -> list[dict[str, Any]]:
    resources, p99 = soak["resources"], soak["p99_ms"]
    warm, end = resources["idle_opened"]["rss_bytes"], resources["end"]["rss_bytes"]
    failed = sum(count for status, count in soak["statuses"].items() if status != "200" and not status.startswith("4"))
    fds = {key: resources[key]["open_fds"] for key in ("start", "idle_opened", "end", "idle_closed")}
    return [
        target_row(
            "soak: 5xx responses and transport errors",
            failed,
            0,
            "max",
            f"{soak['ok']} ok of {soak['requests_sent']} sent",
        ),
        target_row(
            "soak: RSS growth, end over after warm-up",
            (end - warm) / warm if warm else None,
            OPERATION_TARGETS["soak_rss_growth"],
            "max",
            f"{warm / 2**20:.0f} -> {end / 2**20:.0f} MB",
        ),
        target_row(
            "soak: descriptors above the idle count once idle connections close",
            fds["idle_closed"] - fds["start"],
            0,
            "max",
            f"{fds['start']} at start, {fds['idle_opened']} with {soak['idle_connections']['opened']} idle, "
            f"{fds['end']} at the end",
        ),
        target_row(
            "soak: p99 with idle connections / without",
            p99["with_idle"] / p99["without_idle"] if p99["with_idle"] and p99["without_idle"] else None,
            OPERATION_TARGETS["soak_idle_p99_ratio"],
            "max",
            f"{format_number(p99['without_idle'])} -> {format_number(p99['with_idle'])} ms; "
            f"first 2,000 {format_number(p99['start'])}, last 2,000 {format_number(p99['end'])} ms",
        ),
    ]


def format_number(value: float | None, spec: str = ".1f") -> str:
    """`value` in `spec`, or "-" for none."""
    return "-" if value is None else format(value, spec)


def operations_lines(found: dict[str, Any]) -> list[str]:
    """The report's (o) section: what each measure ran and its raw figures."""
    overhead, kill, soak, schema = found["overhead"], found["kill"], found["soak"], found["schema"]
    return [
        "## (o) Operations: CPU beyond the model, a killed worker, a soak, schema fuzzing",
        "",
        f"- CPU per request, one at a time over keep-alive, one thread, best of {overhead.get('rounds', 1)} rounds "
        f"by turns: server process "
        f"{overhead['server_us']:.0f} µs, the model alone {overhead['model_us']:.0f} µs, beyond the model "
        f"**{overhead['beyond_model_us']:.0f} µs**.",
        f"- Kill: server `{' '.join(kill['server_args'])}`, worker pid {kill['victim_pid']} SIGKILLed under load; "
        f"{kill['requests']} requests, {len(kill['failed'])} failed "
        f"({', '.join(str(f['outcome']) for f in kill['failed']) or 'none'}), {kill['refused']} refused; "
        f"replacement ready {format_number(kill['kill_to_ready_s'], '.2f')} s after the kill "
        f"(its model load {format_number(kill['replacement_load_s'], '.2f')} s); after it was ready "
        f"{kill['after_ready']['ok']}/{kill['after_ready']['sent']} ok; server exit status {kill['exit_status']}.",
        f"- Soak: {soak['requests_sent']} requests in {soak['seconds']} s from {soak['clients']} clients beside "
        f"{soak['idle_connections']['opened']} idle connections ({soak['idle_connections']['still_open_at_end']} "
        f"still open at the end); statuses {soak['statuses']}; stopped early: {soak['stopped_early']}; "
        f"server exit status {soak['exit_status']}.",
        f"- Schema: schemathesis, all checks, seed {schema['seed']}, {schema['max_examples']} examples per "
        f"operation: {schema['cases_generated']} cases over {schema['operations_tested']}/"
        f"{schema['operations_total']} operations, exit status {schema['exit_status']}.",
        "",
        "| soak | RSS MB | open descriptors |",
        "|---|---|---|",
        *(
            f"| {name} | {soak['resources'][key]['rss_bytes'] / 2**20:.0f} | {soak['resources'][key]['open_fds']} |"
            for key, name in (
                ("start", "start"),
                ("idle_opened", "after warm-up, idle connections open"),
                ("end", "end"),
                ("idle_closed", "idle connections closed"),
            )
        ),
        "",
    ]
