"""The serve load benchmark in smoke mode on the tiny bundle: the script runs end to end (it measures nothing here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the load benchmark starts ner-export serve, which needs the serve extra")
pytest.importorskip("matplotlib", reason="the load benchmark plots with matplotlib (the bench extra)")


@pytest.mark.parametrize("workers", [1, 2])
def test_serve_load_smoke(tiny_bundle: Path, conll_file: Path, tmp_path: Path, workers: int) -> None:
    out = tmp_path / "load"
    command = [
        sys.executable,
        "-m",
        "ner_export.benchmarks.serve_load",
        str(tiny_bundle),
        "--data",
        str(conll_file),
        "--out",
        str(out),
        "--smoke",
        "--precision",
        "fp32",
        "--threads",
        "1",
        "--workers",
        str(workers),
        "-q",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((out / "serve-cpu.json").read_text())
    assert (out / "serve-cpu.md").read_text().startswith("# Serve load") and (out / "serve-cpu.png").stat().st_size > 0
    assert results["smoke"] and results["offline"]["throughput_sps"] > 0
    for key in ("a", "b"):
        run = results["configs"][key]
        assert run["exit_status"] == 0 and [s["offered_rps"] for s in run["steps"]] == [20.0, 40.0]
        for step in run["steps"]:
            assert (
                step["sent"] > 0
                and step["ok"] + step["status_429"] + step["status_5xx"] + step["transport_errors"] + step["unfinished"]
                == step["sent"]
            )
            assert step["server"]["batches"] >= 1 and step["server"]["rss_mb_after"] > 0
            assert step["cpu"]["server_ms_per_request"] > 0 and step["cpu"]["client_ms_per_request"] > 0
    assert "--max-batch-size 1" in " ".join(results["configs"]["b"]["args"])
    assert ("--workers 2" in " ".join(results["configs"]["a"]["args"])) == (workers == 2)
    assert "overload" in results["configs"]["a"] and len(results["targets"]) == 7
    assert "Smoke run" in done.stdout
    economy = results["batching_economy"]
    assert set(economy["sentences_per_s"]) == {"1", "4", "16", "sorted"} and economy["gain_over_lone"]["1"] == 1.0
    assert all(rate > 0 for rate in economy["sentences_per_s"].values()) and "(e) What batching can buy" in done.stdout


def test_serve_load_skips_without_data(tiny_bundle: Path, tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "ner_export.benchmarks.serve_load", str(tiny_bundle)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert done.returncode == 0 and "skipped: no CoNLL-2003 test file" in done.stderr, done.stderr
    missing = subprocess.run(
        [
            sys.executable,
            "-m",
            "ner_export.benchmarks.serve_load",
            str(tiny_bundle),
            "--data",
            str(tmp_path / "absent.txt"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode == 1 and "absent.txt: no such file" in missing.stderr


@pytest.mark.slow
def test_serve_load_smoke_with_ray(tiny_bundle: Path, conll_file: Path, tmp_path: Path) -> None:
    """--ray adds (r), Ray Serve with the same settings, rates and data, and the overhead section."""
    pytest.importorskip("ray", reason="--ray needs the ray extra: pip install 'ner-export[ray]'")
    out = tmp_path / "load"
    command = [
        sys.executable,
        "-m",
        "ner_export.benchmarks.serve_load",
        str(tiny_bundle),
        "--data",
        str(conll_file),
        "--out",
        str(out),
        "--smoke",
        "--ray",
        "--precision",
        "fp32",
        "--threads",
        "1",
        "-q",
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=420)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads((out / "serve-cpu.json").read_text())
    ray_run = results["configs"]["r"]
    assert (
        ray_run["exit_status"] == 0
        and ray_run["info"]["engine"] == "ray"
        and "--engine ray" in " ".join(ray_run["args"])
    )
    assert (
        [s["offered_rps"] for s in ray_run["steps"]]
        == [s["offered_rps"] for s in results["configs"]["a"]["steps"]]
        == [20.0, 40.0]
    )
    for step in ray_run["steps"]:
        assert (
            step["ok"] > 0
            and step["ok"] + step["status_429"] + step["status_5xx"] + step["transport_errors"] + step["unfinished"]
            == step["sent"]
        )
        assert step["server"]["batches"] >= 1 and step["server"]["mean_batch_size"] >= 1, (
            "the replica's counters from /info"
        )
    overhead = results["ray_overhead"]
    assert [row["offered_rps"] for row in overhead["by_rate"]] == [20.0, 40.0] and overhead["ready_s"]["r"] > 0
    assert "## Ray Serve against ner-export serve" in (out / "serve-cpu.md").read_text()
