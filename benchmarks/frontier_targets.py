"""The frontier's targets: what each distilled student must reach against its teacher, checked on a run.

A run's bundles are told apart by what they say of themselves: the reference (the first bundle) is the
teacher; a bundle distilled with a soft weight above 0 is a student of its layer count, one distilled
with soft weight 0 the gold-only baseline of that count. Targets:

- 3 layers: throughput at batch 32 (all CPUs) >= 1.8x the teacher's, pre-split F1 >= the teacher's
  minus 0.4 points;
- 2 layers: >= 2.5x, F1 >= the teacher's minus 1.5 points, >= 1,300 sentences/s on one thread;
- 1 layer: >= 2,000 sentences/s on one thread and F1 >= 0.85 (a spaCy CNN tagger trained on the same
  CoNLL-2003 data: about 1,350 sentences/s on one thread at F1 0.78);
- every student beats its gold-only baseline by >= 0.3 F1 points;
- distilling the 3-layer student (teachers' outputs and training) takes no longer than fine-tuning the
  teacher, from the checkpoints' `metrics.json` when the bundles' manifests point at them;
- stretch: a 6-layer student of an ensemble of three teachers reaches F1 >= 0.890.

A target whose bundles are not in the run gets a row that says so, so a report never drops a target
silently. The limits are CoNLL-2003's with the default recipe's all-MiniLM-L6-v2 teacher; on other data
the rows still say where each student stands against them.
"""

from __future__ import annotations

from typing import Any

from .target_rows import target_row

__all__ = ["FRONTIER_TARGETS", "frontier_targets", "bundle_kind"]

FRONTIER_TARGETS: dict[str, Any] = {
    "by_layers": {
        3: {"speedup": 1.8, "f1_drop_points": 0.4},
        2: {"speedup": 2.5, "f1_drop_points": 1.5, "one_thread_sps": 1300.0},
        1: {"one_thread_sps": 2000.0, "f1": 0.85},
    },
    "over_gold_points": 0.3,
    "ensemble": {"layers": 6, "teachers": 3, "f1": 0.890},
}


def bundle_kind(row: dict[str, Any]) -> str:
    """ "student", "gold" (distilled with soft weight 0), "ensemble" (several teachers) or "" (not distilled)."""
    distilled = row.get("distilled_from")
    if not distilled:
        return ""
    if len(distilled.get("teachers") or []) > 1:
        return "ensemble"
    return "gold" if distilled.get("soft_weight") == 0 else "student"


def _find(bundles: dict[str, dict[str, Any]], kind: str, layers: int) -> tuple[str, dict[str, Any]] | None:
    return next(((n, r) for n, r in bundles.items() if bundle_kind(r) == kind and r.get("layers") == layers), None)


def frontier_targets(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target's row for the run `data` (module docstring); rows of targets without bundles say so."""
    bundles, reference = data["bundles"], data["reference"]
    teacher = bundles[reference]
    rows: list[dict[str, Any]] = []
    for layers, limits in FRONTIER_TARGETS["by_layers"].items():
        found = _find(bundles, "student", layers)
        if found is None:
            rows.append(_absent(f"{layers}-layer student", "no distilled student of this depth in the run"))
            continue
        rows += _depth_rows(found, layers, limits, teacher)
        gold = _find(bundles, "gold", layers)
        name, student = found
        rows.append(
            _absent(f"{name} over its gold-only baseline, F1 points", "no gold-only baseline of this depth in the run")
            if gold is None
            else target_row(
                f"{name} over its gold-only baseline, F1 points",
                100 * (student["f1_presplit"] - gold[1]["f1_presplit"]),
                FRONTIER_TARGETS["over_gold_points"],
                "min",
                f"{gold[0]}: {gold[1]['f1_presplit']:.4f}",
            )
        )
    rows.append(_training_time_row(bundles, teacher))
    rows.append(_ensemble_row(bundles))
    return rows


def _depth_rows(
    found: tuple[str, dict[str, Any]], layers: int, limits: dict[str, float], teacher: dict[str, Any]
) -> list[dict[str, Any]]:
    name, student = found
    rows = []
    if "speedup" in limits:
        rows.append(
            target_row(
                f"{name}: throughput at batch 32 / the teacher's",
                student["throughput_sps"] / teacher["throughput_sps"],
                limits["speedup"],
                "min",
                f"{student['throughput_sps']:.0f} against {teacher['throughput_sps']:.0f} sentences/s",
            )
        )
    if "f1_drop_points" in limits:
        rows.append(
            target_row(
                f"{name}: F1 points below the teacher's",
                100 * (teacher["f1_presplit"] - student["f1_presplit"]),
                limits["f1_drop_points"],
                "max",
                f"{student['f1_presplit']:.4f} against {teacher['f1_presplit']:.4f}",
            )
        )
    if "one_thread_sps" in limits:
        rows.append(
            target_row(
                f"{name}: sentences/s on one thread at batch 32",
                student["throughput_sps_1thread"],
                limits["one_thread_sps"],
                "min",
            )
        )
    if "f1" in limits:
        rows.append(target_row(f"{name}: F1 pre-split", student["f1_presplit"], limits["f1"], "min"))
    return rows


def _training_time_row(bundles: dict[str, dict[str, Any]], teacher: dict[str, Any]) -> dict[str, Any]:
    """Distilling the 3-layer student (teachers' outputs included) against fine-tuning the teacher."""
    name = "distilling the 3-layer student, s / fine-tuning the teacher, s"
    found = _find(bundles, "student", 3)
    spent = (found[1].get("training") or {}) if found else {}
    teacher_spent = teacher.get("training") or {}
    if not spent.get("train_seconds") or not teacher_spent.get("train_seconds"):
        return _absent(name, "a checkpoint's metrics.json was not found from its bundle's manifest")
    distil = spent["train_seconds"] + (spent.get("teacher_seconds") or 0.0)
    return target_row(
        name,
        distil / teacher_spent["train_seconds"],
        1.0,
        "max",
        f"{distil:.0f} s over {spent.get('epochs')} epochs against {teacher_spent['train_seconds']:.0f} s "
        f"over {teacher_spent.get('epochs')}",
    )


def _ensemble_row(bundles: dict[str, dict[str, Any]]) -> dict[str, Any]:
    goal = FRONTIER_TARGETS["ensemble"]
    name = f"stretch: {goal['layers']}-layer student of {goal['teachers']} teachers, F1 pre-split"
    found = _find(bundles, "ensemble", goal["layers"])
    if found is None:
        return _absent(name, "no ensemble student in the run")
    return target_row(name, found[1]["f1_presplit"], goal["f1"], "min", found[0])


def _absent(name: str, why: str) -> dict[str, Any]:
    return {"target": name, "value": None, "limit": None, "kind": None, "holds": None, "miss_by": None, "note": why}
