"""`python -m ner_export.benchmarks.serve_load`: `ner-export serve` under open-loop load, against its ceiling.

An open-loop generator on loopback: requests (one CoNLL-2003 test sentence each) are scheduled by a
Poisson process at a fixed offered rate and sent at their time whether or not earlier ones have been
answered, and latency is measured from the *scheduled* send time, so a server (or a client) that falls
behind shows up as latency instead of silently lowering the load (no coordinated omission). It sweeps
offered rates, for (a) the server with micro-batching, (b) the server with `--max-batch-size 1`, and
(c) the offline `model.predict(batch_size=32)` throughput of the same bundle as the ceiling, then checks
issue #14's targets for (a) and says by how much each misses. With `--ray` it also sweeps (r), the same
settings on Ray Serve (`--engine ray`: a local Ray, one replica, `@serve.batch`), with the same
generator, rates and data, and reports Ray Serve's overhead against (a). With `--workers N`, (a) and
(b) run N server processes of `--threads` / N threads each (`ner-export serve --workers`); (c) and
(r) keep all `--threads`. `--streams S` passes `ner-export serve --streams S` to (a) and (b).

Trade-offs: the client and the server share this machine's cores, so the client is kept light (raw
asyncio streams over a small keep-alive connection pool, bodies prebuilt, responses parsed only for
status and length, no torch: the CoNLL words are read by a ten-line reader rather than the training
package) and the results record how many CPUs both had. Rates default to fractions of (c), so the sweep
crosses saturation on any machine; the step count, each step's duration and its request count are
bounded, and each step waits a bounded time for stragglers. The server's batch-size histogram and RSS
come from its own `/metrics` (for (r), which has none, from the replica's counters in `/info`; its RSS is
the replica's alone, without Ray's proxy, controller and raylet). Servers bind 127.0.0.1 only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import platform
import random
import re
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["LoadConfig", "run_load", "read_sentences", "main"]

HOST = "127.0.0.1"
DEFAULT_DATA = Path("..") / "shared" / "data" / "conll2003" / "test.txt"
MAX_IDLE_S = 4.0  # the load generator reuses a keep-alive connection idle at most this long
FRACTIONS = (0.1, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5)
TARGETS = {
    "p99_limit_ms": 50.0,  # (a)'s highest offered rate with p99 <= this ...
    "vs_offline": 0.6,  # ... is at least this times (c) ...
    "vs_batch1": 1.5,  # ... and at least this times (b)'s
    "p50_at_10pct_ms": 5.0,  # p50 at 10% of that rate
    "overload_factor": 2.0,  # at this times saturation:
    "overload_p99_ms": 250.0,  # accepted requests' p99
    "fast_429_p99_ms": 50.0,  # what "429 fast" is taken to mean
    "rss_growth": 0.10,  # RSS "flat": grows by at most this fraction over the overload step
}


@dataclass(frozen=True)
class LoadConfig:
    bundle: str
    data: str | None = None  # CoNLL file; None: ../shared/data/conll2003/test.txt if present
    out: str = "bench-results"
    name: str = "serve-cpu"
    precision: str | None = None
    threads: int | None = None  # the server's and the offline model's intra-op threads
    workers: int = 1  # server processes for (a) and (b), each with threads / workers threads
    streams: int | None = None  # `ner-export serve --streams` for (a) and (b); None: the server's default
    allow_batch_dependent: bool = False
    max_wait_ms: float = 0.0
    max_queued_texts: int | None = None  # None: the server's default
    max_queue_ms: float | None = None  # None: the server's default
    rates: tuple[float, ...] | None = None  # offered requests/s; None: FRACTIONS of (c)
    step_seconds: float = 10.0
    max_requests_per_step: int = 20000
    refine: int = 2  # bisection steps between the last rate meeting the p99 limit and the first missing it
    offline_seconds: float = 10.0
    sentences: int | None = None
    connections: int = 256  # above the server's default --max-queued-texts (64), so overload reaches its queue limits
    seed: int = 0
    progress: bool = True
    command: str = ""
    smoke: bool = False  # a plumbing check on tiny rates: its numbers measure nothing
    ray: bool = False  # also (r): the same settings on Ray Serve (`ner-export serve --engine ray`, needs the ray extra)


# --------------------------------------------------------------------------- data
def read_sentences(path: Path) -> list[str]:
    """Sentences of a CoNLL file as text (words joined by spaces); only the first column is read."""
    sentences, words = [], []
    for line in path.read_text(encoding="utf-8").splitlines():
        token = line.split(maxsplit=1)[0] if line.strip() else ""
        if not token or token == "-DOCSTART-":
            if words:
                sentences.append(" ".join(words))
            words = []
        else:
            words.append(token)
    if words:
        sentences.append(" ".join(words))
    return sentences


# --------------------------------------------------------------------------- the server
class ServerProcess:
    """`ner-export serve` in a subprocess on 127.0.0.1 with a free port; stopped with SIGTERM."""

    def __init__(self, bundle: str, args: Sequence[str], log: Path, start_timeout: float = 60) -> None:
        command = [
            sys.executable,
            "-m",
            "ner_export",
            "serve",
            bundle,
            "--host",
            HOST,
            "--port",
            "0",
            "--no-access-log",
            *args,
        ]
        self.log = log
        began = time.monotonic()
        with open(log, "wb") as sink:
            self.proc = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + start_timeout
        port = None
        while port is None:
            found = re.search(r"on http://127\.0\.0\.1:(\d+)", log.read_text(errors="replace"))
            if found:
                port = int(found.group(1))
            elif self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the server did not start:\n{log.read_text(errors='replace')[-2000:]}")
            else:
                time.sleep(0.05)
        self.port = port
        while _get(port, "/ready")[0] != 200:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the server never became ready:\n{log.read_text(errors='replace')[-2000:]}")
            time.sleep(0.05)
        self.ready_s = (
            time.monotonic() - began
        )  # process start to ready (model loaded; for ray: Ray and Serve started too)

    def metrics(self) -> dict[str, Any]:
        from prometheus_client.parser import text_string_to_metric_families

        status, body = _get(self.port, "/metrics")
        if status != 200:
            return self._replica_counters()
        values: dict[str, Any] = {"batch_size_buckets": {}}
        for family in text_string_to_metric_families(body.decode()):
            for s in family.samples:
                if s.name == "ner_serve_batch_size_bucket":
                    values["batch_size_buckets"][s.labels["le"]] = s.value
                elif s.name in (
                    "ner_serve_batch_size_sum",
                    "ner_serve_batch_size_count",
                    "process_resident_memory_bytes",
                    "ner_serve_inference_duration_seconds_sum",
                    "ner_serve_queue_wait_seconds_sum",
                    "ner_serve_queue_wait_seconds_count",
                ):
                    values[s.name] = s.value
        return values

    def _replica_counters(self) -> dict[str, Any]:
        """The Ray engine has no /metrics: its replica's counters from /info, under the same names (one replica)."""
        replica = self.info().get("replica")
        if not replica:
            return {}
        return {
            "batch_size_buckets": {},
            "ner_serve_batch_size_count": replica["batches"],
            "ner_serve_batch_size_sum": replica["texts"],
            "ner_serve_inference_duration_seconds_sum": replica["inference_seconds"],
            "ner_serve_queue_wait_seconds_sum": replica["queue_wait_seconds"],
            "ner_serve_queue_wait_seconds_count": replica["texts"],
            "process_resident_memory_bytes": replica["rss_bytes"] or 0,
        }

    def info(self) -> dict[str, Any]:
        status, body = _get(self.port, "/info")
        return json.loads(body) if status == 200 else {}

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode


def _get(port: int, path: str) -> tuple[int, bytes]:
    import http.client

    try:
        connection = http.client.HTTPConnection(HOST, port, timeout=10)
        connection.request("GET", path)
        response = connection.getresponse()
        body = response.read()
        connection.close()
        return response.status, body
    except OSError:
        return 0, b""


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds so far of process `pid` and its living descendants (Linux /proc), else None."""
    ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    total, pending, seen = 0.0, [pid], set()
    while pending:
        current = pending.pop()
        if current in seen:
            continue
        seen.add(current)
        try:
            stat = Path(f"/proc/{current}/stat").read_text()
            fields = stat.rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks
            for task in Path(f"/proc/{current}/task").iterdir():
                pending += [int(child) for child in (task / "children").read_text().split()]
        except (OSError, IndexError, ValueError):
            if current == pid:
                return None
    return total


# --------------------------------------------------------------------------- the load generator
class _Pool:
    """Keep-alive HTTP/1.1 connections to one port; at most `size` open, extra callers wait."""

    def __init__(self, port: int, size: int) -> None:
        self.port, self.size = port, size
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = []  # and when released
        self.open = 0
        self.freed = asyncio.Condition()

    async def acquire(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        async with self.freed:
            while True:
                while not self.idle and self.open >= self.size:
                    await self.freed.wait()
                if not self.idle:
                    break
                reader, writer, released = self.idle.pop()
                # the server closes a connection idle for its keep-alive timeout (uvicorn: 5 s); reusing
                # one then fails with no fault of the server's, so drop it as an HTTP client does
                if time.monotonic() - released < MAX_IDLE_S:
                    return reader, writer
                writer.close()
                self.open -= 1
            self.open += 1
        try:
            return await asyncio.open_connection(HOST, self.port)
        except OSError:
            await self.release(None)
            raise

    async def release(self, conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None) -> None:
        async with self.freed:
            if conn is None:
                self.open -= 1
            else:
                self.idle.append((*conn, time.monotonic()))
            self.freed.notify()

    def close(self) -> None:
        for _, writer, _ in self.idle:
            writer.close()
        self.idle.clear()


async def _post(pool: _Pool, request: bytes) -> int:
    conn = await pool.acquire()
    reader, writer = conn
    try:
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        length, close = 0, False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and value.strip().lower() == b"close":
                close = True
        await reader.readexactly(length)
    except BaseException:
        writer.close()
        await pool.release(None)
        raise
    if close:
        writer.close()
        await pool.release(None)
    else:
        await pool.release(conn)
    return status


async def _step(
    port: int, bodies: list[bytes], rate: float, seconds: float, max_requests: int, connections: int, rng: random.Random
) -> dict[str, Any]:
    """One offered rate: Poisson arrivals for `seconds` (at most `max_requests`), latency from schedule."""
    gaps = []
    total = 0.0
    while len(gaps) < max_requests:
        total += rng.expovariate(rate)
        if total > seconds:
            break
        gaps.append(total)
    pool = _Pool(port, connections)
    loop = asyncio.get_running_loop()
    for conn in [await pool.acquire() for _ in range(min(8, connections))]:  # a warm pool, as in steady state
        await pool.release(conn)
    records: list[tuple[int, float]] = []  # (status or 0 for a transport error, latency s)
    lags: list[float] = []  # how late the client started each request (its own scheduling delay)

    async def one(scheduled: float, request: bytes) -> None:
        lags.append(loop.time() - scheduled)
        try:
            status = await _post(pool, request)
        except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
            status = 0
        records.append((status, loop.time() - scheduled))

    tasks = []
    start = loop.time() + 0.05
    for offset in gaps:
        at = start + offset
        delay = at - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        body = bodies[rng.randrange(len(bodies))]
        tasks.append(asyncio.ensure_future(one(at, body)))
    window = max(gaps[-1] if gaps else seconds, 1e-3)
    done, pending = await asyncio.wait(tasks, timeout=30) if tasks else (set(), set())
    for task in pending:
        task.cancel()
    pool.close()
    statuses = [s for s, _ in records]
    ok = np.array([lat for s, lat in records if s == 200]) * 1000
    refused = np.array([lat for s, lat in records if s == 429]) * 1000
    return {
        "offered_rps": rate,
        "sent": len(gaps),
        "window_s": window,
        "achieved_rps": len(ok) / window,
        "ok": len(ok),
        "status_429": statuses.count(429),
        "status_5xx": sum(1 for s in statuses if 500 <= s < 600),
        "other_status": sum(1 for s in statuses if s not in (0, 200, 429) and not 500 <= s < 600),
        "transport_errors": statuses.count(0),
        "unfinished": len(pending),
        "latency_ms": _percentiles(ok),
        "latency_429_ms": _percentiles(refused),
        "client_lag_ms": _percentiles(np.array(lags) * 1000),
    }


def _run_async(coroutine: Any) -> Any:
    """asyncio.run, on uvloop when installed (it comes with uvicorn[standard]): a lighter client."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


def _percentiles(values: np.ndarray) -> dict[str, float | None]:
    if len(values) == 0:
        return {"p50": None, "p95": None, "p99": None, "p99.9": None, "max": None}
    p50, p95, p99, p999 = np.percentile(values, [50, 95, 99, 99.9]).tolist()
    return {"p50": p50, "p95": p95, "p99": p99, "p99.9": p999, "max": float(values.max())}


def _with_server_metrics(step: dict[str, Any], before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    buckets = {
        le: after["batch_size_buckets"].get(le, 0) - before["batch_size_buckets"].get(le, 0)
        for le in after.get("batch_size_buckets", {})
    }
    batches = after.get("ner_serve_batch_size_count", 0) - before.get("ner_serve_batch_size_count", 0)
    texts = after.get("ner_serve_batch_size_sum", 0) - before.get("ner_serve_batch_size_sum", 0)
    waits = after.get("ner_serve_queue_wait_seconds_count", 0) - before.get("ner_serve_queue_wait_seconds_count", 0)
    step["server"] = {
        "batches": batches,
        "mean_batch_size": texts / batches if batches else None,
        "batch_size_cumulative": buckets,  # Prometheus buckets: batches with size <= le
        "mean_inference_ms": 1000
        * (
            after.get("ner_serve_inference_duration_seconds_sum", 0)
            - before.get("ner_serve_inference_duration_seconds_sum", 0)
        )
        / batches
        if batches
        else None,
        "mean_queue_wait_ms": 1000
        * (after.get("ner_serve_queue_wait_seconds_sum", 0) - before.get("ner_serve_queue_wait_seconds_sum", 0))
        / waits
        if waits
        else None,
        "rss_mb_before": before.get("process_resident_memory_bytes", 0) / 2**20,
        "rss_mb_after": after.get("process_resident_memory_bytes", 0) / 2**20,
    }
    return step


def _cpu_use(
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


def _meets_p99(step: dict[str, Any], limit_ms: float) -> bool:
    p99 = step["latency_ms"]["p99"]
    clean = (
        step["status_429"] == 0
        and step["status_5xx"] == 0
        and step["transport_errors"] == 0
        and step["unfinished"] == 0
    )
    return clean and p99 is not None and p99 <= limit_ms and step["achieved_rps"] >= 0.9 * step["offered_rps"]


def _best_rate(steps: list[dict[str, Any]], limit_ms: float) -> float | None:
    good = [s["offered_rps"] for s in steps if _meets_p99(s, limit_ms)]
    return max(good) if good else None


# --------------------------------------------------------------------------- the run
def _offline_throughput(config: LoadConfig, texts: list[str], say: Any) -> dict[str, Any]:
    from ner_export.runtime import NerModel, available_cpus

    model = NerModel.load(config.bundle, threads=config.threads or available_cpus(), precision=config.precision)
    model.predict(texts[:64], batch_size=32)
    best, rounds, started = math.inf, 0, time.perf_counter()
    while rounds < 1 or (time.perf_counter() - started < config.offline_seconds and rounds < 20):
        began = time.perf_counter()
        model.predict(texts, batch_size=32)
        best = min(best, time.perf_counter() - began)
        rounds += 1
    say(f"(c) offline predict(batch_size=32): {len(texts) / best:.0f} sentences/s (best of {rounds})")
    return {
        "throughput_sps": len(texts) / best,
        "rounds": rounds,
        "precision": model.precision,
        "batch_invariant": model.batch_invariant,
    }


ECONOMY_SIZES = (1, 4, 16)  # texts per call in (e); plus "sorted": one call over a stream's whole share


def _batching_economy(config: LoadConfig, texts: list[str], say: Any) -> dict[str, Any]:
    """(e) What batching can buy on this machine: the model's sentences/s by texts per call, in-process.

    Run the way the server runs batches under load: one model with (a)'s threads and streams, one
    Python thread per stream, each calling `predict(texts, stream=True)` on its share. `1` is what (b)
    gets (a lone text per call), `4` and `16` what (a) gets from a queue (texts in arrival order),
    `sorted` one call over each stream's whole share (length-sorted batches of 32, as (c)). (a) can
    beat (b) only by this ratio's gain per sentence, less what HTTP costs both per request alike.
    """
    import threading

    from ner_export.runtime import NerModel, available_cpus

    threads = max(1, (config.threads or available_cpus()) // config.workers)
    model = NerModel.load(config.bundle, threads=threads, streams=config.streams, precision=config.precision)
    sample = list(texts)
    random.Random(config.seed).shuffle(sample)
    sample = sample[: 40 if config.smoke else 1200]
    model.predict(sample[:64], batch_size=32)
    lanes = max(1, model.streams)

    def rate(size: int | None) -> float:
        shares = [sample[k::lanes] for k in range(lanes)]

        def lane(share: list[str]) -> None:
            if size is None:
                model.predict(share, batch_size=32, stream=True)
                return
            for start in range(0, len(share), size):
                model.predict(share[start : start + size], batch_size=32, stream=True)

        workers = [threading.Thread(target=lane, args=(share,)) for share in shares]
        began = time.perf_counter()
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        return len(sample) / (time.perf_counter() - began)

    cases: dict[str, int | None] = {str(k): k for k in ECONOMY_SIZES} | {"sorted": None}
    best = dict.fromkeys(cases, 0.0)
    for _ in range(1 if config.smoke else 3):  # rounds interleave the cases, so drift hits them alike
        for name, size in cases.items():
            best[name] = max(best[name], rate(size))
    lone = best["1"]
    gains = {name: value / lone for name, value in best.items()}
    say(
        "(e) batching economy, sentences/s by texts per call: "
        + ", ".join(f"{name} {value:.0f} ({gains[name]:.2f}x)" for name, value in best.items())
    )
    return {
        "threads": threads,
        "streams": model.streams,
        "sentences": len(sample),
        "sentences_per_s": best,
        "gain_over_lone": gains,
        "best_queue_gain": max(gains[str(k)] for k in ECONOMY_SIZES),
    }


def _sweep(
    config: LoadConfig,
    label: str,
    args: list[str],
    bodies: list[bytes],
    rates: list[float],
    out: Path,
    say: Any,
    extra: bool,
    saturation_hint: float,
) -> dict[str, Any]:
    server = ServerProcess(
        config.bundle, args, out / f"{config.name}-{label}.log", start_timeout=240 if "ray" in args else 60
    )
    say(f"({label}) ready in {server.ready_s:.1f} s")
    rng = random.Random(config.seed)
    steps: list[dict[str, Any]] = []

    def measure(rate: float, kind: str = "sweep") -> dict[str, Any]:
        before = server.metrics()
        cpu_before = (_cpu_seconds(server.proc.pid), time.process_time())
        step = _run_async(
            _step(server.port, bodies, rate, config.step_seconds, config.max_requests_per_step, config.connections, rng)
        )
        cpu_after = (_cpu_seconds(server.proc.pid), time.process_time())
        step = _with_server_metrics(step, before, server.metrics())
        step["cpu"] = _cpu_use(step, cpu_before, cpu_after)
        step["kind"] = kind
        lat = step["latency_ms"]
        say(
            f"({label}) {kind} {rate:8.1f} req/s offered: {step['achieved_rps']:8.1f} ok/s, "
            f"p50 {_ms(lat['p50'])} p99 {_ms(lat['p99'])} ms, "
            f"429 {step['status_429']}, 5xx {step['status_5xx']}, errors {step['transport_errors']}, "
            f"mean batch {_num(step['server']['mean_batch_size'])}"
        )
        return step

    try:
        info = server.info()
        for rate in rates:
            steps.append(measure(rate))
        limit = TARGETS["p99_limit_ms"]
        for _ in range(config.refine):
            good = [s["offered_rps"] for s in steps if _meets_p99(s, limit)]
            bad = [
                s["offered_rps"]
                for s in steps
                if not _meets_p99(s, limit) and (not good or s["offered_rps"] > max(good))
            ]
            if not good or not bad:
                break
            steps.append(measure((max(good) + min(bad)) / 2, "refine"))
        result: dict[str, Any] = {
            "args": args,
            "info": {k: info.get(k) for k in ("batch_invariant", "batching", "graph", "runtime", "engine")},
            "steps": steps,
            "ready_s": server.ready_s,
        }
        best = _best_rate(steps, limit)
        result["best_rate_p99_ok"] = best
        if extra:
            if best:
                result["low_load"] = measure(0.1 * best, "10% of best")
            saturation = max([s["achieved_rps"] for s in steps] + [saturation_hint])
            result["saturation_rps"] = saturation
            result["overload"] = measure(TARGETS["overload_factor"] * saturation, "2x saturation")
    finally:
        result_code = server.stop()
    result["exit_status"] = result_code
    return result


def run_load(config: LoadConfig) -> dict[str, Any]:
    """Run the comparison, write JSON, Markdown and PNG to `config.out`; return the results."""
    from ner_export.runtime import available_cpus
    from ner_export.runtime.manifest import MANIFEST_NAME

    def say(message: str) -> None:
        if config.progress:
            print(message, file=sys.stderr, flush=True)

    data = Path(config.data) if config.data else DEFAULT_DATA
    texts = read_sentences(data)[: config.sentences]
    if not texts:
        raise ValueError(f"{data}: no sentences")
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    bodies = [json.dumps({"inputs": t}, ensure_ascii=False).encode() for t in texts]
    requests = [
        b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
        % (len(b), b)
        for b in bodies
    ]
    threads = config.threads or available_cpus()

    offline = _offline_throughput(config, texts, say)
    economy = _batching_economy(config, texts, say)
    ceiling = offline["throughput_sps"]
    rates = list(config.rates) if config.rates else [round(f * ceiling, 1) for f in FRACTIONS]
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
    configs = {
        "a": _sweep(config, "a", local, requests, rates, out, say, extra=True, saturation_hint=0.0),
        "b": _sweep(
            config, "b", [*local, "--max-batch-size", "1"], requests, rates, out, say, extra=False, saturation_hint=0.0
        ),
    }
    if config.ray:  # the same settings, rates and data; --threads becomes the replica's num_cpus
        configs["r"] = _sweep(
            config,
            "r",
            ["--threads", str(threads), *common, "--engine", "ray"],
            requests,
            rates,
            out,
            say,
            extra=False,
            saturation_hint=0.0,
        )
    results = {
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
        "bundle": {"path": config.bundle, "bundle_json_sha256": _sha256(Path(config.bundle) / MANIFEST_NAME)},
        "offline": offline,
        "batching_economy": economy,
        "configs": configs,
        "targets": _targets(offline, configs, economy),
        "smoke": config.smoke,
    }
    if "r" in configs:
        results["ray_overhead"] = _ray_overhead(configs["a"], configs["r"])
    stem = out / config.name
    stem.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    stem.with_suffix(".md").write_text(markdown(results), encoding="utf-8")
    plot(results, stem.with_suffix(".png"))
    results["files"] = [str(stem.with_suffix(x)) for x in (".json", ".md", ".png")]
    return results


def _ray_overhead(a: dict[str, Any], r: dict[str, Any]) -> dict[str, Any]:
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


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def _cpu_bound(run: dict[str, Any], cpus: int) -> dict[str, float] | None:
    """At a run's best rate: CPU per request (server + client) and the most requests/s the CPUs give at that cost."""
    best = run.get("best_rate_p99_ok")
    step = next((s for s in run["steps"] if s["offered_rps"] == best), None)
    cpu = (step or {}).get("cpu") or {}
    server, client = cpu.get("server_ms_per_request"), cpu.get("client_ms_per_request")
    if server is None or client is None:
        return None
    return {"server_ms": server, "client_ms": client, "max_rps": 1000 * cpus / (server + client)}


def _targets(
    offline: dict[str, Any], configs: dict[str, Any], economy: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """Each target of issue #14 for (a): its value, the limit, whether it holds, and the miss.

    A note says what bounds a missed rate target, from the same run: the CPU a request took at (a)'s best
    rate (its inverse caps the served rate at any latency) and the batching economy (e).
    """
    from ner_export.runtime import available_cpus

    a, b = configs["a"], configs["b"]
    best_a, best_b = a.get("best_rate_p99_ok"), b.get("best_rate_p99_ok")
    rows = []

    def add(name: str, value: float | None, limit: float, kind: str, why: str = "") -> None:
        holds = value is not None and (value >= limit if kind == "min" else value <= limit)
        miss = None if holds or value is None else (limit - value if kind == "min" else value - limit)
        rows.append(
            {"target": name, "value": value, "limit": limit, "kind": kind, "holds": holds, "miss_by": miss, "note": why}
        )

    ceiling = offline["throughput_sps"]
    bound = _cpu_bound(a, available_cpus())
    add(
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
    add(
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
    low = a.get("low_load")
    add("(a) p50 ms at 10% of that rate", low["latency_ms"]["p50"] if low else None, TARGETS["p50_at_10pct_ms"], "max")
    over = a.get("overload")
    if over:
        add("(a) at 2x saturation: accepted p99 ms", over["latency_ms"]["p99"], TARGETS["overload_p99_ms"], "max")
        add("(a) at 2x saturation: 5xx responses", over["status_5xx"] + over["transport_errors"], 0, "max")
        add(
            "(a) at 2x saturation: 429 p99 ms (the excess refused fast)",
            over["latency_429_ms"]["p99"],
            TARGETS["fast_429_p99_ms"],
            "max",
            "" if over["status_429"] else "no 429 at all: the offered load did not overflow the queue",
        )
        rss = over["server"]
        growth = (rss["rss_mb_after"] - rss["rss_mb_before"]) / rss["rss_mb_before"] if rss["rss_mb_before"] else None
        add("(a) at 2x saturation: RSS growth over the step", growth, TARGETS["rss_growth"], "max")
    return rows


# --------------------------------------------------------------------------- reports
def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _num(value: float | None, spec: str = ".1f") -> str:
    return "-" if value is None else format(value, spec)


def _economy_lines(economy: dict[str, Any] | None) -> list[str]:
    if not economy:
        return []
    rates, gains = economy["sentences_per_s"], economy["gain_over_lone"]
    names = {"1": "1 (lone, as (b))", "4": "4 queued texts", "16": "16 queued texts", "sorted": "sorted batches of 32"}
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
        *(f"| {names.get(k, k)} | {rates[k]:.0f} | {gains[k]:.2f} |" for k in rates),
        "",
    ]


def markdown(results: dict[str, Any]) -> str:
    offline, configs = results["offline"], results["configs"]
    lines = [
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
        *_economy_lines(results.get("batching_economy")),
    ]
    titles = {
        "a": "(a) serve, micro-batching",
        "b": "(b) serve, --max-batch-size 1",
        "r": "(r) Ray Serve (--engine ray, one replica, @serve.batch)",
    }
    for key, run in configs.items():
        batching = (run.get("info") or {}).get("batching") or {}
        lines += [
            f"## {titles[key]}",
            "",
            f"Server arguments: `{' '.join(run['args'])}`; batching across requests: {batching.get('cross_request')}; "
            f"streams: {batching.get('streams', '-')}; "
            f"highest offered rate with p99 <= 50 ms: **{_num(run.get('best_rate_p99_ok'))} req/s**; "
            f"ready {_num(run.get('ready_s'))} s after start; server exit status {run.get('exit_status')}.",
            "",
            "| step | offered req/s | achieved ok/s | p50 ms | p95 ms | p99 ms | p99.9 ms | 429 | 5xx | errors "
            "| 429 p99 ms | mean batch | client lag p99 ms | CPU ms/request server/client | RSS MB before/after |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        steps = sorted(run["steps"], key=lambda s: s["offered_rps"]) + [
            run[k] for k in ("low_load", "overload") if run.get(k)
        ]
        for s in steps:
            lat, srv, cpu = s["latency_ms"], s["server"], s.get("cpu") or {}
            lines.append(
                f"| {s['kind']} | {s['offered_rps']:.1f} | {s['achieved_rps']:.1f} "
                f"| {_ms(lat['p50'])} | {_ms(lat['p95'])} | {_ms(lat['p99'])} | {_ms(lat['p99.9'])} "
                f"| {s['status_429']} | {s['status_5xx']} | {s['transport_errors'] + s['unfinished']} "
                f"| {_ms(s['latency_429_ms']['p99'])} | {_num(srv['mean_batch_size'])} "
                f"| {_ms(s['client_lag_ms']['p99'])} "
                f"| {_num(cpu.get('server_ms_per_request'), '.2f')}/{_num(cpu.get('client_ms_per_request'), '.2f')} "
                f"| {srv['rss_mb_before']:.0f}/{srv['rss_mb_after']:.0f} |"
            )
        lines.append("")
    overhead = results.get("ray_overhead")
    if overhead:
        best = overhead["best_rate_p99_ok"]
        lines += [
            "## Ray Serve against ner-export serve",
            "",
            f"Highest offered rate with p99 <= 50 ms: (a) ner-export serve **{_num(best['a'])} req/s**, "
            f"(r) Ray Serve **{_num(best['r'])} req/s** (r/a = {_num(best['r_over_a'], '.2f')}); "
            f"ready after start: (a) {_num(overhead['ready_s']['a'])} s, (r) {_num(overhead['ready_s']['r'])} s "
            "(Ray and Serve start-up included). Same generator, rates and sentences; (r)'s RSS is its replica's alone.",
            "",
            "| offered req/s | (a) p50 ms | (r) p50 ms | (a) p99 ms | (r) p99 ms | (a) ok/s | (r) ok/s |",
            "|---|---|---|---|---|---|---|",
        ]
        for row in overhead["by_rate"]:
            a, r = row["a"], row["r"]
            lines.append(
                f"| {row['offered_rps']:.1f} | {_ms(a['p50'])} | {_ms(r['p50'])} | {_ms(a['p99'])} | {_ms(r['p99'])} "
                f"| {a['achieved_rps']:.1f} | {r['achieved_rps']:.1f} |"
            )
        lines.append("")
    lines += [
        "## Targets (issue #14, for (a))",
        "",
        "| target | value | limit | holds | missed by | note |",
        "|---|---|---|---|---|---|",
    ]
    for t in results["targets"]:
        sign = ">=" if t["kind"] == "min" else "<="
        lines.append(
            f"| {t['target']} | {_num(t['value'], '.3f')} | {sign} {t['limit']:g} | {'yes' if t['holds'] else 'NO'} "
            f"| {_num(t['miss_by'], '.3f')} | {t['note']} |"
        )
    lines += ["", f"Command: `{results['command']}`", ""]
    return "\n".join(lines)


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


# --------------------------------------------------------------------------- CLI
def main(argv: Sequence[str] | None = None) -> int:
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
    parser.add_argument("-q", "--quiet", action="store_true")
    args = parser.parse_args(argv)
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
        command=" ".join(["python -m ner_export.benchmarks.serve_load", *(argv if argv is not None else sys.argv[1:])]),
    )
    if args.smoke:
        config = LoadConfig(
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
    results = run_load(config)
    print(markdown(results))
    print(f"results written to {', '.join(results['files'])}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
