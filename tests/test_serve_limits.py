"""`ner-export serve` limits and batching across requests: JSON errors for every limit, 429 with
Retry-After under overload, and no cross-request batching on a graph that is not batch-invariant.

Limits are forced with small settings and a long `--max-wait-ms`, so queued work stays queued while a
test looks at it; the refusal to batch across requests is checked on a copy of the bundle whose
manifest marks that graph as not batch-invariant.
"""

from __future__ import annotations

import random
import signal
import socket
import threading
import time
from pathlib import Path
from typing import Any

import pytest

httpx = pytest.importorskip("httpx", reason="the serve tests need httpx (the test extra)")
pytest.importorskip("fastapi", reason="ner-export serve needs the serve extra (fastapi, uvicorn, prometheus-client)")
pytest.importorskip("uvicorn", reason="ner-export serve needs the serve extra (fastapi, uvicorn, prometheus-client)")
from serve_harness import (  # noqa: E402
    TEXTS,
    expected,
    mark_graph_batch_dependent,
    metrics,
    payload,
    random_request,
    sample,
    serving,
    wait_for,
)

from ner_export.runtime import NerModel  # noqa: E402


def test_limits_give_json_errors(tiny_bundle: Path, tmp_path: Path) -> None:
    """413 (body, texts), 429 + Retry-After, 504, and a disconnected client's texts dropped, never computed.

    A long --max-wait-ms keeps queued texts waiting (the batch never fills), so each state is held
    while the test looks at it; the request timeout removes them before they would ever run. The timeout
    (4 s) leaves the test many times what it needs to see the queue full and be refused.
    """
    args = (
        "--precision",
        "fp32",
        "--payload-limit",
        300,
        "--max-client-batch-size",
        2,
        "--max-queued-texts",
        2,
        "--max-wait-ms",
        30000,
        "--request-timeout",
        4,
    )
    with serving(tiny_bundle, *args, log=tmp_path / "limits.log") as srv:
        big = httpx.post(srv.url + "/predict", json={"inputs": "x" * 400})
        assert (
            big.status_code == 413
            and big.json()["error_type"] == "payload_too_large"
            and "--payload-limit" in big.json()["error"]
        )
        chunked = httpx.post(srv.url + "/predict", content=iter([b'{"inputs": "', b"y" * 200, b"z" * 200, b'"}']))
        assert chunked.status_code == 413, chunked.text
        many = httpx.post(srv.url + "/predict", json={"inputs": ["a", "b", "c"]})
        assert many.status_code == 413 and "--max-client-batch-size" in many.json()["error"]

        # 429: two texts fill the queue; the next request is turned away with Retry-After
        first: list[Any] = []
        holder = threading.Thread(
            target=lambda: first.append(
                httpx.post(srv.url + "/predict", json={"inputs": ["John", "Paris"]}, timeout=30)
            )
        )
        holder.start()
        wait_for(lambda: sample(metrics(srv.url), "ner_serve_queue_depth") == 2, "two queued texts")
        full = httpx.post(srv.url + "/predict", json={"inputs": "Berlin"})
        assert full.status_code == 429 and full.json()["error_type"] == "overloaded", full.text
        assert int(full.headers["retry-after"]) >= 1
        holder.join(30)
        # 504: the held request waited past --request-timeout
        assert first[0].status_code == 504 and first[0].json()["error_type"] == "timeout", first[0].text

        # a client that disconnects while queued: its text leaves the queue and is never computed
        with socket.create_connection(("127.0.0.1", int(srv.url.rsplit(":", 1)[1])), timeout=5) as raw:
            body = b'{"inputs": "John Smith"}'
            raw.sendall(
                b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
            )
            wait_for(lambda: sample(metrics(srv.url), "ner_serve_queue_depth") == 1, "the queued text")
        wait_for(
            lambda: sample(metrics(srv.url), "ner_serve_failures_total", reason="client_disconnect") == 1,
            "the disconnect to be seen",
        )
        values = metrics(srv.url)
        assert sample(values, "ner_serve_queue_depth") == 0
        assert sample(values, "ner_serve_texts_total") == 0, "no queued text of a timed-out or gone client may run"
        for reason, count in (("payload_too_large", 2), ("too_many_texts", 1), ("queue_full", 1), ("timeout", 1)):
            assert sample(values, "ner_serve_failures_total", reason=reason) == count, reason
        assert srv.stop() == 0


def test_overload_gives_429_with_retry_after(tiny_bundle: Path, tmp_path: Path, offline: NerModel) -> None:
    """16 clients at once against a 4-text queue: the excess gets 429 fast, the rest exact answers.

    The queued texts wait 3 s for a batch that never fills; a refusal must come in well under that (it
    takes milliseconds), so the bound of 1.5 s has a wide margin and still tells a refusal that waited.
    """
    args = ("--precision", "fp32", "--max-queued-texts", 4, "--max-client-batch-size", 4, "--max-wait-ms", 3000)
    with serving(tiny_bundle, *args, log=tmp_path / "overload.log") as srv:
        start = threading.Barrier(16)
        answers: list[tuple[str, Any, float]] = []

        def client(k: int) -> None:
            text = TEXTS[k % len(TEXTS)]
            with httpx.Client(timeout=30) as http:
                http.get(srv.url + "/health")  # connect before the barrier
                start.wait(10)
                began = time.perf_counter()
                answer = http.post(srv.url + "/predict", json={"inputs": text})
                answers.append((text, answer, time.perf_counter() - began))

        threads = [threading.Thread(target=client, args=(k,)) for k in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert len(answers) == 16
        refused = [(a, s) for _, a, s in answers if a.status_code == 429]
        served = [(t, a) for t, a, _ in answers if a.status_code == 200]
        assert refused and served and len(refused) + len(served) == 16, [a.status_code for _, a, _ in answers]
        for answer, seconds in refused:
            assert int(answer.headers["retry-after"]) >= 1 and answer.json()["error_type"] == "overloaded"
            assert seconds < 1.5, "a refusal must not wait for the model (the queued texts wait 3 s)"
        for text, answer in served:
            assert answer.json() == expected(offline, [text], None, True)
        assert srv.stop() == 0


def test_queue_wait_bound_gives_429_naming_it(tiny_bundle: Path, tmp_path: Path) -> None:
    """--max-queue-ms: once a batch has measured the model's speed, a request that would take the queue
    past one batch and whose wait would exceed the bound gets 429 naming it. The held request's timeout
    (4 s) leaves many times what the test needs to see it queued and be refused."""
    args = ("--precision", "fp32", "--max-batch-size", 2, "--max-wait-ms", 30000, "--request-timeout", 4)
    with serving(tiny_bundle, *args, "--max-queue-ms", 0.001, log=tmp_path / "queue-wait.log") as srv:
        # two texts fill a batch, which runs at once and measures the speed
        assert httpx.post(srv.url + "/predict", json={"inputs": ["John", "Paris"]}).status_code == 200
        held: list[Any] = []
        holder = threading.Thread(
            target=lambda: held.append(httpx.post(srv.url + "/predict", json={"inputs": "Berlin"}, timeout=30))
        )
        holder.start()  # an empty queue takes it; it then waits for a second text (--max-wait-ms)
        wait_for(lambda: sample(metrics(srv.url), "ner_serve_queue_depth") == 1, "the queued text")
        refused = httpx.post(srv.url + "/predict", json={"inputs": ["Tokyo", "Rome"]})  # past one batch (2 texts)
        assert refused.status_code == 429 and refused.json()["error_type"] == "overloaded", refused.text
        assert "--max-queue-ms" in refused.json()["error"] and int(refused.headers["retry-after"]) >= 1
        holder.join(30)
        assert held[0].status_code == 504, held[0].text
        values = metrics(srv.url)
        assert sample(values, "ner_serve_failures_total", reason="queue_wait") == 1
        assert sample(values, "ner_serve_texts_total") == 2, "neither the refused nor the timed-out text ran"
        assert srv.stop() == 0


def _concurrent_singles(url: str, texts: list[str]) -> list[Any]:
    start = threading.Barrier(len(texts))
    answers: list[Any] = [None] * len(texts)

    def client(i: int) -> None:
        with httpx.Client(timeout=30) as http:
            http.get(url + "/health")
            start.wait(10)
            answers[i] = http.post(url + "/predict", json={"inputs": texts[i]})

    threads = [threading.Thread(target=client, args=(i,)) for i in range(len(texts))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    return answers


def test_no_cross_request_batching_on_a_batch_dependent_graph(
    tiny_bundle: Path, tmp_path: Path, offline: NerModel
) -> None:
    bundle = mark_graph_batch_dependent(tiny_bundle, tmp_path / "bundle")
    texts = [TEXTS[i % len(TEXTS)] for i in range(12)]
    with serving(bundle, "--precision", "fp32", "--max-wait-ms", 100, log=tmp_path / "refuse.log") as srv:
        assert "not batch-invariant: batching only within each request" in srv.text()
        info = httpx.get(srv.url + "/info").json()
        assert info["batch_invariant"] is False and info["batching"]["cross_request"] is False
        answers = _concurrent_singles(srv.url, texts)
        pair = httpx.post(srv.url + "/predict", json={"inputs": texts[:3]})
        assert pair.json() == expected(offline, texts[:3], None, False)
        values = metrics(srv.url)
        assert sample(values, "ner_serve_batch_size_count") == len(texts) + 1, "each request must be its own batch"
        assert sample(values, "ner_serve_batch_size_sum") == len(texts) + 3
        assert [a.json() for a in answers] == [expected(offline, [t], None, True) for t in texts]
        assert srv.stop(signal.SIGINT) == 0, "SIGINT drains and exits 0 like SIGTERM"
    with serving(
        bundle, "--precision", "fp32", "--max-wait-ms", 100, "--allow-batch-dependent", log=tmp_path / "allow.log"
    ) as srv:
        assert "NOT batch-invariant (--allow-batch-dependent)" in srv.text()
        assert httpx.get(srv.url + "/info").json()["batching"]["cross_request"] is True
        answers = _concurrent_singles(srv.url, texts)
        assert all(a.status_code == 200 for a in answers)
        assert sample(metrics(srv.url), "ner_serve_batch_size_count") < len(texts), (
            "--allow-batch-dependent batches across requests"
        )
        assert srv.stop() == 0


def test_default_int8_graph_answers_equal_offline_predictions(tiny_bundle: Path, tmp_path: Path) -> None:
    """The default graph, batch-invariant or not: each request equals offline predict of its own texts. A
    batch-invariant graph (calibrated scales) batches texts of several requests together, like fp32; one
    that is not runs each request as a batch of its own."""
    int8 = NerModel.load(tiny_bundle, threads=1)
    rng = random.Random(3)
    requests = [random_request(rng) for _ in range(24)]
    with serving(tiny_bundle, "--max-wait-ms", 100, log=tmp_path / "int8.log") as srv:
        info = httpx.get(srv.url + "/info").json()
        assert info["graph"]["precision"] == "int8" and info["batch_invariant"] is int8.batch_invariant
        assert info["batching"]["cross_request"] is int8.batch_invariant
        if not int8.batch_invariant:
            assert "not batch-invariant: batching only within each request" in srv.text()
        before = metrics(srv.url)
        answers: list[Any] = [None] * len(requests)
        start = threading.Barrier(8)

        def client(k: int) -> None:
            with httpx.Client(timeout=30) as http:
                start.wait(10)
                for i in range(k, len(requests), 8):
                    answers[i] = http.post(srv.url + "/predict", json=payload(*requests[i]))

        threads = [threading.Thread(target=client, args=(k,)) for k in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        for (inputs, aggregation), answer in zip(requests, answers, strict=True):
            single = isinstance(inputs, str)
            assert answer.json() == expected(int8, [inputs] if single else inputs, aggregation, single), (
                inputs,
                aggregation,
            )
        after = metrics(srv.url)
        batches = sample(after, "ner_serve_batch_size_count") - sample(before, "ner_serve_batch_size_count")
        texts_run = sample(after, "ner_serve_batch_size_sum") - sample(before, "ner_serve_batch_size_sum")
        assert texts_run == sum(1 if isinstance(inputs, str) else len(inputs) for inputs, _ in requests)
        if int8.batch_invariant:
            assert batches < len(requests), "the server should have batched texts of different requests together"
        else:
            assert batches == len(requests), "each request must be its own batch"
        assert srv.stop() == 0
