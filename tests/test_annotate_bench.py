"""The annotate benchmark, smoke-tested on the tiny bundle with a tiny corpus (numbers not checked)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("pyarrow", reason="the annotate extra (pyarrow) is not installed")

from ner_export.benchmarks.annotate_bench import AnnotateBenchConfig, main, run_annotate_bench  # noqa: E402

RUN_KEYS = {
    "engine",
    "actors",
    "threads",
    "rows",
    "errors",
    "wall_s",
    "rows_per_s",
    "ray_init_s",
    "rows_per_s_without_ray_start",
    "peak_pss_mb",
    "pss_sampler_cpu_s",
    "format",
    "ratio_to_offline",
    "summary",
}


def test_local_engine_smoke(tiny_bundle: Path, conll_file: Path, tmp_path: Path) -> None:
    out = tmp_path / "results"
    main(
        [
            "--bundle",
            str(tiny_bundle),
            "--data",
            str(conll_file),
            "--rows",
            "120",
            "--engines",
            "local",
            "--shard-size",
            "50",
            "--out",
            str(out),
            "--name",
            "smoke",
            "-q",
        ]
    )
    data = json.loads((out / "smoke.json").read_text())
    assert data["corpus"]["rows"] == 120 and data["corpus"]["distinct_sentences"] == 4
    assert data["offline"]["rows_per_s"] > 0 and data["offline"]["batch_size"] == 32
    assert [(r["engine"], r["format"]) for r in data["runs"]] == [("local", "parquet"), ("local", "jsonl")]
    for run in data["runs"]:
        assert set(run) == RUN_KEYS and run["rows"] == 120 and run["errors"] == 0
        assert run["pss_sampler_cpu_s"] >= 0
        assert run["peak_pss_mb"] > 10 and run["ratio_to_offline"] == pytest.approx(
            run["rows_per_s"] / data["offline"]["rows_per_s"], abs=1e-3
        )
    model = data["cost_model"]
    assert model["label"].startswith("projection") and model["assumptions"]
    for basis in model["basis"].values():
        assert basis["core_seconds_per_million"] == pytest.approx(1e6 / basis["sentences_per_core_s"], rel=1e-2)
    markdown = (out / "smoke.md").read_text()
    assert "Cost model — projection" in markdown and "| local | parquet |" in markdown


def test_missing_data_file(tiny_bundle: Path, tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="no such CoNLL file"):
        run_annotate_bench(
            AnnotateBenchConfig(bundle=str(tiny_bundle), data=str(tmp_path / "none.txt"), out=str(tmp_path))
        )


@pytest.mark.slow
def test_ray_engine_smoke(tiny_bundle: Path, conll_file: Path, tmp_path: Path) -> None:
    pytest.importorskip("ray", reason="the ray extra is not installed (pip install 'ner-export[ray]')")
    data = run_annotate_bench(
        AnnotateBenchConfig(
            bundle=str(tiny_bundle),
            data=str(conll_file),
            out=str(tmp_path),
            rows=60,
            engines=("ray",),
            actors=(1,),
            formats=("jsonl",),
            progress=False,
        )
    )
    (run,) = data["runs"]
    assert run["engine"] == "ray" and run["actors"] == 1 and run["rows"] == 60 and run["ray_init_s"] > 0
    assert "ray_steady (best Ray run, start-up excluded)" in data["cost_model"]["basis"]
