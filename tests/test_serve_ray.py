"""The Ray Serve application (`ner-export serve --engine ray`, `ner_export.serve.ray_app`).

The tests that start Ray are slow (Ray's start-up alone takes 10-30 s on 2 busy cores); CI runs them.
One local Ray for the module (`runtime.local_ray.start_local_ray(2)`: 2 CPUs, no dashboard, bound to 127.0.0.1 as
`serve --engine ray` starts it; Serve's HTTP proxy on 127.0.0.1 and a free port), shut down when the
module ends; each application gets its own route prefix and half a CPU. Exactness is checked on the fp32
graph (batch-invariant), where batching across requests must give exactly what offline `model.predict`
gives; the refusal to batch across requests on a copy of the bundle whose manifest marks that graph as
not batch-invariant. The CLI test starts a Ray of its own in a subprocess and comes first, before the
module's Ray exists. Every loop is bounded.
"""

from __future__ import annotations

import contextlib
import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

httpx = pytest.importorskip("httpx", reason="the serve tests need httpx (the test extra)")
ray = pytest.importorskip("ray", reason="the Ray Serve application needs the ray extra: pip install 'ner-export[ray]'")
serve = pytest.importorskip(
    "ray.serve", reason="the Ray Serve application needs the ray extra: pip install 'ner-export[ray]'"
)

from serve_harness import TEXTS, expected, mark_graph_batch_dependent, post_concurrently, random_request  # noqa: E402

from ner_export.runtime import NerModel  # noqa: E402


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _get(url: str) -> Any:
    answer = httpx.get(url, timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()


# --------------------------------------------------------------------------- without a running Ray
def test_deployment_options_follow_the_settings(tiny_bundle: Path, tmp_path: Path) -> None:
    from ner_export.runtime import BundleError
    from ner_export.serve.ray_app import RayOptions, build_app, deployment_options, replica_resources, split_settings

    settings, options = split_settings(
        None,
        None,
        {"threads": 2, "max_queued_texts": 100, "num_replicas": 3, "graceful_timeout": 7.0, "access_log": False},
    )
    assert deployment_options(settings, options) == {
        "num_replicas": 3,
        "ray_actor_options": {"num_cpus": 2.0},
        "max_ongoing_requests": 132,
        "graceful_shutdown_timeout_s": 7.0,
        "logging_config": {"log_level": "INFO", "enable_access_log": False},
    }, "num_cpus follows --threads; max_ongoing_requests covers a full queue plus a running batch"
    settings, options = split_settings(
        None, None, {"num_cpus": 1.5, "autoscaling_config": {"min_replicas": 1, "max_replicas": 4}}
    )
    found = deployment_options(settings, options)
    assert found["autoscaling_config"] == {"min_replicas": 1, "max_replicas": 4} and "num_replicas" not in found
    assert found["ray_actor_options"] == {"num_cpus": 1.5}
    assert replica_resources(settings, options) == (1.5, 2), "threads follow num_cpus, rounded up"
    assert (
        replica_resources(*split_settings(None, None, {})) == (1.0, 1)
        and deployment_options(*split_settings(None, None, {}))["num_replicas"] == 1
    )
    with pytest.raises(ValueError, match="num_replicas and autoscaling_config exclude each other"):
        RayOptions(num_replicas=2, autoscaling_config={"max_replicas": 2})
    with pytest.raises(ValueError, match="shutdown_delay is not used by the ray engine"):
        build_app(tiny_bundle, shutdown_delay=1.0)
    with pytest.raises(ValueError, match="workers is not used by the ray engine"):
        build_app(tiny_bundle, workers=2)
    with pytest.raises(TypeError, match="unknown serve setting"):
        build_app(tiny_bundle, replicas=2)
    with pytest.raises(BundleError, match="not a directory"):
        build_app(tmp_path / "absent")
    with pytest.raises(BundleError, match="no fp16 graph"):
        build_app(tiny_bundle, precision="fp16")


def test_cli_ray_options_need_the_ray_engine(tiny_bundle: Path) -> None:
    from click.testing import CliRunner

    from ner_export.cli import cli

    result = CliRunner().invoke(cli, ["serve", str(tiny_bundle), "--num-replicas", "2", "--num-cpus", "1"])
    assert result.exit_code == 2 and "--num-replicas, --num-cpus only apply to --engine ray" in result.output, (
        result.output
    )
    result = CliRunner().invoke(cli, ["serve", str(tiny_bundle), "--engine", "ray", "--shutdown-delay", "5"])
    assert result.exit_code == 2 and "shutdown_delay is not used by the ray engine" in result.output, result.output
    result = CliRunner().invoke(cli, ["serve", str(tiny_bundle), "--engine", "ray", "--autoscaling-config", "[1]"])
    assert result.exit_code == 2 and "expected a JSON object" in result.output, result.output


# --------------------------------------------------------------------------- the CLI, with a Ray of its own
@pytest.mark.slow
def test_cli_engine_ray_serves_and_stops_on_sigterm(tiny_bundle: Path, offline: NerModel, tmp_path: Path) -> None:
    """`ner-export serve --engine ray` starts a local Ray, answers like offline predict, and exits 0 on SIGTERM."""
    log = tmp_path / "ray-cli.log"
    command = [
        sys.executable,
        "-m",
        "ner_export",
        "serve",
        str(tiny_bundle),
        "--engine",
        "ray",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--threads",
        "1",
        "--precision",
        "fp32",
        "--max-wait-ms",
        "2",
    ]
    with open(log, "wb") as sink:
        proc = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 180
        url = None
        while url is None:
            found = re.search(r"serving \S+ on (http://127\.0\.0\.1:\d+) \(ray engine", log.read_text(errors="replace"))
            if found:
                url = found.group(1)
            elif proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"the ray engine did not start:\n{log.read_text(errors='replace')[-4000:]}")
            else:
                time.sleep(0.2)
        assert _get(url + "/ready") == {"status": "ready"}
        answer = httpx.post(url + "/predict", json={"inputs": TEXTS[:3]}, timeout=30)
        assert answer.status_code == 200 and answer.json() == expected(offline, TEXTS[:3], None, False)
        assert _get(url + "/info")["engine"] == "ray"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(90) == 0, log.read_text(errors="replace")[-4000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


# --------------------------------------------------------------------------- one local Ray for the module
@pytest.fixture(scope="module")
def ray_url() -> Iterator[str]:
    from ner_export.runtime.local_ray import start_local_ray

    if ray.is_initialized():
        pytest.fail("a Ray instance leaked from an earlier test: it is still running in this process")
    start_local_ray(2, quiet=True)
    try:
        port = _free_port()
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        yield f"http://127.0.0.1:{port}"
    finally:
        with contextlib.suppress(Exception):
            serve.shutdown()
        ray.shutdown()


@pytest.mark.slow
def test_module_ray_is_bound_to_loopback(ray_url: str) -> None:
    """The Ray that `serve --engine ray` starts (the same helper) has its node and GCS on 127.0.0.1."""
    nodes = ray.nodes()
    assert nodes and all(node["NodeManagerAddress"] == "127.0.0.1" for node in nodes)
    assert ray.get_runtime_context().gcs_address.startswith("127.0.0.1:")
    assert ray.cluster_resources()["CPU"] == 2


@contextlib.contextmanager
def deployed(name: str, bundle: Path, url: str, **settings: Any) -> Iterator[str]:
    """An application on the module's Ray at /NAME, deleted afterwards."""
    from ner_export.serve.ray_app import build_app

    serve.run(build_app(bundle, threads=1, num_cpus=0.5, **settings), name=name, route_prefix=f"/{name}")
    try:
        yield f"{url}/{name}"
    finally:
        serve.delete(name)


@pytest.fixture(scope="module")
def fp32_url(ray_url: str, tiny_bundle: Path) -> Iterator[str]:
    with deployed(
        "fp32", tiny_bundle, ray_url, precision="fp32", max_wait_ms=5, max_client_batch_size=4, payload_limit=20_000
    ) as url:
        yield url


@pytest.mark.slow
def test_concurrent_requests_equal_offline_predictions(fp32_url: str, offline: NerModel) -> None:
    """64 requests from 8 threads, batched across requests by @serve.batch, each equal to offline predict."""
    import random

    rng = random.Random(15)
    requests = [random_request(rng) for _ in range(64)]
    before = _get(fp32_url + "/info")["replica"]
    n_texts = post_concurrently(fp32_url, requests, 8, offline)
    after = _get(fp32_url + "/info")["replica"]
    assert after["texts"] - before["texts"] == n_texts
    assert after["batches"] - before["batches"] < n_texts, "texts of different requests should have shared model calls"
    assert after["queued_texts"] == 0


@pytest.mark.slow
def test_health_ready_info_and_errors(fp32_url: str, tiny_bundle: Path) -> None:
    assert _get(fp32_url + "/health") == {"status": "ok"}
    assert _get(fp32_url + "/ready") == {"status": "ready"}
    info = _get(fp32_url + "/info")
    assert info["engine"] == "ray" and info["status"] == "ready"
    assert info["model"]["labels"] == json.loads((tiny_bundle / "bundle.json").read_text())["labels"]
    assert (
        info["graph"]["precision"] == "fp32"
        and info["batch_invariant"] is True
        and info["batching"]["cross_request"] is True
    )
    assert (
        info["batching"]["max_wait_ms"] == 5
        and info["runtime"]["threads"] == 1
        and info["limits"]["max_client_batch_size"] == 4
    )
    assert {"ner-export", "onnxruntime", "ray"} <= set(info["versions"])
    assert info["replica"]["imported"] == {"torch": False, "transformers": False, "optimum": False}, (
        "a replica imports only the runtime"
    )
    cases = [
        (b"{not json", 422, "validation", "body: not valid JSON"),
        (b'{"inputs": 3}', 422, "validation", "inputs: expected a string or an array of strings, got a number"),
        (b'{"inputs": ["a", 1]}', 422, "validation", "inputs[1]: expected a string, got a number"),
        (json.dumps({"inputs": ["a"] * 5}).encode(), 413, "payload_too_large", "5 texts exceed the limit of 4"),
        (json.dumps({"inputs": "x" * 30_000}).encode(), 413, "payload_too_large", "exceeds the limit of 20000 bytes"),
    ]
    for body, status, kind, message in cases:
        answer = httpx.post(
            fp32_url + "/predict", content=body, headers={"Content-Type": "application/json"}, timeout=10
        )
        assert (
            answer.status_code == status and answer.json()["error_type"] == kind and message in answer.json()["error"]
        ), (body[:40], answer.text)
    assert httpx.get(fp32_url + "/predict", timeout=10).status_code == 405
    assert httpx.post(fp32_url + "/health", timeout=10).status_code == 405
    assert httpx.get(fp32_url + "/nope", timeout=10).json() == {"error": "Not Found", "error_type": "not_found"}
    metrics = httpx.get(fp32_url + "/metrics", timeout=10)
    assert metrics.status_code == 404 and "serve_* metrics" in metrics.json()["error"]
    assert httpx.post(fp32_url + "/predict", json={"inputs": []}, timeout=10).json() == []


@pytest.mark.slow
def test_no_cross_request_batching_on_a_batch_dependent_graph(
    ray_url: str, tiny_bundle: Path, tmp_path: Path, offline: NerModel
) -> None:
    bundle = mark_graph_batch_dependent(tiny_bundle, tmp_path / "bundle")
    texts = [TEXTS[i % len(TEXTS)] for i in range(12)]
    with deployed("dep", bundle, ray_url, precision="fp32", max_wait_ms=100) as url:
        info = _get(url + "/info")
        assert info["batch_invariant"] is False and info["batching"]["cross_request"] is False
        before = info["replica"]
        answers: list[Any] = [None] * len(texts)
        start = threading.Barrier(len(texts))

        def client(i: int) -> None:
            with httpx.Client(timeout=30) as http:
                start.wait(10)
                answers[i] = http.post(url + "/predict", json={"inputs": texts[i]})

        threads = [threading.Thread(target=client, args=(i,)) for i in range(len(texts))]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        pair = httpx.post(url + "/predict", json={"inputs": texts[:3]}, timeout=30)
        assert pair.json() == expected(offline, texts[:3], None, False)
        assert [a.json() for a in answers] == [expected(offline, [t], None, True) for t in texts]
        after = _get(url + "/info")["replica"]
        assert after["batches"] - before["batches"] == len(texts) + 1, "each request must be its own model call"
        assert after["texts"] - before["texts"] == len(texts) + 3


@pytest.mark.slow
def test_queue_full_is_429_and_a_timed_out_request_is_never_computed(ray_url: str, tiny_bundle: Path) -> None:
    """A batch wait (7 s) longer than the request timeout (4 s): the waiting text blocks the queue of 2
    texts (429 for two more), then times out (504), and its text is dropped, never computed. Time is
    bounded from below only (a busy machine makes everything later, not earlier), and the timeout leaves
    many times what the test needs to see the text queued and be refused."""
    settings = {
        "precision": "fp32",
        "max_batch_size": 8,
        "max_wait_ms": 7000,
        "request_timeout": 4.0,
        "max_queued_texts": 2,
        "max_client_batch_size": 2,
    }
    with deployed("limits", tiny_bundle, ray_url, **settings) as url:
        results: dict[str, Any] = {}

        def waiting() -> None:
            began = time.monotonic()
            results["answer"] = httpx.post(url + "/predict", json={"inputs": TEXTS[0]}, timeout=30)
            results["seconds"] = time.monotonic() - began

        thread = threading.Thread(target=waiting)
        thread.start()
        deadline = time.monotonic() + 30
        while _get(url + "/info")["replica"]["queued_texts"] != 1:
            assert time.monotonic() < deadline, "the first request never got queued"
            time.sleep(0.02)
        queued_at = time.monotonic()  # the text was queued by now, so its batch wait ends by queued_at + 7 s
        refused = httpx.post(url + "/predict", json={"inputs": TEXTS[1:3]}, timeout=30)
        assert refused.status_code == 429 and refused.json()["error_type"] == "overloaded", refused.text
        assert int(refused.headers["retry-after"]) >= 1
        thread.join(30)
        answer = results["answer"]
        assert answer.status_code == 504 and answer.json()["error_type"] == "timeout", answer.text
        assert results["seconds"] >= 4.0, results["seconds"]  # answered at the timeout, not before
        while time.monotonic() < queued_at + 7.5:  # past the batch wait: the cancelled text would have run by now
            time.sleep(0.1)
        replica = _get(url + "/info")["replica"]
        assert replica["texts"] == 0 and replica["batches"] == 0 and replica["queued_texts"] == 0, replica


@pytest.mark.slow
def test_queue_wait_bound_is_429_naming_it(ray_url: str, tiny_bundle: Path) -> None:
    """--max-queue-ms on a replica: once a batch has measured its texts/s, a request behind a waiting
    text that would take longer than the bound gets 429 naming it; the empty queue took the first. The
    waiting text's timeout (4 s) leaves many times what the test needs to see it queued and be refused."""
    settings = {
        "precision": "fp32",
        "max_batch_size": 2,
        "max_wait_ms": 30000,
        "request_timeout": 4.0,
        "max_client_batch_size": 2,
        "max_queue_ms": 0.001,
    }
    with deployed("queue-wait", tiny_bundle, ray_url, **settings) as url:
        measured = httpx.post(url + "/predict", json={"inputs": ["John", "Paris"]}, timeout=30)  # a full batch
        assert measured.status_code == 200, measured.text
        held: list[Any] = []
        thread = threading.Thread(
            target=lambda: held.append(httpx.post(url + "/predict", json={"inputs": "Berlin"}, timeout=30))
        )
        thread.start()
        deadline = time.monotonic() + 30
        while _get(url + "/info")["replica"]["queued_texts"] != 1:
            assert time.monotonic() < deadline, "the second request never got queued"
            time.sleep(0.02)
        refused = httpx.post(url + "/predict", json={"inputs": ["Tokyo", "Rome"]}, timeout=30)  # past one batch
        assert refused.status_code == 429 and "--max-queue-ms" in refused.json()["error"], refused.text
        thread.join(30)
        assert held[0].status_code == 504, held[0].text
        assert _get(url + "/info")["replica"]["texts"] == 2, "neither the refused nor the timed-out text ran"
