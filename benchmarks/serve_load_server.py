"""The server under load: `ner-export serve` in a subprocess, its metrics, and the CPU it spends.

The server runs as the CLI runs it (`python -m ner_export serve`), on 127.0.0.1 and a port it picks
(the port is read from its startup log line), and is stopped with SIGTERM, so its exit status shows
whether the drain worked. Its batch sizes, queue waits and RSS come from its own `/metrics`; the Ray
engine has none, so for it the replica's counters in `/info` stand in, under the same names. CPU time
is read from Linux /proc for the server's whole process tree (workers and Ray's processes included).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .serve_load_config import HOST

__all__ = ["ServerProcess", "http_get", "cpu_seconds"]

SERVER_METRICS = (
    "ner_serve_batch_size_sum",
    "ner_serve_batch_size_count",
    "process_resident_memory_bytes",
    "ner_serve_inference_duration_seconds_sum",
    "ner_serve_queue_wait_seconds_sum",
    "ner_serve_queue_wait_seconds_count",
)


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
        self.port = self._port_from_log(deadline)
        while http_get(self.port, "/ready")[0] != 200:
            self._fail_if_gone_or_late(deadline, "the server never became ready")
            time.sleep(0.05)
        self.ready_s = time.monotonic() - began  # process start to ready (model loaded; for ray: Ray and Serve too)

    def _port_from_log(self, deadline: float) -> int:
        """The port the server's startup line names, once it is written."""
        while True:
            found = re.search(r"on http://127\.0\.0\.1:(\d+)", self.log.read_text(errors="replace"))
            if found:
                return int(found.group(1))
            self._fail_if_gone_or_late(deadline, "the server did not start")
            time.sleep(0.05)

    def _fail_if_gone_or_late(self, deadline: float, what: str) -> None:
        """Stop the server and raise, with its log's end, when it exited or `deadline` has passed."""
        if self.proc.poll() is not None or time.monotonic() > deadline:
            self.stop()
            raise RuntimeError(f"{what}:\n{self.log.read_text(errors='replace')[-2000:]}")

    def metrics(self) -> dict[str, Any]:
        """The server's batch-size histogram and the sums of `SERVER_METRICS`, from /metrics (or /info)."""
        from prometheus_client.parser import text_string_to_metric_families

        status, body = http_get(self.port, "/metrics")
        if status != 200:
            return self._replica_counters()
        values: dict[str, Any] = {"batch_size_buckets": {}}
        for family in text_string_to_metric_families(body.decode()):
            for sample in family.samples:
                if sample.name == "ner_serve_batch_size_bucket":
                    values["batch_size_buckets"][sample.labels["le"]] = sample.value
                elif sample.name in SERVER_METRICS:
                    values[sample.name] = sample.value
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
        """The server's /info, or {} when it does not answer."""
        status, body = http_get(self.port, "/info")
        return json.loads(body) if status == 200 else {}

    def stop(self) -> int | None:
        """SIGTERM, then the exit status (killed after 30 s of draining)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        return self.proc.returncode


def http_get(port: int, path: str) -> tuple[int, bytes]:
    """GET `path` on the server: (status, body), or (0, b"") when it cannot be reached."""
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


def cpu_seconds(pid: int) -> float | None:
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
