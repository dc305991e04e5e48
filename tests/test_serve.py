"""`ner-export serve` answers: a real uvicorn server in a subprocess on 127.0.0.1, driven over loopback.

Exactness is checked on the fp32 graph (batch-invariant), where micro-batching across requests must
give exactly what an offline `model.predict` gives; also the Hugging Face client, health and info, the
error bodies, metrics and the access log. Every loop is bounded in count and time.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

httpx = pytest.importorskip("httpx", reason="the serve tests need httpx (the test extra)")
pytest.importorskip("fastapi", reason="ner-export serve needs the serve extra (fastapi, uvicorn, prometheus-client)")
pytest.importorskip("uvicorn", reason="ner-export serve needs the serve extra (fastapi, uvicorn, prometheus-client)")
from serve_harness import (  # noqa: E402
    TEXTS,
    Server,
    expected,
    metrics,
    post_concurrently,
    random_request,
    sample,
    serving,
    wait_for,
)

from ner_export.runtime import NerModel  # noqa: E402


@pytest.fixture(scope="module")
def server(tiny_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The main server: fp32 (batch-invariant), a short batching wait, and torch made unimportable."""
    log = tmp_path_factory.mktemp("serve") / "server.log"
    with serving(tiny_bundle, "--precision", "fp32", "--max-wait-ms", 5, log=log, runtime_only=True) as running:
        yield running
        assert running.stop() == 0, running.text()[-3000:]


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
