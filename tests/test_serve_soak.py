"""The soak and the kill-a-worker scenario of the serve benchmarks, on the tiny bundle (slow).

`serve_load_soak`: 20,000 requests of 1 to 20,000 characters (and lists of 32 texts) beside 500 idle
keep-alive connections, bounded at 15 minutes; `serve_load_kill`: two workers under load, one killed
with SIGKILL. Both start `ner-export serve` on 127.0.0.1 and stop it with SIGTERM.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the soak starts ner-export serve, which needs the serve extra")


@pytest.mark.slow
def test_soak_holds_memory_descriptors_and_latency(tiny_bundle: Path, tmp_path: Path) -> None:
    from ner_export.benchmarks.serve_load_soak import run_soak

    result = run_soak(str(tiny_bundle), server_args=("--precision", "fp32"), max_seconds=900, log=tmp_path / "soak.log")
    assert result["exit_status"] == 0 and not result["stopped_early"], result
    assert result["requests_sent"] == 20_000 and set(result["statuses"]) <= {"200", "429"}, result["statuses"]
    assert result["statuses"].get("429", 0) <= 200, result["statuses"]
    assert result["idle_connections"]["still_open_at_end"] == 500
    resources = result["resources"]
    # after the first phase has grown the arenas for every length, the soak itself must not grow much
    assert resources["end"]["rss_bytes"] <= 1.25 * resources["idle_opened"]["rss_bytes"], resources
    assert resources["end"]["open_fds"] <= resources["idle_opened"]["open_fds"] + 20, resources
    p99 = result["p99_ms"]
    assert p99["end"] <= 3 * p99["start"] and p99["with_idle"] <= 3 * p99["without_idle"], p99


@pytest.mark.slow
def test_killing_one_of_two_workers_under_load(tiny_bundle: Path, tmp_path: Path) -> None:
    from ner_export.benchmarks.serve_load_kill import run_kill

    result = run_kill(str(tiny_bundle), ("--precision", "fp32"), before=3, after=3, log=tmp_path / "kill.log")
    assert result["replaced"] and result["refused"] == 0 and result["exit_status"] == 0, result
    assert result["all_failures_sent_before_the_kill"] and len(result["failed"]) <= 4, result["failed"]
    assert result["after_ready"]["sent"] > 0 and result["after_ready"]["ok"] == result["after_ready"]["sent"]
