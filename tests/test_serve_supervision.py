"""`ner-export serve --workers 2` keeps serving when a worker dies or hangs, and stops on a crash loop.

Real servers on 127.0.0.1 (started as in test_serve.py), a worker killed with SIGKILL as the OOM killer
would, and the test fault hook `NER_EXPORT_SERVE_FAULT` (serve/worker.py) for a worker that keeps
dying or one that hangs. Every wait polls a condition with a generous deadline; every load loop is
bounded in count and time.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

httpx = pytest.importorskip("httpx", reason="the serve tests need httpx (the test extra)")
from serve_harness import Server, metrics, sample, serving, wait_for  # noqa: E402

WORKERS = ("--precision", "fp32", "--workers", 2)


def worker_pids(url: str) -> set[int]:
    """The pids of the workers answering on `url` (fresh connections, spread over them by the kernel)."""
    pids = set()
    for _ in range(200):
        pids.add(httpx.get(url + "/info", timeout=10).json()["runtime"]["pid"])
        if len(pids) == 2:
            break
    return pids


class Load:
    """Clients posting one text per request, each on a fresh connection, until stopped (at most 2,000 each)."""

    def __init__(self, url: str, clients: int = 2) -> None:
        self.url = url
        self.outcomes: list[tuple[float, float, Any]] = []  # (sent, answered, status code or exception name)
        self.stopped = threading.Event()
        self.threads = [threading.Thread(target=self._client, daemon=True) for _ in range(clients)]

    def _client(self) -> None:
        for _ in range(2000):
            if self.stopped.is_set():
                return
            sent = time.monotonic()
            try:
                outcome: Any = httpx.post(self.url + "/predict", json={"inputs": "John Smith in Paris."}).status_code
            except httpx.TransportError as exc:
                outcome = type(exc).__name__
            self.outcomes.append((sent, time.monotonic(), outcome))

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stopped.set()
        for thread in self.threads:
            thread.join(30)


def log_time(server: Server, pattern: str, timeout: float = 60) -> float:
    """Wait for a log line matching `pattern`; return the monotonic time at which the test first saw it."""
    wait_for(lambda: re.search(pattern, server.text()) is not None, f"a log line matching {pattern!r}", timeout)
    return time.monotonic()


def test_a_killed_worker_is_replaced_while_the_port_answers(tiny_bundle: Path, tmp_path: Path) -> None:
    """SIGKILL one of two workers under load: the port answers throughout, only requests inside the killed
    worker may fail, a replacement takes over, and /metrics and the log say so."""
    with serving(tiny_bundle, *WORKERS, log=tmp_path / "kill.log") as srv:
        pids = worker_pids(srv.url)
        assert len(pids) == 2, pids
        victim = min(pids)
        with Load(srv.url) as load:
            wait_for(lambda: len(load.outcomes) >= 20, "some answers before the kill", timeout=30)
            killed_at = time.monotonic()
            os.kill(victim, signal.SIGKILL)
            pattern = rf"worker \d \(pid (\d+)\) ready in [\d.]+ s, [\d.]+ s after pid {victim} was killed by SIGKILL"
            replaced_at = log_time(srv, pattern)
            wait_for(lambda: sum(1 for o in load.outcomes if o[0] > replaced_at) >= 20, "answers after the replacement")
        replacement = int(re.search(pattern, srv.text()).group(1))
        refused = [o for o in load.outcomes if o[2] == "ConnectError"]
        assert not refused, f"the port refused connections: {refused[:3]}"
        failed = [o for o in load.outcomes if o[2] != 200]
        assert all(sent <= killed_at + 1.0 for sent, _, _ in failed), f"failures after the kill: {failed[:5]}"
        assert len(failed) <= 2, f"only the requests inside the killed worker may fail: {failed}"
        assert all(o[2] == 200 for o in load.outcomes if o[0] > replaced_at)
        assert worker_pids(srv.url) == (pids - {victim}) | {replacement}
        values = metrics(srv.url)
        assert sample(values, "ner_serve_worker_restarts_total", reason="signal") == 1
        assert sample(values, "ner_serve_worker_restarts_total", reason="exit") == 0
        assert sample(values, "ner_serve_ready") == 1
        assert srv.stop() == 0, srv.text()[-3000:]
    log = srv.text()
    assert re.search(rf"ner-serve-worker-\d \(pid {victim}\) was killed by SIGKILL; a replacement starts in 0 s", log)
    assert "SIGTERM: draining 2 workers" in log and "Traceback" not in log


def test_a_worker_that_keeps_dying_ends_the_service_with_one_line(tiny_bundle: Path, tmp_path: Path) -> None:
    """Every worker exits once ready (the test fault hook): 3 deaths within the window end the service."""
    command = [
        sys.executable,
        "-m",
        "ner_export",
        "serve",
        str(tiny_bundle),
        "--port",
        "0",
        "--threads",
        "1",
        *map(str, WORKERS),
        "--crash-loop-deaths",
        "3",
        "--crash-loop-window",
        "120",
    ]
    env = {**os.environ, "NER_EXPORT_SERVE_FAULT": "exit"}
    cli = subprocess.run(command, capture_output=True, text=True, timeout=180, env=env)
    last = cli.stderr.strip().splitlines()[-1]
    assert cli.returncode == 1, cli.stderr[-3000:]
    assert re.fullmatch(
        r"Error: worker crash loop: 3 worker deaths within 120 s \(--crash-loop-deaths 3, --crash-loop-window 120\); "
        r"the last: ner-serve-worker-\d \(pid \d+\) exited with status 3",
        last,
    ), cli.stderr[-3000:]
    assert "a replacement starts in 0 s" in cli.stderr and "a replacement starts in 1 s" in cli.stderr
    assert "Traceback" not in cli.stderr


def test_a_hung_worker_is_killed_and_replaced(
    tiny_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker that stops answering (frozen by SIGSTOP through the test fault hook) falls silent, is killed
    after --heartbeat-timeout and replaced, while the other worker answers."""
    claim = tmp_path / "hang-one-worker"
    claim.write_text("")
    monkeypatch.setenv("NER_EXPORT_SERVE_FAULT", f"hang@{claim}")
    args = (*WORKERS, "--heartbeat-timeout", 3)
    with serving(tiny_bundle, *args, log=tmp_path / "hang.log") as srv:
        monkeypatch.delenv("NER_EXPORT_SERVE_FAULT")
        fault = r"worker \d \(pid (\d+)\): NER_EXPORT_SERVE_FAULT=\S+, a test fault: hang now"
        log_time(srv, fault)
        hung = int(re.search(fault, srv.text()).group(1))
        with Load(srv.url, clients=1) as load:
            log_time(srv, rf"worker \d \(pid {hung}\) unresponsive: no (event loop|batcher) heartbeat for [\d.]+ s")
            replaced_at = log_time(srv, rf"ready in [\d.]+ s, [\d.]+ s after pid {hung} was killed as unresponsive")
            wait_for(lambda: sum(1 for o in load.outcomes if o[0] > replaced_at) >= 10, "answers after the replacement")
        assert all(o[2] == 200 for o in load.outcomes), [o for o in load.outcomes if o[2] != 200][:5]
        assert hung not in worker_pids(srv.url)
        assert sample(metrics(srv.url), "ner_serve_worker_restarts_total", reason="heartbeat") == 1
        assert srv.stop() == 0, srv.text()[-3000:]
    assert "Traceback" not in srv.text()


def test_supervision_settings_are_checked() -> None:
    from ner_export.serve import ServeSettings
    from ner_export.serve.ray_options import split_settings
    from ner_export.serve.supervisor import death_account

    for name, value in (("crash_loop_deaths", 0), ("crash_loop_window", 0), ("heartbeat_timeout", -1.0)):
        with pytest.raises(ValueError, match=name):
            ServeSettings(**{name: value})
    with pytest.raises(ValueError, match="heartbeat_timeout supervise the local engine's --workers"):
        split_settings(None, None, {"heartbeat_timeout": 5.0})
    assert death_account(-9) == "was killed by SIGKILL" and death_account(3) == "exited with status 3"
