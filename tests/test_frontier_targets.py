"""The frontier's targets on runs made here: students, gold-only baselines and the teacher are told apart
by their distillation records, each target holds or misses as the figures say, and a target without its
bundles is reported as not measured rather than dropped."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from ner_export.benchmarks.frontier_report import render_frontier_markdown
from ner_export.benchmarks.frontier_targets import frontier_targets


def bundle(layers: int, f1: float, sps: float, sps1: float, soft: float | None, **training: Any) -> dict[str, Any]:
    distilled = (
        None if soft is None else {"teachers": ["ckpt"], "layers_kept": list(range(layers)), "soft_weight": soft}
    )
    return {
        "layers": layers,
        "f1_presplit": f1,
        "throughput_sps": sps,
        "throughput_sps_1thread": sps1,
        "distilled_from": distilled,
        "training": training or None,
    }


def run() -> dict[str, Any]:
    """A run where every target with bundles holds."""
    return {
        "reference": "teacher",
        "bundles": {
            "teacher": bundle(6, 0.8870, 1000, 500, None, train_seconds=1700.0, epochs=3),
            "student-3": bundle(3, 0.8850, 1900, 1000, 0.5, train_seconds=700.0, teacher_seconds=60.0, epochs=2),
            "student-2": bundle(2, 0.8800, 2600, 1400, 0.5),
            "student-1": bundle(1, 0.8600, 4000, 2100, 0.5),
            "gold-3": bundle(3, 0.8750, 1900, 1000, 0.0),
            "gold-2": bundle(2, 0.8700, 2600, 1400, 0.0),
            "gold-1": bundle(1, 0.8500, 4000, 2100, 0.0),
        },
    }


def rows(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {row["target"]: row for row in frontier_targets(data)}


def test_every_target_with_its_bundles_holds_and_the_stretch_is_not_measured() -> None:
    found = rows(run())
    measured = {name: row for name, row in found.items() if row["kind"] is not None}
    assert len(measured) == 11 and all(row["holds"] for row in measured.values()), measured
    assert found["student-3: throughput at batch 32 / the teacher's"]["value"] == pytest.approx(1.9)
    assert found["student-3: F1 points below the teacher's"]["value"] == pytest.approx(0.2)
    assert found["student-2 over its gold-only baseline, F1 points"]["value"] == pytest.approx(1.0)
    time_row = found["distilling the 3-layer student, s / fine-tuning the teacher, s"]
    assert time_row["value"] == pytest.approx(760 / 1700) and "2 epochs" in time_row["note"]
    (stretch,) = [row for name, row in found.items() if name.startswith("stretch")]
    assert stretch["holds"] is None and stretch["note"] == "no ensemble student in the run"


@pytest.mark.parametrize(
    ("bundle_name", "field", "value", "target", "miss"),
    [
        ("student-3", "throughput_sps", 1500, "student-3: throughput at batch 32 / the teacher's", 0.3),
        ("student-3", "f1_presplit", 0.8800, "student-3: F1 points below the teacher's", 0.3),
        ("student-2", "throughput_sps_1thread", 1200, "student-2: sentences/s on one thread at batch 32", 100),
        ("student-1", "f1_presplit", 0.8400, "student-1: F1 pre-split", 0.01),
        ("gold-1", "f1_presplit", 0.8590, "student-1 over its gold-only baseline, F1 points", 0.2),
    ],
)
def test_a_target_misses_by_what_its_figures_say(
    bundle_name: str, field: str, value: float, target: str, miss: float
) -> None:
    data = copy.deepcopy(run())
    data["bundles"][bundle_name][field] = value
    found = rows(data)
    assert not found[target]["holds"] and found[target]["miss_by"] == pytest.approx(miss)
    missed = [name for name, row in found.items() if row["holds"] is False]
    assert missed == [target] or bundle_name == "student-1" and target in missed


def test_slow_distillation_and_missing_bundles() -> None:
    data = copy.deepcopy(run())
    data["bundles"]["student-3"]["training"]["train_seconds"] = 2000.0
    del data["bundles"]["gold-2"], data["bundles"]["student-1"]
    data["bundles"]["teacher"]["training"] = None
    found = rows(data)
    assert found["student-2 over its gold-only baseline, F1 points"]["holds"] is None
    assert found["1-layer student"]["note"] == "no distilled student of this depth in the run"
    assert found["distilling the 3-layer student, s / fine-tuning the teacher, s"]["holds"] is None
    data["bundles"]["teacher"]["training"] = {"train_seconds": 1700.0, "epochs": 3}
    slow = rows(data)["distilling the 3-layer student, s / fine-tuning the teacher, s"]
    assert not slow["holds"] and slow["miss_by"] == pytest.approx(2060 / 1700 - 1)


def test_an_ensemble_student_counts_for_the_stretch_only() -> None:
    data = copy.deepcopy(run())
    ensemble = bundle(6, 0.8910, 1000, 500, 0.5)
    ensemble["distilled_from"]["teachers"] = ["a", "b", "c"]
    data["bundles"]["ensemble-6"] = ensemble
    (stretch,) = [row for name, row in rows(data).items() if name.startswith("stretch")]
    assert stretch["holds"] and stretch["value"] == 0.8910 and stretch["note"] == "ensemble-6"


def test_the_report_has_the_targets_table() -> None:
    data = run()
    data["targets"] = frontier_targets(data)
    lines = "\n".join(_report_lines(data))
    assert "## Targets" in lines
    assert "| student-3: F1 points below the teacher's | 0.2000 | <= 0.4 | yes |" in lines
    assert "| stretch: 6-layer student of 3 teachers, F1 pre-split | n/a | n/a | not measured |" in lines


def _report_lines(data: dict[str, Any]) -> list[str]:
    full = {
        **data,
        "dataset": {"path": "test.txt", "sentences": 1, "tokens": 1, "sha256": "0" * 64},
        "machine": {"cpu": "cpu", "cpus_available": 2},
        "settings": {"precision": "int8", "repeats": 1, "latency_sentences": 1, "batch_size": 32},
        "bundles": {
            name: {
                **row,
                "f1_rawtext": row["f1_presplit"],
                "latency_ms": {"p50": 1.0},
                "bundle_mb": 1.0,
                "int8_graph_mb": 1.0,
                "vs_reference": {"f1_presplit_points": 0.0, "throughput": 1.0, "throughput_1thread": 1.0},
            }
            for name, row in data["bundles"].items()
        },
    }
    return render_frontier_markdown(full).splitlines()
