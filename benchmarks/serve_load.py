"""`python -m ner_export.benchmarks.serve_load`: `ner-export serve` under open-loop load, against its ceiling.

An open-loop generator on loopback: requests (one CoNLL-2003 test sentence each) are scheduled by a
Poisson process at a fixed offered rate and sent at their time whether or not earlier ones have been
answered, and latency is measured from the *scheduled* send time, so a server (or a client) that falls
behind shows up as latency instead of silently lowering the load (no coordinated omission). It sweeps
offered rates, for (a) the server with micro-batching, (b) the server with `--max-batch-size 1`, and
(c) the offline `model.predict(batch_size=32)` throughput of the same bundle as the ceiling, then checks
the targets for (a) (`TARGETS`) and says by how much each misses. With `--ray` it also sweeps (r), the
same settings on Ray Serve (`--engine ray`: a local Ray, one replica, `@serve.batch`), with the same
generator, rates and data, and reports Ray Serve's overhead against (a). Between the last rate that met
the p99 limit and the first that missed it, each sweep measures the rates the targets name (0.6x (c),
and 0.45x with `--operations`) before bisecting, so a rate target is checked at its own rate. With
`--workers N`, (a) and (b) run N server processes of `--threads` / N threads each (`ner-export serve
--workers`); (c) and (r) keep all `--threads`. `--streams S` passes `ner-export serve --streams S` to
(a) and (b). With `--operations` it also runs (o) (`serve_load_operations`): the server's CPU per request beyond the
model, one of two workers killed under load, a 20,000-request soak beside 500 idle connections, and
schema fuzzing, with their targets.

Trade-offs: the client and the server share this machine's cores, so the client is kept light (raw
asyncio streams over a small keep-alive connection pool, bodies prebuilt, responses parsed only for
status and length, no torch: the CoNLL words are read by the runtime's reader rather than the training
package) and the results record how many CPUs both had. Rates default to fractions of (c), so the sweep
crosses saturation on any machine; the step count, each step's duration and its request count are
bounded, and each step waits a bounded time for stragglers. The server's batch-size histogram and RSS
come from its own `/metrics` (for (r), which has none, from the replica's counters in `/info`; its RSS is
the replica's alone, without Ray's proxy, controller and raylet). Servers bind 127.0.0.1 only.

This module runs the comparison and holds its command line; the parts are modules of their own:
`serve_load_config` (the run's settings, targets and sentences), `serve_load_server` (the server
process), `serve_load_client` (the load generator), `serve_load_offline` ((c) and (e)),
`serve_load_sweep` (one configuration's sweep), `serve_load_targets` and `serve_load_report`.
Three commands of their own sit beside it: `serve_load_soak` (a long mixed load beside idle
connections), `serve_load_kill` (one of two workers killed under load) and `serve_load_overhead` (the
server's CPU per request beyond the model).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from ner_export.runtime import available_cpus
from ner_export.runtime.manifest import MANIFEST_NAME, sha256_file

from .serve_load_config import DEFAULT_DATA, FRACTIONS, TARGETS, LoadConfig, read_sentences
from .serve_load_offline import batching_economy, offline_throughput
from .serve_load_operations import (
    OPERATION_TARGETS,
    SMOKE_SIZES,
    OperationsConfig,
    operation_targets,
    run_operations,
)
from .serve_load_report import markdown, plot
from .serve_load_sweep import sweep
from .serve_load_targets import ray_overhead, targets

__all__ = ["LoadConfig", "run_load", "read_sentences", "main"]


def run_load(config: LoadConfig) -> dict[str, Any]:
    """Run the comparison, write JSON, Markdown and PNG to `config.out`; return the results."""

    def say(message: str) -> None:
        if config.progress:
            print(message, file=sys.stderr, flush=True)

    data = Path(config.data) if config.data else DEFAULT_DATA
    texts = read_sentences(data)[: config.sentences]
    if not texts:
        raise ValueError(f"{data}: no sentences")
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    requests = _http_requests(texts)
    offline = offline_throughput(config, texts, say)
    economy = batching_economy(config, texts, say)
    ceiling = offline["throughput_sps"]
    rates = list(config.rates) if config.rates else [round(f * ceiling, 1) for f in FRACTIONS]
    target_rates = _target_rates(config, ceiling)
    configs = {
        label: sweep(
            config,
            label,
            args,
            requests,
            rates,
            out,
            say,
            extra=label == "a",
            saturation_hint=0.0,
            target_rates=target_rates,
        )
        for label, args in _server_args(config).items()
    }
    results: dict[str, Any] = {
        "name": config.name,
        "command": config.command,
        "config": asdict(config),
        "dataset": {"path": str(data), "sentences": len(texts)},
        "machine": {
            "cpus_available": available_cpus(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "note": "client and server share these CPUs; the client is one asyncio process",
        },
        "bundle": {"path": config.bundle, "bundle_json_sha256": sha256_file(Path(config.bundle) / MANIFEST_NAME)},
        "offline": offline,
        "batching_economy": economy,
        "configs": configs,
        "targets": targets(offline, configs, economy),
        "smoke": config.smoke,
    }
    if "r" in configs:
        results["ray_overhead"] = ray_overhead(configs["a"], configs["r"])
    if config.operations:
        with tempfile.TemporaryDirectory(prefix="serve-operations-") as work:
            sizes = SMOKE_SIZES if config.smoke else OperationsConfig()
            results["operations"] = run_operations(config.bundle, config.precision, sizes, Path(work), say)
        results["targets"] += operation_targets(results["operations"], configs["a"].get("best_rate_p99_ok"), ceiling)
    results["files"] = _write_reports(results, out / config.name)
    return results


def _target_rates(config: LoadConfig, ceiling: float) -> tuple[float, ...]:
    """The offered rates the targets name (their share of (c)): each is measured where a sweep's gap holds it."""
    shares = {TARGETS["vs_offline"], *([OPERATION_TARGETS["vs_offline"]] if config.operations else [])}
    return tuple(round(share * ceiling, 1) for share in sorted(shares))


def _http_requests(texts: list[str]) -> list[bytes]:
    """One prebuilt HTTP/1.1 request per text: `{"inputs": text}` to /predict."""
    bodies = [json.dumps({"inputs": t}, ensure_ascii=False).encode() for t in texts]
    return [
        b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
        % (len(b), b)
        for b in bodies
    ]


def _server_args(config: LoadConfig) -> dict[str, list[str]]:
    """`ner-export serve` arguments of each configuration: (a), (b), and (r) with `--ray`."""
    threads = config.threads or available_cpus()
    common = ["--max-wait-ms", str(config.max_wait_ms)]
    if config.precision:
        common += ["--precision", config.precision]
    if config.allow_batch_dependent:
        common.append("--allow-batch-dependent")
    if config.max_queued_texts:
        common += ["--max-queued-texts", str(config.max_queued_texts)]
    if config.max_queue_ms is not None:
        common += ["--max-queue-ms", str(config.max_queue_ms)]
    local = ["--threads", str(max(1, threads // config.workers)), *common]
    if config.workers > 1:
        local += ["--workers", str(config.workers)]
    if config.streams is not None:
        local += ["--streams", str(config.streams)]
    found = {"a": local, "b": [*local, "--max-batch-size", "1"]}
    if config.ray:  # the same settings, rates and data; --threads becomes the replica's num_cpus
        found["r"] = ["--threads", str(threads), *common, "--engine", "ray"]
    return found


def _write_reports(results: dict[str, Any], stem: Path) -> list[str]:
    """`stem`.json, .md and .png; returns their paths."""
    stem.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    stem.with_suffix(".md").write_text(markdown(results), encoding="utf-8")
    plot(results, stem.with_suffix(".png"))
    return [str(stem.with_suffix(x)) for x in (".json", ".md", ".png")]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ner_export.benchmarks.serve_load", description=__doc__.splitlines()[0]
    )
    parser.add_argument("bundle")
    parser.add_argument("--data", help=f"CoNLL file whose sentences are sent [default: {DEFAULT_DATA}]")
    parser.add_argument("--out", default="bench-results")
    parser.add_argument("--name", default="serve-cpu")
    parser.add_argument("--precision", choices=["int8", "fp32"])
    parser.add_argument("--threads", type=int)
    parser.add_argument("--workers", type=int, default=1, help="server processes for (a) and (b) [default: 1]")
    parser.add_argument("--streams", type=int, help="batches each server of (a) and (b) runs at once [server default]")
    parser.add_argument("--allow-batch-dependent", action="store_true")
    parser.add_argument("--max-wait-ms", type=float, default=0.0)
    parser.add_argument("--max-queued-texts", type=int)
    parser.add_argument("--max-queue-ms", type=float)
    parser.add_argument("--rates", help="comma-separated offered rates in requests/s [default: fractions of (c)]")
    parser.add_argument("--step-seconds", type=float, default=10.0)
    parser.add_argument("--max-requests-per-step", type=int, default=20000)
    parser.add_argument("--refine", type=int, default=2)
    parser.add_argument("--offline-seconds", type=float, default=10.0)
    parser.add_argument("--sentences", type=int)
    parser.add_argument(
        "--connections",
        type=int,
        default=256,
        help="most concurrent connections (keep above the server's --max-queued-texts)",
    )
    parser.add_argument(
        "--smoke", action="store_true", help="a few seconds on tiny rates: checks the script, measures nothing"
    )
    parser.add_argument(
        "--ray",
        action="store_true",
        help="also (r): the same settings on Ray Serve (--engine ray; needs the ray extra)",
    )
    parser.add_argument(
        "--operations",
        action="store_true",
        help="also (o): server CPU beyond the model, a worker killed under load, a 20,000-request soak, "
        "schema fuzzing (needs the test extra's schemathesis)",
    )
    parser.add_argument("-q", "--quiet", action="store_true")
    return parser


def _config(args: argparse.Namespace, data: Path, argv: Sequence[str] | None) -> LoadConfig:
    """The run's config from the parsed arguments; `--smoke` shrinks rates, steps and rounds."""
    config = LoadConfig(
        bundle=args.bundle,
        data=str(data),
        out=args.out,
        name=args.name,
        precision=args.precision,
        threads=args.threads,
        workers=args.workers,
        streams=args.streams,
        allow_batch_dependent=args.allow_batch_dependent,
        max_wait_ms=args.max_wait_ms,
        max_queued_texts=args.max_queued_texts,
        max_queue_ms=args.max_queue_ms,
        rates=tuple(float(r) for r in args.rates.split(",")) if args.rates else None,
        step_seconds=args.step_seconds,
        max_requests_per_step=args.max_requests_per_step,
        refine=args.refine,
        offline_seconds=args.offline_seconds,
        sentences=args.sentences,
        connections=args.connections,
        progress=not args.quiet,
        ray=args.ray,
        operations=args.operations,
        command=" ".join(["python -m ner_export.benchmarks.serve_load", *(argv if argv is not None else sys.argv[1:])]),
    )
    if not args.smoke:
        return config
    return LoadConfig(
        **{
            **asdict(config),
            "smoke": True,
            "rates": config.rates or (20.0, 40.0),
            "step_seconds": min(config.step_seconds, 0.5),
            "max_requests_per_step": min(config.max_requests_per_step, 50),
            "refine": 0,
            "offline_seconds": 0.0,
        }
    )


def main(argv: Sequence[str] | None = None) -> int:
    """The command line: 0 after a run (or when the default data is absent: skipped), 1 on a usage error."""
    args = _parser().parse_args(argv)
    if args.ray:
        import importlib.util

        if importlib.util.find_spec("ray") is None:
            print("serve_load: error: --ray needs Ray Serve: pip install 'ner-export[ray]'", file=sys.stderr)
            return 1
    data = Path(args.data) if args.data else DEFAULT_DATA
    if not data.is_file():
        if args.data:
            print(f"serve_load: error: {data}: no such file", file=sys.stderr)
            return 1
        print(f"serve_load: skipped: no CoNLL-2003 test file at {data}; pass --data PATH", file=sys.stderr)
        return 0
    results = run_load(_config(args, data, argv))
    print(markdown(results))
    print(f"results written to {', '.join(results['files'])}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
