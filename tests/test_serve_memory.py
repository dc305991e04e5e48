"""The serve memory benchmark on the tiny bundle: every configuration runs in its own process, reads
RSS where it says, and its report shows each one's growth from warm-up to the end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the serve memory benchmark loads with ner-export serve's settings (serve extra)")

from ner_export.benchmarks.serve_memory import CONFIGURATIONS, main, report  # noqa: E402


def test_every_configuration_runs_in_its_own_process_and_is_reported(
    tiny_bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "memory.json"
    assert main([str(tiny_bundle), "--requests", "12", "--step", "5", "--out", str(out)]) == 0
    rows = json.loads(out.read_text())["rows"]
    assert [row["configuration"] for row in rows] == list(CONFIGURATIONS)
    for row in rows:
        assert len(row["rss_mb_by_requests"]) == 2  # after 5 and 10 of the 12 requests
        assert 0 < row["rss_mb"]["loaded"] <= row["rss_mb"]["warmed_up"] * 2 and row["seconds"] > 0
    table = capsys.readouterr().out
    assert table.count("\n") == 2 + len(CONFIGURATIONS) and "| after 5 requests | after 12 |" in table


def test_a_configuration_that_fails_is_reported_not_hidden() -> None:
    rows = [
        {
            "configuration": "a",
            "rss_mb": {"loaded": 100.0, "warmed_up": 200.0, "end": 210.0},
            "rss_mb_by_requests": [205.0, 210.0],
            "seconds": 3.0,
        },
        {"configuration": "b", "error": "stopped after 5 s"},
    ]
    table = report(rows, 1000, 500)
    assert "| a | 100 | 200 | 205 | 210 | 1.050 | 1.024 | 3.0 |" in table and "| b | stopped after 5 s |" in table
