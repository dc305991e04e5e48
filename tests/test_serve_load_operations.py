"""The operations verdicts of a serve load run, on figures made here: each target holds or misses as its
figures say, and the report shows the raw figures beside them."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from ner_export.benchmarks.serve_load_operations import OPERATION_TARGETS, operation_targets, operations_lines

MB = 2**20


def healthy() -> dict[str, Any]:
    """Figures of a run where every operations target holds."""
    return {
        "overhead": {"server_us": 2900.0, "model_us": 2500.0, "beyond_model_us": 400.0},
        "kill": {
            "server_args": ["--workers", "2", "--threads", "1"],
            "victim_pid": 123,
            "replaced": True,
            "kill_to_ready_s": 3.1,
            "replacement_load_s": 2.0,
            "requests": 900,
            "refused": 0,
            "failed": [{"sent_after_kill_s": -0.004, "outcome": "IncompleteReadError"}],
            "after_ready": {"sent": 300, "ok": 300},
            "exit_status": 0,
        },
        "soak": {
            "requests_sent": 20_000,
            "ok": 20_000,
            "seconds": 600.0,
            "clients": 4,
            "statuses": {"200": 20_000},
            "stopped_early": False,
            "exit_status": 0,
            "idle_connections": {"opened": 500, "still_open_at_end": 500},
            "resources": {
                "start": {"rss_bytes": 150 * MB, "open_fds": 20},
                "idle_opened": {"rss_bytes": 200 * MB, "open_fds": 520},
                "end": {"rss_bytes": 210 * MB, "open_fds": 524},
                "idle_closed": {"rss_bytes": 210 * MB, "open_fds": 20},
            },
            "p99_ms": {"without_idle": 100.0, "with_idle": 120.0, "start": 110.0, "end": 115.0},
        },
        "schema": {
            "seed": 1,
            "max_examples": 500,
            "exit_status": 0,
            "passed": True,
            "operations_tested": 6,
            "operations_total": 6,
            "cases_generated": 1400,
        },
    }


def by_name(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {row["target"]: row for row in rows}


def named(rows: dict[str, dict[str, Any]], start: str) -> dict[str, Any]:
    """The one row whose target starts with `start`."""
    (found,) = [row for name, row in rows.items() if name.startswith(start)]
    return found


def test_every_target_holds_on_healthy_figures() -> None:
    rows = operation_targets(healthy(), best_rate=450.0, offline_sps=900.0)
    assert len(rows) == 12 and all(row["holds"] for row in rows), [r for r in rows if not r["holds"]]
    found = by_name(rows)
    assert found["(a) best rate with p99 <= 50 ms / (c)"]["value"] == pytest.approx(0.5)
    assert found["server CPU ms per request beyond the model, mean batch 1"]["value"] == pytest.approx(0.4)
    assert found["kill: s from kill to replacement ready, beyond its model load"]["value"] == pytest.approx(1.1)
    assert found["soak: RSS growth, end over after warm-up"]["value"] == pytest.approx(0.05)
    assert found["soak: p99 with idle connections / without"]["value"] == pytest.approx(1.2)


@pytest.mark.parametrize(
    ("target", "spoil", "miss"),
    [
        ("(a) best rate with p99 <= 50 ms / (c)", None, 0.45 - 300 / 900),
        ("server CPU ms per request beyond the model, mean batch 1", ("overhead", "beyond_model_us", 1300.0), 0.7),
        ("kill: connections refused", ("kill", "refused", 2), 2),
        ("kill: failed requests sent after the kill", ("kill", "failed", [{"sent_after_kill_s": 1, "outcome": 5}]), 1),
        ("kill: failed requests sent after the replacement", ("kill", "after_ready", {"sent": 9, "ok": 7}), 2),
        ("kill: s from kill to replacement ready, beyond its model load", ("kill", "kill_to_ready_s", 9.0), 2.0),
        ("schema: generated cases with no finding", ("schema", "passed", False), OPERATION_TARGETS["schema_cases"]),
        ("schema: share of operations tested", ("schema", "operations_tested", 3), 0.5),
        ("soak: 5xx responses and transport errors", ("soak", "statuses", {"200": 19_990, "503": 7, "OSError": 3}), 10),
        ("soak: RSS growth, end over after warm-up", ("soak", "resources.end.rss_bytes", 240 * MB), 0.1),
        ("soak: descriptors above the idle count", ("soak", "resources.idle_closed.open_fds", 31), 11),
        ("soak: p99 with idle connections / without", ("soak", "p99_ms.with_idle", 200.0), 0.5),
    ],
)  # fmt: skip
def test_each_target_misses_by_what_its_figures_say(target: str, spoil: Any, miss: float) -> None:
    figures = copy.deepcopy(healthy())
    if spoil is not None:
        part, path, value = spoil
        place = figures[part]
        *parents, leaf = path.split(".")
        for key in parents:
            place = place[key]
        place[leaf] = value
    rows = by_name(operation_targets(figures, best_rate=300.0 if spoil is None else 450.0, offline_sps=900.0))
    assert not named(rows, target)["holds"] and named(rows, target)["miss_by"] == pytest.approx(miss)
    assert [name for name, row in rows.items() if not row["holds"]] == [named(rows, target)["target"]]


def test_a_worker_never_replaced_and_a_missing_rate_miss_without_a_value() -> None:
    figures = healthy()
    figures["kill"].update(replaced=False, kill_to_ready_s=None, replacement_load_s=None)
    rows = by_name(operation_targets(figures, best_rate=None, offline_sps=900.0))
    for target in (
        "kill: s from kill to replacement ready, beyond its model load",
        "(a) best rate with p99 <= 50 ms / (c)",
    ):
        assert rows[target]["value"] is None and not rows[target]["holds"]


def test_the_report_shows_the_raw_figures() -> None:
    text = "\n".join(operations_lines(healthy()))
    assert "beyond the model **400 µs**" in text
    assert "worker pid 123 SIGKILLed" in text and "1 failed (IncompleteReadError)" in text and "300/300 ok" in text
    assert "1400 cases over 6/6 operations" in text
    assert (
        "| idle connections closed | 210 | 20 |" in text
        and "| after warm-up, idle connections open | 200 | 520 |" in text
    )
