"""`ner-export serve`: a real uvicorn server in a subprocess on 127.0.0.1, driven over loopback.

Exactness is checked on the fp32 graph (batch-invariant), where micro-batching across requests must
give exactly what an offline `model.predict` gives; the refusal to batch across requests is checked
on a copy of the bundle whose manifest marks that graph as not batch-invariant. Limits are forced with
small settings and a long `--max-wait-ms`, so queued work stays queued while a test looks at it. Every
loop is bounded in count and time.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

httpx = pytest.importorskip("httpx", reason="the serve tests need httpx (the test extra)")
pytest.importorskip("fastapi", reason="ner-export serve needs the serve extra (fastapi, uvicorn, prometheus-client)")
pytest.importorskip("uvicorn", reason="ner-export serve needs the serve extra (fastapi, uvicorn, prometheus-client)")
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from ner_export.runtime import NerModel  # noqa: E402

TEXTS = [
    "John Smith lives in Paris.",
    "Maria Lopez works for Reuters in London, said the minister on Monday.",
    "The Bank of Tokyo and the French company agreed in Berlin.",
    "",
    "new york city , united states of america ; north river university club",
    "Zoë Müller (Reuters) — 東京 said 🙂 that U.S. corp's group won the World Cup!",
    "the world cup in germany , france and the united states",
    "Berlin Bank of Tokyo said Germany and France agreed .",
]
AGGREGATIONS = [None, "first", "average", "max", "simple"]

# Runs the CLI with torch, transformers and optimum unimportable, as in a `ner-export[cpu,serve]` install.
RUNTIME_ONLY = (
    "import sys, importlib.abc\n"
    "class _NoTorch(importlib.abc.MetaPathFinder):\n"
    "    def find_spec(self, name, path=None, target=None):\n"
    "        if name.split('.')[0] in ('torch', 'transformers', 'optimum'):\n"
    "            raise ImportError(f'{name} is not installed in a serving install')\n"
    "sys.meta_path.insert(0, _NoTorch())\n"
    "from ner_export.cli import main\n"
    "main()\n"
)


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    url: str
    log: Path

    def text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            raise AssertionError(
                f"server did not stop within {timeout} s after {signal.Signals(sig).name}:\n{self.text()[-3000:]}"
            ) from None


@contextlib.contextmanager
def serving(bundle: Path, *args: Any, log: Path, runtime_only: bool = False) -> Iterator[Server]:
    """Start `ner-export serve BUNDLE --port 0 ARGS` on 127.0.0.1 and wait for /ready (at most 30 s)."""
    launcher = ["-c", RUNTIME_ONLY] if runtime_only else ["-m", "ner_export"]
    command = [
        sys.executable,
        *launcher,
        "serve",
        str(bundle),
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--threads",
        "1",
        *map(str, args),
    ]
    with open(log, "wb") as sink:
        proc = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
    server = None
    try:
        deadline = time.monotonic() + 30
        while server is None:
            found = re.search(r"on http://127\.0\.0\.1:(\d+)", log.read_text(errors="replace"))
            if found:
                server = Server(proc, f"http://127.0.0.1:{found.group(1)}", log)
            elif proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"server did not start:\n{log.read_text(errors='replace')[-3000:]}")
            else:
                time.sleep(0.05)
        while True:
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(server.url + "/ready", timeout=5).status_code == 200:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"server never became ready:\n{server.text()[-3000:]}")
            time.sleep(0.05)
        yield server
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)


def metrics(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of /metrics, parsed by prometheus_client's own text parser."""
    body = httpx.get(url + "/metrics", timeout=5).text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(body)
        for s in family.samples
    }


def sample(values: dict, name: str, **labels: str) -> float:
    return values.get((name, frozenset(labels.items())), 0.0)


def wait_for(condition, what: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def expected(model: NerModel, texts: list[str], aggregation: str | None, single: bool) -> Any:
    """What the server must answer: offline `model.predict` in the Hugging Face format."""
    rows = [
        [{"entity_group": e.label, "score": e.score, "word": e.text, "start": e.start, "end": e.end} for e in entities]
        for entities in model.predict(texts, aggregation=aggregation)
    ]
    return rows[0] if single else rows


def random_request(rng: random.Random) -> tuple[Any, str | None]:
    """A request's inputs (a string or a list of 1-4 strings) and its aggregation_strategy."""
    words = " ".join(rng.choice(TEXTS).split()[: rng.randint(1, 12)])
    text = rng.choice([rng.choice(TEXTS), words])
    inputs: Any = text if rng.random() < 0.5 else [rng.choice(TEXTS) for _ in range(rng.randint(1, 4))]
    return inputs, rng.choice(AGGREGATIONS)


def payload(inputs: Any, aggregation: str | None) -> dict[str, Any]:
    return {"inputs": inputs, **({"parameters": {"aggregation_strategy": aggregation}} if aggregation else {})}


@pytest.fixture(scope="module")
def offline(tiny_bundle: Path) -> NerModel:
    return NerModel.load(tiny_bundle, precision="fp32", threads=1)


@pytest.fixture(scope="module")
def server(tiny_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The main server: fp32 (batch-invariant), a short batching wait, and torch made unimportable."""
    log = tmp_path_factory.mktemp("serve") / "server.log"
    with serving(tiny_bundle, "--precision", "fp32", "--max-wait-ms", 5, log=log, runtime_only=True) as running:
        yield running
        assert running.stop() == 0, running.text()[-3000:]


# --------------------------------------------------------------------------- answers
def post_concurrently(url: str, requests: list[tuple[Any, str | None]], workers: int, offline: NerModel) -> int:
    """Send `requests` from `workers` threads (alternating / and /predict); check each answer equals offline
    predict; return how many texts were sent."""
    answers: list[Any] = [None] * len(requests)

    def worker(k: int) -> None:
        with httpx.Client(timeout=30) as client:
            for i in range(k, len(requests), workers):
                inputs, aggregation = requests[i]
                answers[i] = client.post(url + ("/predict" if i % 2 else "/"), json=payload(inputs, aggregation))

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    n_texts = 0
    for (inputs, aggregation), answer in zip(requests, answers, strict=True):
        assert answer is not None and answer.status_code == 200, answer and answer.text
        single = isinstance(inputs, str)
        texts = [inputs] if single else inputs
        n_texts += len(texts)
        assert answer.json() == expected(offline, texts, aggregation, single), (inputs, aggregation)
    return n_texts


def test_concurrent_requests_equal_offline_predictions(server: Server, offline: NerModel) -> None:
    """200 requests from 16 threads, batched across requests by the server, each equal to offline predict."""
    rng = random.Random(14)
    requests = [random_request(rng) for _ in range(200)]
    before = metrics(server.url)
    n_texts = post_concurrently(server.url, requests, 16, offline)
    after = metrics(server.url)
    batches = sample(after, "ner_serve_batch_size_count") - sample(before, "ner_serve_batch_size_count")
    texts_run = sample(after, "ner_serve_batch_size_sum") - sample(before, "ner_serve_batch_size_sum")
    assert texts_run == n_texts
    assert batches < len(requests), "the server should have batched texts of different requests together"


def test_two_streams_answer_equal_offline_predictions(tiny_bundle: Path, tmp_path: Path, offline: NerModel) -> None:
    """--threads 2 runs two batch workers of one thread each by default; answers stay offline predict's."""
    with serving(tiny_bundle, "--precision", "fp32", "--threads", 2, log=tmp_path / "streams.log") as srv:
        info = httpx.get(srv.url + "/info").json()
        assert info["batching"]["streams"] == 2 and info["runtime"]["threads"] == 2
        rng = random.Random(15)
        post_concurrently(srv.url, [random_request(rng) for _ in range(200)], 16, offline)
        assert srv.stop() == 0


def test_huggingface_inference_client(server: Server, offline: NerModel) -> None:
    """huggingface_hub's InferenceClient works unchanged.

    huggingface_hub refuses every URL, loopback included, in offline mode, so HF_HUB_OFFLINE (and
    TRANSFORMERS_OFFLINE, which it also reads) are unset for this one client process, whose only
    target is the local server.
    """
    pytest.importorskip("huggingface_hub", reason="the HF client test needs huggingface_hub (the test extra)")
    text = TEXTS[1]
    code = (
        "import json, sys\n"
        "from huggingface_hub import InferenceClient\n"
        "client = InferenceClient(model=sys.argv[1], timeout=30)\n"
        "rows = lambda found: [[e.entity_group, e.score, e.word, e.start, e.end] for e in found]\n"
        "print(json.dumps({'default': rows(client.token_classification(sys.argv[2])),\n"
        "                  'max': rows(client.token_classification(sys.argv[2], aggregation_strategy='max'))}))\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    out = subprocess.run(
        [sys.executable, "-c", code, server.url, text], capture_output=True, text=True, env=env, timeout=60
    )
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout)
    for key, aggregation in (("default", None), ("max", "max")):
        want = [
            [e["entity_group"], e["score"], e["word"], e["start"], e["end"]]
            for e in expected(offline, [text], aggregation, True)
        ]
        assert got[key] == want and want, key


def test_health_ready_info_openapi(server: Server, tiny_bundle: Path) -> None:
    assert httpx.get(server.url + "/health").json() == {"status": "ok"}
    assert httpx.get(server.url + "/ready").json() == {"status": "ready"}
    info = httpx.get(server.url + "/info").json()
    assert info["model"]["labels"] == json.loads((tiny_bundle / "bundle.json").read_text())["labels"]
    assert info["model"]["bundle_sha256"] == hashlib.sha256((tiny_bundle / "bundle.json").read_bytes()).hexdigest()
    assert info["graph"]["precision"] == "fp32" and info["graph"]["quantization"] == {}
    assert info["batch_invariant"] is True and info["batching"]["cross_request"] is True
    assert info["batching"]["max_batch_size"] == 32 and info["batching"]["max_wait_ms"] == 5
    assert info["runtime"]["threads"] == 1 and info["batching"]["streams"] == 1
    assert {"ner-export", "onnxruntime", "fastapi", "uvicorn"} <= set(info["versions"])
    schema = httpx.get(server.url + "/openapi.json").json()
    assert {"/", "/predict", "/health", "/ready", "/info", "/metrics"} <= set(schema["paths"])
    body = schema["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/PredictRequest"}
    assert "inputs" in schema["components"]["schemas"]["PredictRequest"]["properties"]
    assert "Parameters" in schema["components"]["schemas"]
    assert {"413", "422", "429", "504"} <= set(schema["paths"]["/predict"]["post"]["responses"])


def test_server_process_has_no_torch(server: Server) -> None:
    """Launched with torch unimportable, it served every test; nor is any torch library mapped."""
    info = httpx.get(server.url + "/info").json()
    assert info["process"]["imported"] == {"torch": False, "transformers": False, "optimum": False}
    maps = Path(f"/proc/{server.proc.pid}/maps")
    if maps.exists():
        assert "libtorch" not in maps.read_text(), "a torch library is mapped into the server process"
    assert httpx.post(server.url + "/predict", json={"inputs": "John Smith"}).status_code == 200


def test_serve_package_imports_only_the_runtime() -> None:
    code = (
        "import sys\n"
        "from ner_export.serve import ServeSettings, Service, create_app, run\n"
        "from ner_export.serve.launch import launch\n"
        "ours = sorted({m.split('.')[1] for m in sys.modules if m.startswith('ner_export.') and m.count('.') >= 1})\n"
        "heavy = [m for m in ('torch', 'transformers', 'optimum') if m in sys.modules]\n"
        "print(','.join(ours), '|', ','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "runtime,serve |"


def test_invalid_requests_are_422_naming_the_field(server: Server) -> None:
    cases = [
        (b"{not json", "body: not valid JSON"),
        (b"[1, 2]", "body: expected a JSON object"),
        (b'{"text": "x"}', "text: unknown field"),
        (b'{"parameters": {}}', "inputs: missing"),
        (b'{"inputs": 7}', "inputs: expected a string or an array of strings, got a number"),
        (b'{"inputs": ["ok", "fine", null]}', "inputs[2]: expected a string, got null"),
        (b'{"inputs": ["ok", "\\ud800 lone"]}', "inputs[1]: invalid text"),
        (b'{"inputs": "x \\udfff"}', "inputs: invalid text"),
        (b'{"inputs": "x", "parameters": {"aggregation_strategy": "none"}}', "parameters.aggregation_strategy"),
        (b'{"inputs": "x", "parameters": {"top_k": 3}}', "parameters.top_k: unknown parameter"),
        (b'{"inputs": "x", "parameters": {"stride": 16}}', "parameters.stride: not supported"),
        (b'{"inputs": "x", "parameters": {"ignore_labels": ["O", 3]}}', "parameters.ignore_labels[1]"),
        (b'{"inputs": "\xff\xfe"}', "body: not valid UTF-8"),
    ]
    for body, message in cases:
        answer = httpx.post(server.url + "/predict", content=body, headers={"content-type": "application/json"})
        assert answer.status_code == 422, (body, answer.text)
        error = answer.json()
        assert error["error_type"] == "validation" and error["error"].startswith(message), (body, error)
    assert httpx.get(server.url + "/nowhere").json() == {"error": "Not Found", "error_type": "not_found"}


def test_ignore_labels_and_empty_inputs(server: Server, offline: NerModel) -> None:
    text = TEXTS[1]
    full = expected(offline, [text], None, True)
    kept = httpx.post(server.url + "/", json={"inputs": text, "parameters": {"ignore_labels": ["LOC"]}}).json()
    assert kept == [e for e in full if e["entity_group"] != "LOC"] and len(kept) < len(full)
    assert httpx.post(server.url + "/", json={"inputs": []}).json() == []
    assert httpx.post(server.url + "/", json={"inputs": ["", "  "]}).json() == [[], []]


def test_long_text_is_windowed_like_offline(server: Server, offline: NerModel) -> None:
    """A text far beyond max_length (and beyond the size tokenized inline) equals offline predict."""
    document = " ".join(TEXTS[:3] * 150)
    assert len(document) > 20_000
    before = sample(metrics(server.url), "ner_serve_batch_tokens_sum")
    answer = httpx.post(server.url + "/predict", json={"inputs": [document, TEXTS[0]]}, timeout=60)
    assert answer.status_code == 200 and answer.json() == expected(offline, [document, TEXTS[0]], None, False)
    assert sample(metrics(server.url), "ner_serve_batch_tokens_sum") - before > 128 * 10, (
        "the long text is read in many windows"
    )


def test_metrics_parse_and_count_requests(server: Server) -> None:
    before = metrics(server.url)
    for _ in range(5):
        assert httpx.post(server.url + "/predict", json={"inputs": ["John Smith", "Paris"]}).status_code == 200
    assert httpx.post(server.url + "/predict", content=b"{").status_code == 422
    after = metrics(server.url)
    assert (
        sample(after, "ner_serve_requests_total", path="/predict", status="200")
        - sample(before, "ner_serve_requests_total", path="/predict", status="200")
        == 5
    )
    assert (
        sample(after, "ner_serve_requests_total", path="/predict", status="422")
        - sample(before, "ner_serve_requests_total", path="/predict", status="422")
        == 1
    )
    assert (
        sample(after, "ner_serve_failures_total", reason="invalid_request")
        - sample(before, "ner_serve_failures_total", reason="invalid_request")
        == 1
    )
    assert sample(after, "ner_serve_texts_total") - sample(before, "ner_serve_texts_total") == 10
    assert (
        sample(after, "ner_serve_request_duration_seconds_count", path="/predict")
        - sample(before, "ner_serve_request_duration_seconds_count", path="/predict")
        == 6
    )
    for name in (
        "ner_serve_queue_wait_seconds_count",
        "ner_serve_inference_duration_seconds_count",
        "ner_serve_batch_size_count",
        "ner_serve_batch_tokens_count",
    ):
        assert sample(after, name) > sample(before, name), name
    assert sample(after, "ner_serve_batch_tokens_sum") > 0
    assert sample(after, "ner_serve_queue_depth") == 0 and sample(after, "ner_serve_ready") == 1
    assert sample(after, "process_resident_memory_bytes") > 0


def test_access_log_line_with_request_id(server: Server) -> None:
    given = httpx.post(server.url + "/predict", json={"inputs": "Paris"}, headers={"X-Request-ID": "req-14.a"})
    assert given.headers["x-request-id"] == "req-14.a"
    made = httpx.post(
        server.url + "/predict", json={"inputs": "Paris"}, headers={"X-Request-ID": "bad id\twith spaces"}
    )
    request_id = made.headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{24}", request_id)
    wait_for(lambda: request_id in server.text(), "the access-log line")
    lines = [line for line in server.text().splitlines() if "id=req-14.a" in line or f"id={request_id}" in line]
    assert len(lines) == 2, lines
    assert all('"POST /predict HTTP/1.1" 200' in line and "texts=1" in line for line in lines), lines


# --------------------------------------------------------------------------- limits
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


# --------------------------------------------------------------------------- batching across requests
def _mark_graph_batch_dependent(bundle: Path, out: Path) -> Path:
    shutil.copytree(bundle, out)
    manifest = json.loads((out / "bundle.json").read_text())
    for graph in manifest["graphs"]:
        if graph["device"] == "cpu" and graph["precision"] == "fp32":
            graph["batch_invariant"] = False
    (out / "bundle.json").write_text(json.dumps(manifest))
    return out


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
    bundle = _mark_graph_batch_dependent(tiny_bundle, tmp_path / "bundle")
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


# --------------------------------------------------------------------------- shutdown
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


# --------------------------------------------------------------------------- several workers
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


# --------------------------------------------------------------------------- settings and CLI
def test_cli_defaults_are_the_settings_defaults() -> None:
    import inspect
    from dataclasses import fields

    from ner_export.cli import cli
    from ner_export.serve import ServeSettings

    options = cli.commands["serve"].make_context("serve", ["bundle/"]).params  # what the command passes to run()
    options.pop("bundle")
    engine = {
        name: options.pop(name)
        for name in ("engine", "address", "num_replicas", "autoscaling_config", "num_cpus", "max_ongoing_requests")
    }
    assert engine == {
        "engine": "local",
        "address": None,
        "num_replicas": None,
        "autoscaling_config": None,
        "num_cpus": None,
        "max_ongoing_requests": None,
    }
    defaults = {f.name: f.default for f in fields(ServeSettings)}
    assert options == defaults
    load = inspect.signature(NerModel.load).parameters
    assert ServeSettings().max_batch_tokens == load["token_budget"].default, (
        "--max-batch-tokens defaults to the runtime's token budget"
    )
    assert (ServeSettings().aggregation, ServeSettings().decoding, ServeSettings().word_split) == (
        load["aggregation"].default,
        load["decoding"].default,
        load["word_split"].default,
    )


def test_threads_spin_only_inside_a_run_unless_asked(tiny_bundle: Path) -> None:
    from ner_export.serve import ServeSettings

    # by default onnxruntime's threads stop spinning when a run returns: the event loop gets the CPUs
    assert ServeSettings().model_options()["session_config"] == {"session.force_spinning_stop": "1"}
    assert ServeSettings(spin=True).model_options()["session_config"] is None  # onnxruntime's own default
    assert ServeSettings(backend="openvino").model_options()["session_config"] is None  # not an onnxruntime session
    model = NerModel.load(tiny_bundle, **ServeSettings(threads=1).model_options())
    assert model.predict(TEXTS) == NerModel.load(tiny_bundle, threads=1).predict(TEXTS)


def test_bad_settings_and_bundles_fail_early(tiny_bundle: Path, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from ner_export.cli import cli
    from ner_export.runtime import BundleError
    from ner_export.serve import ServeSettings, create_app

    with pytest.raises(TypeError, match="max_batch"):
        create_app(tiny_bundle, max_batch=3)
    with pytest.raises(ValueError, match="max_client_batch_size=64 exceeds max_queued_texts=8"):
        ServeSettings(max_client_batch_size=64, max_queued_texts=8)
    with pytest.raises(BundleError, match="not a directory"):
        create_app(tmp_path / "absent")
    result = CliRunner().invoke(cli, ["serve", str(tmp_path / "absent"), "--port", "0"])
    assert (
        result.exit_code == 1 and result.output.startswith("Error:") and len(result.output.strip().splitlines()) == 1
    ), result.output
    result = CliRunner().invoke(cli, ["serve", str(tiny_bundle), "--precision", "fp16", "--port", "0"])
    assert result.exit_code == 1 and "no fp16 graph" in result.output, result.output


def test_create_app_is_not_ready_until_loaded_and_reports_a_failed_load(
    tiny_bundle: Path, tmp_path: Path, offline: NerModel
) -> None:
    """The Python entry point, driven in-process: 503 before its lifespan has loaded the model, exact
    answers after; a bundle whose graph fails its checksum turns /health 503, and the CLI exits 1."""
    import asyncio

    from ner_export.serve import create_app

    async def scenario(app: Any, broken: bool) -> None:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://serve.test") as client:
            ready = await client.get("/ready")
            assert ready.status_code == 503 and ready.json() == {"status": "loading"}
            refused = await client.post("/predict", json={"inputs": "Paris"})
            assert (
                refused.status_code == 503
                and refused.json()["error_type"] == "unavailable"
                and refused.headers["retry-after"] == "1"
            )
            async with app.router.lifespan_context(app):
                for _ in range(500):
                    status = (await client.get("/ready")).json()["status"]
                    if status != "loading":
                        break
                    await asyncio.sleep(0.02)
                if broken:
                    assert status == "failed"
                    health = await client.get("/health")
                    assert health.status_code == 503 and "sha256" in health.json()["error"]
                else:
                    assert status == "ready"
                    answer = await client.post("/", json={"inputs": TEXTS[1]})
                    assert answer.json() == expected(offline, [TEXTS[1]], None, True)

    asyncio.run(scenario(create_app(tiny_bundle, precision="fp32", access_log=False), broken=False))
    broken = tmp_path / "broken"
    shutil.copytree(tiny_bundle, broken)
    (broken / "model.onnx").write_bytes(b"not a graph")
    asyncio.run(scenario(create_app(broken, precision="fp32", access_log=False), broken=True))
    cli = subprocess.run(
        [sys.executable, "-m", "ner_export", "serve", str(broken), "--precision", "fp32", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert cli.returncode == 1 and cli.stderr.strip().splitlines()[-1].startswith("Error: cannot serve"), cli.stderr[
        -2000:
    ]


# --------------------------------------------------------------------------- the batcher alone
class _RecordingModel:
    """Stands in for NerModel: records each predict call; a text "bad" makes the call fail."""

    streams = 1

    @staticmethod
    def shares_batch(narrow: int, wide: int) -> bool:  # a rule of its own: the batcher must ask the model
        return 2 * narrow > wide

    def __init__(self, batch_invariant: bool) -> None:
        self.batch_invariant = batch_invariant
        self.calls: list[tuple[list[str], str]] = []
        self.gate = threading.Event()  # holds the first call until every job is queued (and one cancelled)

    def predict(
        self, texts: list[str], batch_size: int = 32, aggregation: str | None = None, *, stream: bool = False
    ) -> list[list[Any]]:
        assert self.gate.wait(5)
        self.calls.append((list(texts), aggregation))
        if "bad" in texts:
            raise ValueError("bad text")
        return [[text.upper()] for text in texts]


def _started_batcher(model: Any, settings: Any) -> Any:
    """A Batcher over the stand-in `model`, started, its model loaded."""
    from ner_export.serve.batcher import Batcher
    from ner_export.serve.metrics import Metrics

    loaded = threading.Event()
    batcher = Batcher(lambda: model, settings, Metrics(), lambda _: loaded.set(), lambda exc: None)
    batcher.start()
    assert loaded.wait(5)
    return batcher


def _batch_calls(
    batch_invariant: bool, jobs: list[tuple[list[str], list[tuple[int, int]], str]], cancel: int | None = None
) -> tuple[list, list]:
    """Queue `jobs` at once into a Batcher (max 3 texts, 100 padded tokens, 50 ms wait).

    Returns its model calls and the jobs' outcomes.
    """
    import asyncio

    from ner_export.serve.batcher import Job
    from ner_export.serve.settings import ServeSettings

    model = _RecordingModel(batch_invariant)
    settings = ServeSettings(max_batch_size=3, max_batch_tokens=100, max_wait_ms=50)

    async def scenario() -> list[Any]:
        loop = asyncio.get_running_loop()
        batcher = _started_batcher(model, settings)
        queued = [Job(texts, costs, aggregation, loop.create_future(), loop) for texts, costs, aggregation in jobs]
        for job in queued:
            assert batcher.submit(job) is None
        if cancel is not None:
            assert batcher.cancel(queued[cancel]) == len(queued[cancel].texts)
        model.gate.set()
        waited = [job for k, job in enumerate(queued) if k != cancel]
        outcomes = await asyncio.wait_for(asyncio.gather(*(job.future for job in waited), return_exceptions=True), 10)
        batcher.stop(5)
        return [repr(o) if isinstance(o, Exception) else o for o in outcomes]

    outcomes = asyncio.run(scenario())
    return model.calls, outcomes


def test_batcher_takes_oldest_texts_of_one_aggregation_within_the_limits() -> None:
    jobs = [
        (["a0", "a1"], [(1, 30), (1, 30)], "first"),
        (["b0"], [(1, 60)], "first"),  # with a0 and a1: 3 x 60 > 100 tokens
        (["c0"], [(1, 10)], "max"),  # another aggregation: waits for its own batch, keeps its place
        (["d0", "d1"], [(1, 10), (1, 10)], "first"),  # after b0: 3 x 60 > 100
        (["e0"], [(1, 10)], "first"),
    ]
    calls, outcomes = _batch_calls(True, jobs, cancel=4)
    assert calls == [(["a0", "a1"], "first"), (["b0"], "first"), (["c0"], "max"), (["d0", "d1"], "first")]
    assert outcomes == [[["A0"], ["A1"]], [["B0"]], [["C0"]], [["D0"], ["D1"]]], "e0 was cancelled: never computed"


def test_batcher_leaves_a_text_of_a_poorly_padding_width_for_the_next_batch() -> None:
    jobs = [
        (["a0"], [(1, 40)], "first"),
        (["b0", "b1"], [(1, 12), (1, 30)], "first"),  # b0: under half of 40, next batch; b1 pads well with a0
        (["c0"], [(0, 0)], "first"),  # a text that costs nothing (empty) joins any batch
        (["d0"], [(1, 90)], "first"),  # over twice the narrowest taken (30)
        (["e0"], [(1, 20)], "first"),
    ]
    calls, outcomes = _batch_calls(True, jobs)
    assert calls == [
        (["a0", "b1", "c0"], "first"),
        (["b0", "e0"], "first"),  # the oldest left-out text leads the next batch
        (["d0"], "first"),
    ]
    assert outcomes == [[["A0"]], [["B0"], ["B1"]], [["C0"]], [["D0"]], [["E0"]]]


def test_batcher_on_a_batch_dependent_graph_runs_each_request_alone() -> None:
    jobs = [
        (["a0", "a1"], [(1, 5)] * 2, "first"),
        (["b0"], [(1, 5)], "first"),
        (["c0", "c1", "c2", "c3"], [(1, 5)] * 4, "first"),
    ]
    calls, _ = _batch_calls(False, jobs)
    assert calls == [(["a0", "a1"], "first"), (["b0"], "first"), (["c0", "c1", "c2", "c3"], "first")]


def test_a_failing_batch_fails_only_the_request_with_the_bad_text() -> None:
    jobs = [(["x"], [(1, 5)], "first"), (["bad"], [(1, 5)], "first"), (["y"], [(1, 5)], "first")]
    calls, outcomes = _batch_calls(True, jobs)
    assert calls[0] == (["x", "bad", "y"], "first") and len(calls) == 4  # the batch, then each request alone
    assert outcomes[0] == [["X"]] and outcomes[2] == [["Y"]] and "bad text" in outcomes[1]


class _SlowModel:
    """Stands in for NerModel: 20 ms per text, held at `gate`; records the texts of each call."""

    batch_invariant = True
    streams = 1

    @staticmethod
    def shares_batch(narrow: int, wide: int) -> bool:
        return True

    def __init__(self) -> None:
        self.gate = threading.Event()
        self.calls: list[list[str]] = []

    def predict(
        self, texts: list[str], batch_size: int = 32, aggregation: str | None = None, *, stream: bool = False
    ) -> list[list[Any]]:
        assert self.gate.wait(5)
        time.sleep(0.02 * len(texts))
        self.calls.append(list(texts))
        return [[text] for text in texts]


def test_batcher_bounds_the_expected_wait_by_the_measured_speed() -> None:
    """`max_queue_ms`: nothing is refused for time before a batch has measured the speed, nor onto an
    empty queue, nor while the queue holds at most one batch (8 texts); past that, behind at least 160 ms
    of work (20 ms a text) and a 20 s running batch, a request is refused for time and never computed."""
    import asyncio

    from ner_export.serve.batcher import Job
    from ner_export.serve.settings import ServeSettings

    model = _SlowModel()
    settings = ServeSettings(max_batch_size=8, max_queued_texts=10, max_client_batch_size=8, max_queue_ms=100)

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        batcher = _started_batcher(model, settings)

        def job(name: str, n: int, width: int = 10) -> Job:
            return Job([f"{name}{i}" for i in range(n)], [(1, width)] * n, "first", loop.create_future(), loop)

        async def until_taken() -> None:
            for _ in range(500):
                if batcher.queued == 0:
                    return
                await asyncio.sleep(0.01)
            raise AssertionError("the batcher never took the queued texts")

        # speed unknown: only the text count bounds the queue
        running, queued, unmeasured = job("a", 1), job("b", 8), job("c", 1)
        assert batcher.submit(running) is None
        await until_taken()
        assert batcher.submit(queued) is None and batcher.submit(unmeasured) is None
        assert batcher.expected_wait() == 0.0
        model.gate.set()
        await asyncio.wait_for(asyncio.gather(running.future, queued.future, unmeasured.future), 10)

        # measured: a long running batch; the queue still takes one batch's worth, then refuses
        model.gate.clear()
        long_running = job("d", 1, width=1000)
        assert batcher.submit(long_running) is None
        await until_taken()
        behind, rest = job("e", 1), job("h", 7)
        assert batcher.submit(behind) is None, "an empty queue always takes a request"
        assert batcher.expected_wait() > 0.1
        assert batcher.submit(rest) is None, "the queue may always hold one full batch"
        late = job("f", 1)
        assert batcher.submit(late) == "queue_wait"
        assert batcher.submit(job("g", 3)) == "queue_full", "the text count is checked first"
        model.gate.set()
        await asyncio.wait_for(asyncio.gather(long_running.future, behind.future, rest.future), 10)
        assert batcher.stop(5) == 0
        assert not late.future.done()

    asyncio.run(scenario())
    computed = [text for call in model.calls for text in call]
    assert "f0" not in computed and sorted(computed) == sorted(
        ["a0", *(f"b{i}" for i in range(8)), "c0", "d0", "e0", *(f"h{i}" for i in range(7))]
    )


class _StreamModel:
    """Stands in for NerModel with two streams; records (texts, stream, start, end) of each call. A call on
    one stream returns only once another stream call has started too (at most 10 s): two stream calls
    that are not in the model at the same time fail with BrokenBarrierError. A call on the whole model
    returns once `whole_model_gate` is set."""

    batch_invariant = True
    streams = 2

    @staticmethod
    def shares_batch(narrow: int, wide: int) -> bool:
        return True

    def __init__(self) -> None:
        self.calls: list[tuple[list[str], bool, float, float]] = []
        self._lock = threading.Lock()
        self.side_by_side = threading.Barrier(2)
        self.whole_model_gate = threading.Event()

    def predict(
        self, texts: list[str], batch_size: int = 32, aggregation: str | None = None, *, stream: bool = False
    ) -> list[list[Any]]:
        started = time.perf_counter()
        if stream:
            self.side_by_side.wait(10)
        else:
            assert self.whole_model_gate.wait(10)
        with self._lock:
            self.calls.append((list(texts), stream, started, time.perf_counter()))
        return [[text] for text in texts]


def test_batcher_streams_run_batches_side_by_side_and_a_lone_batch_on_the_whole_model() -> None:
    """streams=2: a batch taken while the other worker is idle and nothing else waits runs on the whole
    model (stream=False), alone; batches taken under load run on one stream each, at the same time (the
    stand-in's barrier holds each stream call until the other one is in the model)."""
    import asyncio

    from ner_export.serve.batcher import Job
    from ner_export.serve.settings import ServeSettings

    model = _StreamModel()
    settings = ServeSettings(max_batch_size=2)

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        batcher = _started_batcher(model, settings)

        def job(name: str) -> Job:
            return Job([name], [(1, 10)], "first", loop.create_future(), loop)

        lone = job("a")
        assert batcher.submit(lone) is None
        for _ in range(1000):  # until taken: the whole model runs it, held at its gate
            if batcher.queued == 0:
                break
            await asyncio.sleep(0.01)
        assert batcher.queued == 0, "the batcher never took the lone text"
        rest = [job(name) for name in "bcd"]
        for queued in rest:
            assert batcher.submit(queued) is None
        model.whole_model_gate.set()
        await asyncio.wait_for(asyncio.gather(lone.future, *(j.future for j in rest)), 30)
        batcher.stop(5)

    asyncio.run(scenario())
    by_text = {texts[0]: (stream, start, end) for texts, stream, start, end in model.calls}
    assert [texts for texts, *_ in model.calls][0] == ["a"] and by_text["a"][0] is False
    first_stream = min(start for _, stream, start, _ in model.calls if stream)
    assert first_stream >= by_text["a"][2], "no stream batch starts while the whole model is busy"
    assert sorted(t for texts, stream, *_ in model.calls if stream for t in texts) == ["b", "c", "d"]
    (b_and_c,) = [c for c in model.calls if c[0] == ["b", "c"]]
    (d,) = [c for c in model.calls if c[0] == ["d"]]
    assert b_and_c[2] < d[3] and d[2] < b_and_c[3], "the two stream batches ran at the same time"
