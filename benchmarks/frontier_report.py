"""The frontier's report: a Markdown table and a chart of F1 against throughput, one point per bundle.

Everything here reads the JSON-shaped result of `frontier.run_frontier` and nothing else, so a report
can be rebuilt from a stored results file without measuring again. The chart has two panels, throughput
on one thread and on all CPUs, since a smaller model gains differently on each (on one thread every
layer's cost shows; on several, fixed costs like tokenizing and decoding weigh more). Each point is
labelled with its bundle and layer count; up and to the right is better.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .frontier_targets import bundle_kind

__all__ = ["plot_frontier", "render_frontier_markdown"]


def _number(value: Any, digits: int) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _signed(value: Any, digits: int) -> str:
    return "n/a" if value is None else f"{value:+.{digits}f}"


def _teachers(row: dict[str, Any]) -> str:
    distilled = row.get("distilled_from")
    if not distilled:
        return ""
    names = ", ".join(Path(str(t)).name for t in distilled.get("teachers") or [])
    kept = distilled.get("layers_kept")
    return f"{names} (layers {', '.join(map(str, kept))})" if kept else names


def render_frontier_markdown(data: dict[str, Any]) -> str:
    """The run as Markdown: what was measured where, then one table row per bundle."""
    dataset, machine, settings = data["dataset"], data["machine"], data["settings"]
    bundles, reference = data["bundles"], data["reference"]
    lines = [
        f"# Speed/accuracy frontier on {Path(dataset['path']).name}",
        "",
        f"{dataset['sentences']} sentences, {dataset['tokens']} words (sha256 {dataset['sha256'][:12]}…); "
        f"{machine['cpu']}, {machine['cpus_available']} CPUs available; the runtime on each bundle's "
        f"{settings['precision']} graph; best of {settings['repeats']} round(s); p50 over "
        f"{settings['latency_sentences']} single sentences; throughput at batch {settings['batch_size']}.",
        "",
    ]
    if data.get("command"):
        lines += [f"Command: `{data['command']}`", ""]
    lines += [
        "| bundle | layers | F1 pre-split | F1 raw text | Δ F1 (points) | p50 batch 1 (ms) "
        "| sentences/s, all CPUs | sentences/s, 1 thread | bundle (MB) | int8 graph (MB) | distilled from |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name, row in bundles.items():
        ratios = row["vs_reference"]
        lines.append(
            f"| {name} | {row['layers'] if row['layers'] is not None else 'n/a'} "
            f"| {_number(row['f1_presplit'], 4)} | {_number(row['f1_rawtext'], 4)} "
            f"| {_signed(ratios['f1_presplit_points'], 2)} | {_number(row['latency_ms']['p50'], 2)} "
            f"| {_number(row['throughput_sps'], 1)} ({_number(ratios['throughput'], 2)}x) "
            f"| {_number(row['throughput_sps_1thread'], 1)} ({_number(ratios['throughput_1thread'], 2)}x) "
            f"| {_number(row['bundle_mb'], 1)} | {_number(row['int8_graph_mb'], 1)} | {_teachers(row)} |"
        )
    lines += [
        "",
        f"Δ F1 is pre-split F1 minus `{reference}`'s, in points; the speed ratios are to `{reference}` too. "
        "Raw-text F1 reads the sentences joined with spaces (whole documents for a model trained with "
        "document context).",
        "",
    ]
    if data.get("targets"):
        lines += _target_lines(data["targets"])
    if data.get("notes"):
        lines += ["## Notes", "", data["notes"].strip(), ""]
    return "\n".join(lines)


def _target_lines(targets: list[dict[str, Any]]) -> list[str]:
    """The targets table (`frontier_targets`): value, limit, whether it holds, the miss."""
    lines = ["## Targets", "", "| target | value | limit | holds | missed by | note |", "|---|---:|---:|---|---:|---|"]
    for row in targets:
        if row["kind"] is None:
            lines.append(f"| {row['target']} | n/a | n/a | not measured | n/a | {row['note']} |")
            continue
        sign = ">=" if row["kind"] == "min" else "<="
        lines.append(
            f"| {row['target']} | {_number(row['value'], 4)} | {sign} {row['limit']:g} "
            f"| {'yes' if row['holds'] else 'NO'} | {_number(row['miss_by'], 4)} | {row['note']} |"
        )
    lines.append("")
    return lines


_STYLES = {
    "reference": ("reference", "*", "#d62728"),
    "student": ("distilled", "o", "#1f77b4"),
    "gold": ("gold labels only (soft weight 0)", "s", "#ff7f0e"),
    "ensemble": ("distilled from an ensemble", "D", "#2ca02c"),
    "": ("other", "^", "#7f7f7f"),
}


def _groups(data: dict[str, Any]) -> dict[tuple[str, str, str], list[str]]:
    """Bundle names by how they were made (the reference first), each kind with its legend label, marker
    and colour; kinds without bundles are left out."""
    groups: dict[tuple[str, str, str], list[str]] = {}
    for name, row in data["bundles"].items():
        kind = "reference" if name == data["reference"] else bundle_kind(row)
        groups.setdefault(_STYLES[kind], []).append(name)
    return groups


def plot_frontier(data: dict[str, Any], path: Path) -> None:
    """F1 (pre-split) against throughput on one thread and on all CPUs, one labelled point per bundle."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    bundles = data["bundles"]
    names = list(bundles)
    f1 = [bundles[n]["f1_presplit"] for n in names]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8), sharey=True)
    panels = (
        (axes[0], "throughput_sps_1thread", "one thread"),
        (axes[1], "throughput_sps", f"all {data['machine']['cpus_available']} CPUs"),
    )
    groups = _groups(data)
    for axis, key, title in panels:
        speed = [bundles[n][key] for n in names]
        for (label, marker, colour), members in groups.items():
            axis.plot(
                [bundles[n][key] for n in members],
                [bundles[n]["f1_presplit"] for n in members],
                linestyle="none",
                marker=marker,
                color=colour,
                label=label,
            )
        middle = (min(speed) + max(speed)) / 2
        for name, x, y in zip(names, speed, f1, strict=True):
            layers = bundles[name]["layers"]
            label = f"{name} ({layers} layer{'' if layers == 1 else 's'})" if layers is not None else name
            right = len(names) > 1 and x > middle  # labels of the fastest points go to their left, inside the axes
            offset, align = ((-6, 6), "right") if right else ((6, 6), "left")
            axis.annotate(label, (x, y), textcoords="offset points", xytext=offset, ha=align, fontsize=8)
        axis.set_title(f"F1 against throughput, {title}")
        axis.set_xlabel(f"sentences/s at batch {data['settings']['batch_size']} (higher is better)")
        axis.margins(x=0.25, y=0.2)
        axis.grid(alpha=0.3)
    axes[0].set_ylabel("entity F1, pre-split (higher is better)")
    axes[0].legend(fontsize=8, loc="lower left")
    dataset = data["dataset"]
    fig.suptitle(f"ner-export frontier on {Path(dataset['path']).name} ({dataset['sentences']} sentences)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
