"""The OpenAPI document holds: schemathesis, with all its checks, against a live server on 127.0.0.1.

schemathesis generates requests from `/openapi.json` (valid ones, and invalid ones from each rule of the
schema), sends them, and checks every answer against the document: status codes declared, bodies and
headers matching, valid requests accepted, invalid ones refused, other methods answered 405 with an
Allow header. A fixed seed and a bounded number of cases keep the run reproducible; the default run
has about 200 cases, the slow one over 1,000. Any finding fails the test, with schemathesis' report.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

httpx = pytest.importorskip("httpx", reason="the serve tests need httpx (the test extra)")
pytest.importorskip("schemathesis", reason="the schema test needs schemathesis (the test extra)")
from serve_harness import Server, serving  # noqa: E402

from ner_export.benchmarks.serve_schema_fuzz import fuzz_schema  # noqa: E402


@pytest.fixture(scope="module")
def schema_server(tiny_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    log = tmp_path_factory.mktemp("schema") / "server.log"
    with serving(tiny_bundle, "--precision", "fp32", "--no-access-log", log=log) as running:
        yield running
        assert running.stop() == 0, running.text()[-3000:]


def run_schemathesis(server: Server, tmp_path: Path, max_examples: int) -> dict:
    """Run schemathesis on the server's schema; its JSON report (the test fails on any finding)."""
    found = fuzz_schema(server.url, tmp_path, max_examples, timeout=900)
    assert found["passed"], f"schemathesis found problems:\n{found['output']}"
    return found["report"]


def test_the_schema_says_what_is_refused_and_answered(schema_server: Server) -> None:
    schema = httpx.get(schema_server.url + "/openapi.json").json()
    request = schema["components"]["schemas"]["PredictRequest"]
    assert request["additionalProperties"] is False
    assert schema["components"]["schemas"]["Parameters"]["additionalProperties"] is False
    assert request["properties"]["inputs"]["anyOf"][1]["maxItems"] == 32  # --max-client-batch-size
    for path in ("/", "/predict"):
        assert set(schema["paths"][path]["post"]["responses"]) == {"200", "413", "422", "429", "500", "503", "504"}
    assert list(schema["paths"]["/metrics"]["get"]["responses"]["200"]["content"]) == ["text/plain; version=0.0.4"]
    answer = httpx.get(schema_server.url + "/metrics")
    assert answer.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    extra = httpx.post(schema_server.url + "/predict", json={"inputs": "Paris", "top_k": 3})
    assert extra.status_code == 422 and extra.json()["error"].startswith("top_k: unknown field")


def test_the_schema_holds_under_fuzzing(schema_server: Server, tmp_path: Path) -> None:
    report = run_schemathesis(schema_server, tmp_path, max_examples=25)
    assert report["operations"]["tested"] == 6 and 150 <= report["test_cases"]["generated"] <= 400, report


@pytest.mark.slow
def test_the_schema_holds_under_longer_fuzzing(schema_server: Server, tmp_path: Path) -> None:
    report = run_schemathesis(schema_server, tmp_path, max_examples=500)
    assert report["operations"]["tested"] == 6 and report["test_cases"]["generated"] >= 1000, report
