"""Recipe sweep: fine-tune one configuration after another and tabulate dev F1 and time per run.

Runs are strictly sequential (two trainings on the same cores spoil each other's times) and are scored
on dev only: the test file is never read here, so choosing a recipe cannot leak test information. Each
finished run is appended to `sweep.jsonl` at once, so an interrupted sweep keeps what it measured and a
re-run skips the runs already recorded. The Markdown table is rebuilt from the JSONL after every run.

    python -m ner_export.benchmarks.recipe_sweep --train T --dev D --out DIR \\
        --run "lr1e-4:learning_rate=1e-4" --run "ctx64:context=document,max_length=64"
"""

from __future__ import annotations

import argparse
import json
from dataclasses import fields
from pathlib import Path
from typing import Any

from ner_export.finetune import TrainConfig, finetune

__all__ = ["parse_run", "run_sweep", "sweep_table"]

_TUNABLE_FIELDS = {f.name for f in fields(TrainConfig)} - {"train", "dev", "test", "out", "force", "progress"}


def parse_run(spec: str) -> tuple[str, dict[str, Any]]:
    """'name:key=value,key=value' -> (name, overrides), values parsed as JSON where they can be."""
    name, _, body = spec.partition(":")
    if not name:
        raise ValueError(f"run {spec!r}: expected NAME:key=value,...")
    overrides: dict[str, Any] = {}
    for item in filter(None, body.split(",")):
        key, sep, value = item.partition("=")
        if not sep or key not in _TUNABLE_FIELDS:
            raise ValueError(
                f"run {name!r}: {item!r} is not key=value with a key among {', '.join(sorted(_TUNABLE_FIELDS))}"
            )
        try:
            overrides[key] = json.loads(value)
        except json.JSONDecodeError:
            overrides[key] = value
    return name, overrides


def sweep_table(records: list[dict[str, Any]]) -> str:
    """Markdown table of the runs, in the order they were run."""
    lines = [
        "| run | changes from the defaults | best dev F1 | best epoch | dev F1 per epoch | train s | s per epoch |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in records:
        changes = ", ".join(f"{k}={v}" for k, v in r["overrides"].items()) or "(defaults)"
        per_epoch = " / ".join(f"{e['dev_f1']:.4f}" for e in r["epochs"])
        seconds = sum(e["train_seconds"] for e in r["epochs"]) / max(1, len(r["epochs"]))
        lines.append(
            f"| {r['name']} | {changes} | **{r['best_dev_f1']:.4f}** | {r['best_epoch']} | {per_epoch} "
            f"| {r['train_seconds']:.0f} | {seconds:.0f} |"
        )
    return "\n".join(lines) + "\n"


def run_sweep(
    train: str, dev: str, out: Path, runs: list[tuple[str, dict[str, Any]]], keep_checkpoints: bool = False
) -> list[dict[str, Any]]:
    """Run each (name, overrides) not yet in out/sweep.jsonl; return all records."""
    out.mkdir(parents=True, exist_ok=True)
    log = out / "sweep.jsonl"
    records = [json.loads(line) for line in log.read_text().splitlines()] if log.is_file() else []
    done = {r["name"] for r in records}
    for name, overrides in runs:
        if name in done:
            continue
        target = out / name
        result = finetune(TrainConfig(train=train, dev=dev, out=str(target), force=True, **overrides))
        record = {
            "name": name,
            "overrides": overrides,
            "best_dev_f1": result.best_dev_f1,
            "best_epoch": result.best_epoch,
            "train_seconds": result.train_seconds,
            "epochs": result.epochs,
        }
        records.append(record)
        with open(log, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
        (out / "sweep.md").write_text(sweep_table(records), encoding="utf-8")
        if not keep_checkpoints:
            for path in sorted(target.rglob("*"), reverse=True):
                path.unlink() if path.is_file() else path.rmdir()
            target.rmdir()
    return records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", required=True)
    parser.add_argument("--dev", required=True)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--run", action="append", required=True, help="NAME:key=value,... (TrainConfig fields)")
    parser.add_argument("--keep-checkpoints", action="store_true")
    args = parser.parse_args()
    records = run_sweep(args.train, args.dev, args.out, [parse_run(r) for r in args.run], args.keep_checkpoints)
    print(sweep_table(records))


if __name__ == "__main__":
    main()
