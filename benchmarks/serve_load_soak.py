"""`python -m ner_export.benchmarks.serve_load_soak BUNDLE`: `ner-export serve` under a long mixed load.

A soak: `--requests` (20,000) requests of mixed lengths, from 1 character to 20,000 (log-uniform, so
most are short and some are whole documents read in many windows) with every 500th request a list of
32 texts, sent by a few closed-loop clients over keep-alive connections, while `--idle` (500) further
connections stay open and silent beside the load. Recorded: the server's RSS and open file descriptors
(its whole process tree, from /proc) at the start, after the first phase once the idle connections
are open (warmed up), after every 2,000 requests, at the end, and once the idle connections are
closed again; p99 over the first and the last 2,000 requests, and p99 without the idle connections (a
first phase of 1,000 requests before they open) against with them (the next 1,000). A leak shows as
RSS or descriptors that grow; a server that handles idle connections badly shows as a p99 that grows
with them.

Bounded: the request count, and `--max-seconds` for the whole run (it stops early and says so). All
traffic goes to 127.0.0.1. The server runs as the CLI runs it (`serve_load_server.ServerProcess`), with
`--no-access-log` and any `--server-arg`s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from .serve_load_client import ConnectionPool, percentiles, post, run_async
from .serve_load_config import HOST
from .serve_load_server import ServerProcess

__all__ = ["run_soak", "soak_inputs", "soak_requests", "process_tree_resources", "main"]

WORDS = (
    "John Smith lives in Paris and works for Reuters in London , said the minister on Monday . The Bank of "
    "Tokyo and the French company agreed in Berlin with Maria Lopez of the United Nations ."
).split()
BASELINE = 1000  # requests in each of the without- and with-idle-connections phases
EDGE = 2000  # requests whose p99 is the start's and the end's
CURVE_STEP = 2000  # the server's RSS and descriptors are also read after each this many requests


def soak_inputs(count: int, seed: int) -> list[str | list[str]]:
    """The `inputs` of `count` soak requests: texts of 1 to 20,000 characters (log-uniform), and every
    500th a list of 32 texts of up to 200 characters."""
    rng = random.Random(seed)

    def text(most: int) -> str:
        size = int(math.exp(rng.uniform(0, math.log(most))))
        words: list[str] = []
        length = 0
        while length < size:
            words.append(rng.choice(WORDS))
            length += len(words[-1]) + 1
        return " ".join(words)[:size] or "a"

    return [[text(200) for _ in range(32)] if i % 500 == 499 else text(20_000) for i in range(count)]


def soak_requests(count: int, seed: int) -> list[bytes]:
    """`count` prebuilt POST /predict requests of `soak_inputs`."""
    requests = []
    for inputs in soak_inputs(count, seed):
        body = json.dumps({"inputs": inputs}).encode()
        requests.append(
            b"POST /predict HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
            % (HOST.encode(), len(body), body)
        )
    return requests


def process_tree_resources(pid: int) -> dict[str, int]:
    """RSS bytes and open file descriptors of `pid` and its descendants (Linux /proc)."""
    page = os.sysconf("SC_PAGE_SIZE")
    rss = fds = 0
    pending, seen = [pid], set()
    while pending:
        current = pending.pop()
        if current in seen:
            continue
        seen.add(current)
        try:
            rss += int(Path(f"/proc/{current}/statm").read_text().split()[1]) * page
            fds += len(os.listdir(f"/proc/{current}/fd"))
            for task in Path(f"/proc/{current}/task").iterdir():
                pending += [int(child) for child in (task / "children").read_text().split()]
        except (OSError, ValueError):
            continue
    return {"rss_bytes": rss, "open_fds": fds}


async def _send_all(port: int, requests: list[bytes], clients: int, deadline: float) -> list[tuple[float, Any]]:
    """Send `requests` in order from `clients` closed-loop clients; (latency s, status or error) each."""
    pool = ConnectionPool(port, clients)
    outcomes: list[tuple[float, Any]] = [(math.nan, "not sent")] * len(requests)
    next_index = iter(range(len(requests)))

    async def client() -> None:
        for i in next_index:
            if time.monotonic() > deadline:
                return
            started = time.perf_counter()
            try:
                status = await post(pool, requests[i])
            except (OSError, asyncio.IncompleteReadError) as exc:
                outcomes[i] = (math.nan, type(exc).__name__)
                continue
            outcomes[i] = (time.perf_counter() - started, status)

    await asyncio.gather(*(client() for _ in range(clients)))
    pool.close()
    return outcomes


async def _once_accepted(pid: int, fds: int, deadline: float, patience: float = 30.0) -> dict[str, int]:
    """The server's resources once it holds `fds` descriptors: a connection the client opened is not
    the server's until its event loop accepts it, so measuring at once would count the idle connections
    late and call them a leak at the end. Gives up after `patience` seconds and measures as it is."""
    give_up = min(deadline, time.monotonic() + patience)
    found = process_tree_resources(pid)
    while found["open_fds"] < fds and time.monotonic() < give_up:
        await asyncio.sleep(0.05)
        found = process_tree_resources(pid)
    return found


async def _once_released(pid: int, fds: int, deadline: float, patience: float = 30.0) -> dict[str, int]:
    """The server's resources once it holds at most `fds` descriptors again (the idle connections it
    closes after the client does); gives up after `patience` seconds and measures as it is."""
    give_up = min(deadline, time.monotonic() + patience)
    found = process_tree_resources(pid)
    while found["open_fds"] > fds and time.monotonic() < give_up:
        await asyncio.sleep(0.05)
        found = process_tree_resources(pid)
    return found


def _p99_ms(outcomes: list[tuple[float, Any]]) -> float | None:
    latencies = np.array([latency for latency, status in outcomes if status == 200])
    found = percentiles(latencies * 1000)["p99"]
    return None if found is None else round(found, 2)


async def _soak(port: int, requests: list[bytes], idle: int, clients: int, deadline: float, pid: int) -> dict[str, Any]:
    """The three phases: without idle connections, with them (the soak), and the resources around them."""
    start = process_tree_resources(pid)
    without_idle = await _send_all(port, requests[:BASELINE], clients, deadline)
    held = [await asyncio.open_connection(HOST, port) for _ in range(idle)]
    with_idle_open = await _once_accepted(pid, start["open_fds"] + idle, deadline)
    rest: list[tuple[float, Any]] = []
    curve = [{"requests": BASELINE, **with_idle_open}]
    for first in range(BASELINE, len(requests), CURVE_STEP):  # in steps, so RSS growth shows its shape
        rest += await _send_all(port, requests[first : first + CURVE_STEP], clients, deadline)
        curve.append({"requests": BASELINE + len(rest), **process_tree_resources(pid)})
    still_open = sum(1 for reader, _ in held if not reader.at_eof())
    end = process_tree_resources(pid)
    for _, writer in held:
        writer.close()
    closed = await _once_released(pid, start["open_fds"], deadline)
    outcomes = without_idle + rest
    sent = [o for o in outcomes if o[1] != "not sent"]
    return {
        "requests_sent": len(sent),
        "ok": sum(1 for o in sent if o[1] == 200),
        "statuses": {str(k): v for k, v in sorted(_count(o[1] for o in sent).items(), key=str)},
        "stopped_early": len(sent) < len(requests),
        "idle_connections": {"opened": idle, "still_open_at_end": still_open},
        "resources": {"start": start, "idle_opened": with_idle_open, "end": end, "idle_closed": closed},
        "resources_by_requests": curve,
        "p99_ms": {
            "without_idle": _p99_ms(without_idle),
            "with_idle": _p99_ms(rest[:BASELINE]),
            "start": _p99_ms(sent[:EDGE]),
            "end": _p99_ms(sent[-EDGE:]),
        },
    }


def _count(values: Any) -> dict[Any, int]:
    counts: dict[Any, int] = {}
    for value in values:
        counts[value] = counts.get(value, 0) + 1
    return counts


def run_soak(
    bundle: str,
    requests: int = 20_000,
    idle: int = 500,
    clients: int = 4,
    max_seconds: float = 1800.0,
    server_args: tuple[str, ...] = (),
    log: Path = Path("serve-soak.log"),
    seed: int = 0,
) -> dict[str, Any]:
    """Run the soak (module docstring) against a server started here; the figures as a dict."""
    prepared = soak_requests(requests, seed)
    began = time.monotonic()
    server = ServerProcess(bundle, list(server_args), log)
    try:
        result = run_async(_soak(server.port, prepared, idle, clients, began + max_seconds, server.proc.pid))
    finally:
        exit_status = server.stop()
    return {
        "bundle": bundle,
        "server_args": list(server_args),
        "clients": clients,
        "seconds": round(time.monotonic() - began, 1),
        **result,
        "exit_status": exit_status,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle")
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--idle", type=int, default=500, help="idle keep-alive connections held beside the load")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--max-seconds", type=float, default=1800.0)
    parser.add_argument("--server-arg", action="append", default=[], help="one argument for ner-export serve")
    parser.add_argument("--out", default="serve-soak.json")
    args = parser.parse_args(argv)
    result = run_soak(
        args.bundle,
        args.requests,
        args.idle,
        args.clients,
        args.max_seconds,
        tuple(args.server_arg),
        Path(args.out).with_suffix(".log"),
    )
    text = json.dumps(result, indent=2)
    Path(args.out).write_text(text + "\n")
    print(text)
    return 0 if result["exit_status"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
