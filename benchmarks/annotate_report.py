"""The annotate benchmark's Markdown: the runs against the offline rate and their goals, then the projection.

Each run's rate is shown as a fraction of the runtime's offline rate, against its engine's goal
(`TARGETS`): the local engine should come close to the offline rate, the Ray engine, whose rows all
pass through the driver, somewhat less.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .annotate_cost import NODE_CORES

__all__ = ["TARGETS", "render_markdown"]

TARGETS = {"local": 0.9, "ray": 0.7}  # the goal per engine: rows/s as a fraction of the offline batch-32 rate


def _run_rows(data: dict[str, Any]) -> list[str]:
    """The runs table: one Markdown row per engine run."""
    lines = []
    for r in data["runs"]:
        target = TARGETS[r["engine"]]
        shape = f"{r['actors']} x {r['threads']}" if r["actors"] else f"in-process, {r['threads']} threads"
        lines.append(
            f"| {r['engine']} | {r['format']} | {shape} | {r['rows_per_s']:.0f} | {r['ratio_to_offline']:.2f}x "
            f"| >= {target}x {'met' if r['ratio_to_offline'] >= target else 'not met'} "
            f"| {r['rows_per_s_without_ray_start'] or '-'} | "
            f"{r['ray_init_s'] if r['ray_init_s'] is not None else '-'} | {r['wall_s']:.1f} | {r['peak_pss_mb']:.0f} "
            f"| {r.get('pss_sampler_cpu_s', '-')} |"
        )
    return lines


def _cost_rows(model: dict[str, Any]) -> list[str]:
    """The cost model's section: its label, one row per basis, then its assumptions."""
    lines = [
        f"## Cost model — {model['label']}",
        "",
        "| basis | sentences per core-second | core-seconds per million | core-hours per billion "
        f"| cores for 1e9 in 1 h | {NODE_CORES}-core nodes |",
        "|---|---|---|---|---|---|",
    ]
    for name, b in model["basis"].items():
        lines.append(
            f"| {name} | {b['sentences_per_core_s']} | {b['core_seconds_per_million']} | {b['core_hours_per_billion']} "
            f"| {b['cores_for_1e9_in_1h']} | {b[f'nodes_of_{NODE_CORES}_cores']} |"
        )
    return lines + ["", "Assumptions:", ""] + [f"- {a}" for a in model["assumptions"]]


def render_markdown(data: dict[str, Any]) -> str:
    """The benchmark's result (what `run_annotate_bench` returns) as a Markdown page."""
    offline = data["offline"]["rows_per_s"]
    lines = [
        f"# `ner-export annotate` on {data['corpus']['rows']:,} sentences",
        "",
        f"Corpus: the {data['corpus']['distinct_sentences']} sentences of `{Path(data['corpus']['source']).name}` "
        f"repeated (mean {data['corpus']['mean_words']} words); bundle graph {data['offline']['precision']}; "
        f"{data['machine']['cpus_available']} CPUs ({data['machine']['cpu']}). Command: `{data['command']}`",
        "",
        "Reference: the runtime's offline throughput (`NerModel.predict` on the in-memory corpus, "
        f"batch {data['offline']['batch_size']}): **{offline:.0f} rows/s**.",
        "",
        "| engine | input | actors x threads | rows/s | / offline | target "
        "| rows/s without Ray start | Ray start s | wall s | peak PSS MB | PSS sampling CPU s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    lines += _run_rows(data)
    lines += [
        "",
        "Wall time runs from launching the process to its exit (start-up, scan, model load and Ray start-up included). "
        "Peak PSS is sampled every 2 s; the sampler's own CPU time (it shares the CPUs with the engine) "
        "is the last column.",
        "",
    ]
    lines += _cost_rows(data["cost_model"])
    return "\n".join(lines) + "\n"
