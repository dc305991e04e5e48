"""Fuzz a running `ner-export serve` from its own OpenAPI document with schemathesis, all checks on.

schemathesis reads `/openapi.json`, generates requests from it (valid ones, and invalid ones from each
rule of the schema), sends them and checks every answer against the document: status codes declared,
bodies and headers matching, valid requests accepted, invalid ones refused, other methods answered 405
with an Allow header. A fixed seed and a bounded number of examples per operation keep a run
reproducible and bounded; the summary counts generated cases, tested operations and findings.

Trade-off: schemathesis runs as its own command (the `test` extra installs it) rather than through its
Python API, which changes between releases more than the command line does; its JSON report is read
back for the counts. The server is whatever the URL points at; the callers start one on 127.0.0.1.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

__all__ = ["fuzz_schema", "SEED"]

SEED = 20_251
# A request naming too many texts is invalid by the schema (inputs' maxItems) and refused with 413, the
# status the schema declares for it; schemathesis' default list of refusals has no 413.
CONFIG = """
[checks.negative_data_rejection]
expected-statuses = ["400", "404", "405", "406", "413", "415", "422"]
"""


def fuzz_schema(url: str, workdir: Path, max_examples: int, seed: int = SEED, timeout: float = 1500) -> dict[str, Any]:
    """Run schemathesis against `url` (the server's base URL); its counts, exit status and output tail.

    `passed` is true only when schemathesis exited 0 (no finding); `output` keeps the end of its report
    so a failure says what it found.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "schemathesis.toml"
    config.write_text(CONFIG)
    report = workdir / "schemathesis-report.json"
    command = [
        str(Path(sys.executable).parent / "schemathesis"),
        "--config-file",
        str(config),
        "--no-color",
        "run",
        url.rstrip("/") + "/openapi.json",
        "--checks",
        "all",
        "--mode",
        "all",
        "--phases",
        "examples,coverage,fuzzing",
        "--max-examples",
        str(max_examples),
        "--seed",
        str(seed),
        "--workers",
        "1",
        "--request-timeout",
        "30",
        "--report",
        "json",
        "--report-json-path",
        str(report),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    found: dict[str, Any] = json.loads(report.read_text()) if report.is_file() else {}
    operations = found.get("operations", {})
    cases = found.get("test_cases", {})
    return {
        "seed": seed,
        "max_examples": max_examples,
        "exit_status": done.returncode,
        "passed": done.returncode == 0,
        "operations_tested": operations.get("tested"),
        "operations_total": operations.get("total"),
        "cases_generated": cases.get("generated"),
        "failures": found.get("failures", found.get("findings")),
        "report": found,
        "output": (done.stdout[-12000:] + done.stderr[-3000:]).strip(),
    }
