"""`ner-export serve` shutdown and workers: SIGTERM drains accepted requests, the graceful timeout, a
second signal, the shutdown delay, and several workers on one port.
"""

from __future__ import annotations

import contextlib
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

httpx = pytest.importorskip("httpx", reason="the serve tests need httpx (the test extra)")
pytest.importorskip("fastapi", reason="ner-export serve needs the serve extra (fastapi, uvicorn, prometheus-client)")
pytest.importorskip("uvicorn", reason="ner-export serve needs the serve extra (fastapi, uvicorn, prometheus-client)")
from serve_harness import (  # noqa: E402
    expected,
    metrics,
    payload,
    post_concurrently,
    random_request,
    sample,
    serving,
    wait_for,
)

from ner_export.runtime import NerModel  # noqa: E402


def test_sigterm_during_load_answers_every_accepted_request(
    tiny_bundle: Path, tmp_path: Path, offline: NerModel
) -> None:
    """SIGTERM under load: /ready and new requests turn 503, every accepted request is answered, exit 0."""
    args = ("--precision", "fp32", "--max-wait-ms", 50, "--shutdown-delay", 0.5, "--graceful-timeout", 10)
    with serving(tiny_bundle, *args, log=tmp_path / "sigterm.log") as srv:
        outcomes: list[tuple[str, Any, float]] = []
        rng = random.Random(7)
        plan = [[random_request(rng) for _ in range(60)] for _ in range(16)]

        def client(k: int) -> None:
            with httpx.Client(timeout=30) as http:
                for inputs, aggregation in plan[k]:
                    try:
                        answer = http.post(srv.url + "/predict", json=payload(inputs, aggregation))
                    except httpx.ConnectError:
                        outcomes.append(("refused", None, time.monotonic()))  # the listener is closed: never accepted
                        return
                    except httpx.TransportError as exc:
                        outcomes.append(("lost", repr(exc), time.monotonic()))
                        return
                    outcomes.append(("answer", (inputs, aggregation, answer), time.monotonic()))
                    if answer.status_code != 200:
                        return

        threads = [threading.Thread(target=client, args=(k,)) for k in range(16)]
        for t in threads:
            t.start()
        wait_for(lambda: len(outcomes) >= 40, "some answers before the signal", timeout=20)
        srv.proc.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        ready = []
        with contextlib.suppress(httpx.TransportError):
            for _ in range(20):
                ready.append(httpx.get(srv.url + "/ready", timeout=5).status_code)
                if ready[-1] == 503:
                    break
                time.sleep(0.01)
        for t in threads:
            t.join(30)
        assert srv.proc.wait(20) == 0, srv.text()[-3000:]
    assert 503 in ready, ready
    assert not [o for o in outcomes if o[0] == "lost"], [o for o in outcomes if o[0] == "lost"]
    answers = [o[1] for o in outcomes if o[0] == "answer"]
    statuses = {answer.status_code for _, _, answer in answers}
    assert statuses <= {200, 503}, statuses
    refused = [answer for _, _, answer in answers if answer.status_code == 503]
    assert refused and all(
        a.json()["error_type"] == "unavailable" and a.headers["connection"] == "close" for a in refused
    )
    for inputs, aggregation, answer in answers:
        if answer.status_code == 200:
            single = isinstance(inputs, str)
            assert answer.json() == expected(offline, [inputs] if single else inputs, aggregation, single)
    log = (tmp_path / "sigterm.log").read_text()
    in_flight = int(re.search(r"SIGTERM: draining .*?; (\d+) requests in flight", log).group(1))
    finished_after = sum(
        1 for kind, value, at in outcomes if kind == "answer" and value[2].status_code == 200 and at > signalled
    )
    assert in_flight >= 1 and finished_after >= 1, (in_flight, finished_after)
    assert "every accepted request answered" in log


def test_requests_still_in_flight_at_the_graceful_timeout_make_the_exit_status_1(
    tiny_bundle: Path, tmp_path: Path
) -> None:
    """A request held in the queue (10 s batching wait) outlives a 0.5 s graceful timeout: exit 1, saying so."""
    args = ("--precision", "fp32", "--max-wait-ms", 10000, "--graceful-timeout", 0.5, "--request-timeout", 30)
    with serving(tiny_bundle, *args, log=tmp_path / "abandon.log") as srv:
        outcome: list[Any] = []

        def held() -> None:
            try:
                outcome.append(httpx.post(srv.url + "/predict", json={"inputs": "Paris"}, timeout=30).status_code)
            except httpx.TransportError as exc:
                outcome.append(type(exc).__name__)

        holder = threading.Thread(target=held)
        holder.start()
        wait_for(lambda: sample(metrics(srv.url), "ner_serve_queue_depth") == 1, "the held request")
        started = time.monotonic()
        assert srv.stop() == 1
        assert time.monotonic() - started < 8, "the graceful timeout must bound the shutdown"
        holder.join(10)
    log = srv.text()
    assert "graceful timeout (0.5 s): 1 requests still in flight are abandoned (answered 503)" in log
    assert "Error: graceful timeout of 0.5 s: 1 accepted requests were abandoned" in log
    assert "Traceback" not in log and outcome == [503], outcome


def test_a_second_sigterm_stops_a_drain_at_once(tiny_bundle: Path, tmp_path: Path) -> None:
    """A request held in the queue (60 s batching wait) keeps the drain of a first SIGTERM open for up to the
    60 s graceful timeout; a second SIGTERM ends the process within seconds (15 s: several times what it
    takes), and the held request is not left hanging."""
    args = ("--precision", "fp32", "--max-wait-ms", 60000, "--graceful-timeout", 60, "--request-timeout", 60)
    with serving(tiny_bundle, *args, log=tmp_path / "twice.log") as srv:
        outcome: list[Any] = []

        def held() -> None:
            try:
                outcome.append(httpx.post(srv.url + "/predict", json={"inputs": "Paris"}, timeout=90).status_code)
            except httpx.TransportError as exc:
                outcome.append(type(exc).__name__)

        holder = threading.Thread(target=held)
        holder.start()
        wait_for(lambda: sample(metrics(srv.url), "ner_serve_queue_depth") == 1, "the held request")
        srv.proc.send_signal(signal.SIGTERM)
        wait_for(lambda: "SIGTERM: draining" in srv.text(), "the drain to start")
        assert httpx.get(srv.url + "/ready", timeout=5).status_code == 503  # draining, held open by the request
        assert srv.proc.poll() is None
        started = time.monotonic()
        srv.proc.send_signal(signal.SIGTERM)
        try:
            srv.proc.wait(15)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"a second SIGTERM did not stop the drain:\n{srv.text()[-3000:]}") from None
        assert time.monotonic() - started < 15
        holder.join(15)
        assert not holder.is_alive() and len(outcome) == 1, "the held request was left hanging"
        log = srv.text()
        assert "SIGTERM again: stopping at once; 1 requests in flight are cut" in log
        assert "every accepted request answered" not in log  # a cut drain never claims it


def test_shutdown_delay_keeps_the_listener_open_answering_503(tiny_bundle: Path, tmp_path: Path) -> None:
    """--shutdown-delay 3: after SIGTERM, with nothing in flight, new connections are still accepted for 3 s
    (so a load balancer sees the 503s), each /ready and /predict answered 503; then the listener closes and
    the process exits 0. Only lower bounds on time are checked: a busy machine makes them later, not earlier."""
    delay = 3.0
    args = ("--precision", "fp32", "--shutdown-delay", delay, "--graceful-timeout", 30)
    with serving(tiny_bundle, *args, log=tmp_path / "delay.log") as srv:
        signalled = time.monotonic()
        srv.proc.send_signal(signal.SIGTERM)
        wait_for(lambda: "SIGTERM: draining" in srv.text(), "the drain to start")
        answered: list[tuple[float, int, int]] = []  # (seconds after the signal, /ready status, /predict status)
        while True:
            began = time.monotonic() - signalled
            assert began < 30, "the listener was still open 30 s after SIGTERM"
            try:
                with httpx.Client(timeout=10) as client:  # a new connection for each probe
                    ready = client.get(srv.url + "/ready")
                    refused = client.post(srv.url + "/predict", json={"inputs": "Paris"})
            except httpx.TransportError:  # refused, or cut as the listener closed
                closed_after = time.monotonic() - signalled
                break
            assert refused.json()["error_type"] == "unavailable" and refused.headers["connection"] == "close"
            answered.append((began, ready.status_code, refused.status_code))
            time.sleep(0.05)
        assert srv.proc.wait(20) == 0, srv.text()[-3000:]
    assert answered and {(r, p) for _, r, p in answered} == {(503, 503)}, answered
    assert closed_after >= delay, f"the listener closed {closed_after:.2f} s after SIGTERM, before the delay"
    assert answered[-1][0] >= delay / 2, f"no connection accepted late in the delay: {answered}"
    assert "drained in" in srv.text()


def test_workers_share_the_port_sum_their_metrics_and_drain_on_sigterm(
    tiny_bundle: Path, tmp_path: Path, offline: NerModel
) -> None:
    """--workers 2: two processes answer on one port, each exactly as offline predict; /metrics counts
    every text whichever worker ran it; SIGTERM to the supervisor drains both and exits 0."""
    with serving(tiny_bundle, "--precision", "fp32", "--workers", 2, log=tmp_path / "workers.log") as srv:
        pids = set()
        for _ in range(200):  # fresh connections, spread over the workers by the kernel
            info = httpx.get(srv.url + "/info", timeout=10).json()
            assert info["runtime"]["workers"] == 2 and info["runtime"]["threads"] == 1
            pids.add(info["runtime"]["pid"])
            if len(pids) == 2:
                break
        assert len(pids) == 2 and srv.proc.pid not in pids, pids
        rng = random.Random(11)
        requests = [random_request(rng) for _ in range(60)]
        n_texts = post_concurrently(srv.url, requests, 8, offline)
        values = metrics(srv.url)
        assert sample(values, "ner_serve_texts_total") == n_texts
        answered = sum(
            sample(values, "ner_serve_requests_total", path=path, status="200") for path in ("/", "/predict")
        )
        assert answered == len(requests)
        assert sample(values, "ner_serve_ready") == 1 and sample(values, "ner_serve_queue_depth") == 0
        assert sample(values, "process_resident_memory_bytes") > 0
        assert srv.stop() == 0, srv.text()[-3000:]
    log = srv.text()
    assert "with 2 workers of 1 threads" in log and "SIGTERM: draining 2 workers" in log
    assert log.count("every accepted request answered") == 2 and "Traceback" not in log


def test_a_worker_that_cannot_load_stops_the_service_with_one_line(tiny_bundle: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(tiny_bundle, broken)
    (broken / "model.onnx").write_bytes(b"not a graph")
    command = [sys.executable, "-m", "ner_export", "serve", str(broken), "--precision", "fp32", "--port", "0"]
    cli = subprocess.run([*command, "--workers", "2"], capture_output=True, text=True, timeout=120)
    last = cli.stderr.strip().splitlines()[-1]
    assert cli.returncode == 1 and last.startswith("Error: ner-serve-worker-") and "status 1" in last, cli.stderr[
        -3000:
    ]
    assert "cannot serve" in cli.stderr and "Traceback" not in cli.stderr
