"""What the serve tests share: a real `ner-export serve` in a subprocess on 127.0.0.1 (`serving`), the
metrics parser, bounded waits, the offline answers a server must equal, and random requests.

Servers bind 127.0.0.1 only, every wait is bounded in time, and `RUNTIME_ONLY` runs the CLI with torch,
transformers and optimum unimportable, as in a `ner-export[cpu,serve]` install.
"""

from __future__ import annotations

import contextlib
import json
import random
import re
import shutil
import signal
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


def mark_graph_batch_dependent(bundle: Path, out: Path) -> Path:
    shutil.copytree(bundle, out)
    manifest = json.loads((out / "bundle.json").read_text())
    for graph in manifest["graphs"]:
        if graph["device"] == "cpu" and graph["precision"] == "fp32":
            graph["batch_invariant"] = False
    (out / "bundle.json").write_text(json.dumps(manifest))
    return out
