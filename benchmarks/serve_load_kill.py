"""`python -m ner_export.benchmarks.serve_load_kill BUNDLE`: kill one of two workers under load, and measure.

`ner-export serve --workers 2` under a closed-loop load of short requests, each on a fresh connection
(so a failure belongs to the request that was inside the killed worker, not to a pooled connection
that pointed at it), until one worker is killed with SIGKILL, as the OOM killer would. Measured: that
the port kept answering (no refused connection), which requests failed and whether every one of them
was sent before the kill (inside the killed worker), that every request sent after the replacement
was ready succeeded, and the time from the kill to the replacement's ready line in the server's log.

Bounded: the load runs `--before` seconds, then until the replacement is ready (at most `--max-wait`
seconds), then `--after` seconds more. All traffic goes to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import sys
import time
from pathlib import Path
from typing import Any

from .serve_load_client import run_async
from .serve_load_config import HOST
from .serve_load_server import ServerProcess

__all__ = ["run_kill", "main"]

BODY = b'{"inputs": "John Smith lives in Paris and works for Reuters in London."}'
REQUEST = b"POST /predict HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nConnection: close\r\n" % (
    HOST.encode()
) + b"Content-Length: %d\r\n\r\n%s" % (len(BODY), BODY)


async def _post_once(port: int) -> Any:
    """One request on a fresh connection: its status, or the name of the error that ended it."""
    try:
        reader, writer = await asyncio.open_connection(HOST, port)
    except OSError as exc:
        return f"refused ({type(exc).__name__})"
    try:
        writer.write(REQUEST)
        head = await reader.readuntil(b"\r\n\r\n")
        await reader.read()
        return int(head.split(b" ", 2)[1])
    except (OSError, asyncio.IncompleteReadError) as exc:
        return type(exc).__name__
    finally:
        writer.close()


def _worker_pids(port: int) -> set[int]:
    from .serve_load_server import http_get

    pids: set[int] = set()
    for _ in range(200):
        status, body = http_get(port, "/info")
        if status == 200:
            pids.add(json.loads(body)["runtime"]["pid"])
        if len(pids) == 2:
            break
    return pids


async def _load_and_kill(server: ServerProcess, clients: int, before: float, after: float, max_wait: float) -> dict:
    outcomes: list[tuple[float, Any]] = []  # (sent at, outcome)
    marks: dict[str, float] = {}
    victim = min(_worker_pids(server.port))
    stop = asyncio.Event()

    async def client() -> None:
        while not stop.is_set():
            sent = time.monotonic()
            outcomes.append((sent, await _post_once(server.port)))

    tasks = [asyncio.ensure_future(client()) for _ in range(clients)]
    await asyncio.sleep(before)
    marks["kill"] = time.monotonic()
    os.kill(victim, signal.SIGKILL)
    ready = re.compile(rf"worker \d \(pid \d+\) ready in ([\d.]+) s, ([\d.]+) s after pid {victim} ")
    found = None
    while found is None and time.monotonic() - marks["kill"] < max_wait:
        await asyncio.sleep(0.02)
        found = ready.search(server.log.read_text(errors="replace"))
    marks["ready"] = time.monotonic()
    await asyncio.sleep(after)
    stop.set()
    await asyncio.gather(*tasks)
    failed = [(sent - marks["kill"], outcome) for sent, outcome in outcomes if outcome != 200]
    after_ready = [outcome for sent, outcome in outcomes if sent > marks["ready"]]
    return {
        "victim_pid": victim,
        "replaced": found is not None,
        "kill_to_ready_s": round(float(found.group(2)), 3) if found else None,
        "replacement_load_s": round(float(found.group(1)), 3) if found else None,
        "requests": len(outcomes),
        "refused": sum(1 for _, outcome in outcomes if str(outcome).startswith("refused")),
        "failed": [{"sent_after_kill_s": round(at, 4), "outcome": outcome} for at, outcome in failed],
        "all_failures_sent_before_the_kill": all(at <= 0 for at, _ in failed),
        "after_ready": {"sent": len(after_ready), "ok": sum(1 for o in after_ready if o == 200)},
    }


def run_kill(
    bundle: str,
    server_args: tuple[str, ...] = (),
    clients: int = 4,
    before: float = 5.0,
    after: float = 5.0,
    max_wait: float = 120.0,
    log: Path = Path("serve-kill.log"),
) -> dict[str, Any]:
    """The kill-a-worker scenario (module docstring) against a server with two workers started here."""
    server = ServerProcess(bundle, ["--workers", "2", *server_args], log)
    try:
        result = run_async(_load_and_kill(server, clients, before, after, max_wait))
    finally:
        exit_status = server.stop()
    return {"bundle": bundle, "server_args": ["--workers", "2", *server_args], **result, "exit_status": exit_status}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--before", type=float, default=5.0, help="seconds of load before the kill")
    parser.add_argument("--after", type=float, default=5.0, help="seconds of load after the replacement is ready")
    parser.add_argument("--max-wait", type=float, default=120.0)
    parser.add_argument("--server-arg", action="append", default=[], help="one argument for ner-export serve")
    parser.add_argument("--out", default="serve-kill.json")
    args = parser.parse_args(argv)
    result = run_kill(
        args.bundle,
        tuple(args.server_arg),
        args.clients,
        args.before,
        args.after,
        args.max_wait,
        Path(args.out).with_suffix(".log"),
    )
    text = json.dumps(result, indent=2)
    Path(args.out).write_text(text + "\n")
    print(text)
    ok = result["replaced"] and not result["refused"] and result["all_failures_sent_before_the_kill"]
    return 0 if ok and result["after_ready"]["ok"] == result["after_ready"]["sent"] else 1


if __name__ == "__main__":
    sys.exit(main())
