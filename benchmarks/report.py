"""The bench's report: ratios to the baseline, the goals table, Markdown and a chart.

Everything here reads the JSON-shaped result of a run (`bench.run_bench`'s `data`) and nothing else,
so a report can be rebuilt from a stored results file without measuring again. Ratios are always to
`pytorch` from the same run, since absolute figures say more about the machine than the system. The
goals are a plain table (`TARGETS`) of what `runtime_int8` should achieve relative to the others;
each run reports the measured value of every goal that applies and whether it holds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["TARGETS", "Target", "add_ratios", "plot", "render_markdown", "targets"]

Results = dict[str, dict[str, Any]]  # system name -> its measurements


def _ratio(value: float | None, reference: float | None) -> float | None:
    if value is None or reference is None or reference == 0:
        return None
    return value / reference


@dataclass(frozen=True)
class Target:
    """One goal: a value measured from a run's results, its limit, and whether the limit is a max or a min."""

    name: str
    kind: str  # "max": the value must be <= limit; "min": >= limit
    limit: float
    measure: Callable[[Results], float | None]
    applies: Callable[[Results], bool] = lambda results: True


def _f1_gap(field: str) -> Callable[[Results], float | None]:
    return lambda r: 100 * (r["pytorch"][field] - r["runtime_int8"][field])


def _runtime_int8_at(*path: str) -> Callable[[Results], float | None]:
    """runtime_int8's measurement at `path` (e.g. "ratios_vs_pytorch", "throughput")."""

    def measure(results: Results) -> Any:
        value: Any = results["runtime_int8"]
        for key in path:
            value = value[key]
        return value

    return measure


def _ran_system(system: str) -> Callable[[Results], bool]:
    return lambda r: system in r


def _measured(system: str, field: str) -> Callable[[Results], bool]:
    return lambda r: r[system].get(field) is not None


PEERS = ("openvino_int8", "ctranslate2_int8")


def _peer_race(system: str) -> tuple[Target, ...]:
    """`system`'s goals against the bare peer engines: throughput ahead of each, p50 at most the best
    peer's. A goal applies when the run has both sides."""
    prefix = "" if system == "runtime_int8" else f"{system} "

    def against(peer: str, limit: float) -> Target:
        return Target(
            f"{prefix}throughput / {peer} (bare, pre-tokenized)",
            "min",
            limit,
            lambda r: _ratio(r[system]["throughput_sps"], r[peer]["throughput_sps"]),
            applies=lambda r: system in r and peer in r,
        )

    return (
        against("openvino_int8", 1.05),
        against("ctranslate2_int8", 1.15),
        Target(
            f"{prefix}p50 latency / best peer's p50",
            "max",
            1.0,
            lambda r: _ratio(r[system]["latency_ms"]["p50"], min(r[p]["latency_ms"]["p50"] for p in PEERS if p in r)),
            applies=lambda r: system in r and any(p in r for p in PEERS),
        ),
    )


TARGETS: tuple[Target, ...] = (
    Target("F1 pre-split: pytorch - runtime_int8 (points)", "max", 0.3, _f1_gap("f1_presplit")),
    Target(
        "F1 raw text: pytorch - runtime_int8 (points)",
        "max",
        0.3,
        _f1_gap("f1_rawtext"),
        applies=_measured("pytorch", "f1_rawtext"),
    ),
    Target(
        "F1 runtime_int8: pre-split - raw text (points)",
        "max",
        0.1,
        lambda r: 100 * (r["runtime_int8"]["f1_presplit"] - r["runtime_int8"]["f1_rawtext"]),
    ),
    Target("p50 latency / pytorch", "max", 1 / 5, _runtime_int8_at("ratios_vs_pytorch", "latency_p50")),
    Target(
        "p50 latency / session_int8",
        "max",
        1.15,
        lambda r: _ratio(r["runtime_int8"]["latency_ms"]["p50"], r["session_int8"]["latency_ms"]["p50"]),
        applies=_ran_system("session_int8"),
    ),
    Target("throughput / pytorch", "min", 4.0, _runtime_int8_at("ratios_vs_pytorch", "throughput")),
    Target(
        "cold start (s)",
        "max",
        0.5,
        _runtime_int8_at("cold_start_s"),
        applies=_measured("runtime_int8", "cold_start_s"),
    ),
    Target(
        "cold start / pytorch",
        "max",
        1 / 8,
        _runtime_int8_at("ratios_vs_pytorch", "cold_start"),
        applies=_measured("runtime_int8", "cold_start_s"),
    ),
    Target(
        "peak RSS / pytorch",
        "max",
        1 / 3,
        _runtime_int8_at("ratios_vs_pytorch", "peak_rss"),
        applies=_measured("runtime_int8", "cold_start_s"),
    ),
    Target(
        "batch invariance: texts whose entities change with the batch", "max", 0, _runtime_int8_at("batch_invariance")
    ),
    Target(
        "throughput / runtime_int8_dynamic (the batch-dependent graph)",
        "min",
        0.95,
        lambda r: _ratio(r["runtime_int8"]["throughput_sps"], r["runtime_int8_dynamic"]["throughput_sps"]),
        applies=_ran_system("runtime_int8_dynamic"),
    ),
    Target(
        "p50 latency / runtime_int8_dynamic",
        "max",
        1.10,
        lambda r: _ratio(r["runtime_int8"]["latency_ms"]["p50"], r["runtime_int8_dynamic"]["latency_ms"]["p50"]),
        applies=_ran_system("runtime_int8_dynamic"),
    ),
    *_peer_race("runtime_int8"),
    # the same peer race for the runtime on its OpenVINO backend (the bundle's NNCF int8 IR, raw text in)
    *_peer_race("runtime_int8_openvino"),
    Target(
        "int8 graph / fp32 graph size",
        "max",
        0.30,
        lambda r: _ratio(r["runtime_int8"]["model_mb"], r["runtime_fp32"]["model_mb"]),
        applies=_ran_system("runtime_fp32"),
    ),
)
"""What `runtime_int8` (and, in the peer race, `runtime_int8_openvino`) should achieve in a bench run,
against `pytorch` (the stack it replaces), against
`session_int8` (the bare graph: the runtime's own overhead) and in absolute terms. A goal applies only
when the run measured what it needs (e.g. no cold-start goals with `--no-cold-start`). They are the
project's goals for the default recipe on CoNLL-2003, not guarantees for every model or machine."""


def add_ratios(results: Results) -> None:
    """Add each system's `ratios_vs_pytorch` (None for all when pytorch was not run)."""
    base = results.get("pytorch")
    for metrics in results.values():
        if base is None:
            metrics["ratios_vs_pytorch"] = None
            continue
        metrics["ratios_vs_pytorch"] = {
            **{f"latency_{p}": _ratio(metrics["latency_ms"][p], base["latency_ms"][p]) for p in ("p50", "p95", "p99")},
            "throughput": _ratio(metrics["throughput_sps"], base["throughput_sps"]),
            "cold_start": _ratio(metrics.get("cold_start_s"), base.get("cold_start_s")),
            "peak_rss": _ratio(metrics.get("peak_rss_mb"), base.get("peak_rss_mb")),
            "model_size": _ratio(metrics["model_mb"], base["model_mb"]),
        }


def targets(results: Results) -> list[dict[str, Any]]:
    """Every goal of `TARGETS` that applies to this run, with the measured value and whether it holds."""
    if "runtime_int8" not in results or "pytorch" not in results:
        return []
    out = []
    for target in TARGETS:
        if not target.applies(results):
            continue
        value = target.measure(results)
        met = None if value is None else (value <= target.limit if target.kind == "max" else value >= target.limit)
        out.append({"target": target.name, "value": value, "limit": target.limit, "kind": target.kind, "met": met})
    return out


def _format_or_na(value: Any, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


Column = tuple[str, tuple[str, ...], str, str]
"""(title, where the value is in a system's results, format spec, suffix); None shows as n/a."""

_SYSTEM_COLUMNS: tuple[Column, ...] = (
    ("F1 pre-split", ("f1_presplit",), ".4f", ""),
    ("F1 raw text", ("f1_rawtext",), ".4f", ""),
    ("p50 ms", ("latency_ms", "p50"), ".2f", ""),
    ("p95 ms", ("latency_ms", "p95"), ".2f", ""),
    ("p99 ms", ("latency_ms", "p99"), ".2f", ""),
    ("sent/s @32", ("throughput_sps",), ".0f", ""),
    ("cold start s", ("cold_start_s",), ".2f", ""),
    ("peak RSS MB", ("peak_rss_mb",), ".0f", ""),
    ("model MB", ("model_mb",), ".1f", ""),
    ("batch-dependent texts", ("batch_invariance",), "d", ""),
)
_RATIO_COLUMNS: tuple[Column, ...] = tuple(
    (title, ("ratios_vs_pytorch", key), spec, suffix)
    for title, key, spec, suffix in (
        ("p50", "latency_p50", ".3f", ""),
        ("p95", "latency_p95", ".3f", ""),
        ("p99", "latency_p99", ".3f", ""),
        ("throughput", "throughput", ".2f", "x"),
        ("cold start", "cold_start", ".3f", ""),
        ("peak RSS", "peak_rss", ".3f", ""),
        ("model size", "model_size", ".3f", ""),
    )
)


def _table(systems: Results, columns: tuple[Column, ...], extra: str = "") -> list[str]:
    """A Markdown table, one row per system; `extra` names a last yes/no column (imports torch)."""
    titles = ["system", *(column[0] for column in columns), *([extra] if extra else [])]
    lines = ["| " + " | ".join(titles) + " |", "|" + "---|" * len(titles)]
    for name, metrics in systems.items():
        cells = [name]
        for _, path, spec, suffix in columns:
            value: Any = metrics
            for key in path:
                value = None if value is None else value.get(key)
            cells.append(_format_or_na(value, spec) + suffix)
        if extra:
            cells.append("yes" if metrics["imports_torch"] else "no")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def render_markdown(data: dict[str, Any]) -> str:
    """A human-readable report of a bench run: the systems table, ratios, and the goals."""
    systems = data["systems"]
    settings = data.get("settings", {})
    lines = [
        *_header_section(data),
        *_ratio_section(systems),
        *_skipped_section(data.get("skipped")),
        *_targets_section(data.get("targets")),
        *_paired_overhead_section(data.get("paired_overhead"), settings.get("latency_history")),
        *_paired_throughput_section(data.get("paired_throughput")),
        *_reading_notes(systems, settings.get("context")),
    ]
    return "\n".join(lines) + "\n"


def _header_section(data: dict[str, Any]) -> list[str]:
    """The title, the run's command, data, machine and versions, and the systems table."""
    dataset, machine = data["dataset"], data["machine"]
    return [
        f"# ner-export bench: {Path(dataset['path']).name}",
        "",
        f"Command: `{data['command']}`  ",
        f"Data: {dataset['sentences']} sentences, {dataset['tokens']} words (sha256 {dataset['sha256'][:12]}…)  ",
        f"Machine: {machine['cpu']}, {machine['cpus_available']} CPUs available; Python {machine['python']}  ",
        "Versions: " + ", ".join(f"{k} {v}" for k, v in data["versions"].items()),
        "",
        *_table(data["systems"], _SYSTEM_COLUMNS, extra="torch"),
    ]


def _ratio_section(systems: Results) -> list[str]:
    """The table of ratios to `pytorch`, when it ran."""
    if "pytorch" not in systems:
        return []
    return [
        "",
        "Ratios to `pytorch` from the same run (latency, cold start, RSS, size: lower is better; "
        "throughput: higher is better):",
        "",
        *_table(systems, _RATIO_COLUMNS),
    ]


def _skipped_section(skipped: dict[str, str] | None) -> list[str]:
    """The systems that could not run here, and why."""
    if not skipped:
        return []
    return ["", "Skipped systems:", ""] + [f"- `{k}`: {v}" for k, v in skipped.items()]


def _targets_section(measured: list[dict[str, Any]] | None) -> list[str]:
    """The goals table: each goal's measured value, limit and whether it holds."""
    if not measured:
        return []
    lines = [
        "",
        "Targets for runtime_int8, and runtime_int8_openvino where named (`ner_export.benchmarks.report.TARGETS`):",
        "",
        "| target | measured | limit | met |",
        "|---|---|---|---|",
    ]
    for t in measured:
        sign = "<=" if t["kind"] == "max" else ">="
        met = "n/a" if t["met"] is None else ("yes" if t["met"] else "**no**")
        lines.append(f"| {t['target']} | {_format_or_na(t['value'], '.3f')} | {sign} {t['limit']:.3f} | {met} |")
    return lines


def _paired_overhead_section(paired: dict[str, float] | None, history: int | None) -> list[str]:
    """The runtime's overhead over its bare session, taking turns (`bench.paired_overhead`), and what
    its token cache saves."""
    if not paired:
        return []
    lines = [
        "",
        f"Runtime overhead, paired: `runtime_int8` answered one sentence at p50 {paired['runtime_p50_ms']:.3f} ms "
        f"against {paired['session_p50_ms']:.3f} ms for its own onnxruntime session run bare on the same "
        f"pre-built input, the two taking turns call by call: **{paired['ratio']:.3f}x**. The "
        "`p50 latency / session_int8` target compares p50s of two sessions measured block by block, at "
        "different moments; this ratio has the machine's drift in common.",
    ]
    if "uncached_ratio" in paired and history is not None:
        lines += [
            "",
            f"Token cache: the runtimes' caches of space-separated chunks (`runtime.token_cache`) hold the chunks "
            f"of the {history} test texts that are not timed, and are put back to that before every timed "
            "block and paired round, so a timed text's chunks are there only when those texts or an earlier "
            "text of the block or round had them, never from a warm-up call on the text itself. Without "
            f"the cache, same session, same turns: {paired['uncached_p50_ms']:.3f} ms, "
            f"**{paired['uncached_ratio']:.3f}x** the bare session.",
        ]
    return lines


def _paired_throughput_section(sps: dict[str, float] | None) -> list[str]:
    """The static and the dynamic int8 graph's throughput, taking turns (`bench.paired_throughput`)."""
    if not sps:
        return []
    return [
        "",
        f"Throughput, paired: `runtime_int8` and `runtime_int8_dynamic` taking turns on the same slices "
        f"of 512 texts at the bench's batch size, seconds summed over all rounds: {sps['runtime_sps']:.0f} "
        f"against {sps['dynamic_sps']:.0f} sentences/s, **{sps['ratio']:.3f}x** (the target row "
        "compares each one's best whole pass, run at different moments).",
    ]


def _reading_notes(systems: Results, context: str | None) -> list[str]:
    """How to read the batch-dependence column, the bare engines' rows and a document-context model's F1."""
    lines = [
        "",
        "Batch-dependent texts: how many texts get different entities when run alone (batch 1) and in a "
        "shuffled run at batch 32 (0 means batch-invariant); for the bare engines, different token labels.",
    ]
    bare = [name for name in ("session_int8", "openvino_int8", "ctranslate2_int8") if name in systems]
    if bare:
        lines += [
            "",
            ", ".join(f"`{name}`" for name in bare) + " are bare engines fed the same pre-tokenized, length-sorted "
            "batches (no tokenizing or decoding is timed): their raw-text F1 is n/a and their pre-split F1 is the "
            "graph's own, from first sub-words of sentences read alone with argmax labels. `openvino_int8` is NNCF "
            "post-training int8 of the fp32 graph (calibrated on the checkpoint's validation sample; throughput hint "
            "with requests in flight for batches, latency hint for one sentence); `ctranslate2_int8` is the "
            "checkpoint's encoder in CTranslate2 with int8 weights and the classifier in numpy.",
        ]
    if context == "document":
        lines += [
            "",
            "The model was trained with document context: pre-split F1 reads every sentence with its document's "
            "neighbours, raw-text F1 reads whole documents (sentences joined with spaces); latency and throughput "
            "are per sentence.",
        ]
    return lines


_COLORS = {"pytorch": "#7f7f7f", "runtime": "#1f77b4", "optimum": "#ff7f0e"}
_OTHER_COLOR = "#2ca02c"


def plot(data: dict[str, Any], path: Path) -> None:
    """Bar charts of p50 latency and throughput per system, F1 written on the bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    systems = data["systems"]
    names = list(systems)
    colors = [next((c for prefix, c in _COLORS.items() if n.startswith(prefix)), _OTHER_COLOR) for n in names]
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    p50 = [systems[n]["latency_ms"]["p50"] for n in names]
    sps = [systems[n]["throughput_sps"] for n in names]
    panels = (
        (left, p50, "single-sentence latency p50 (lower is better)", "ms"),
        (right, sps, "throughput at batch 32 (higher is better)", "sentences/s"),
    )
    for axis, values, title, unit in panels:
        bars = axis.bar(names, values, color=colors)
        axis.set_title(title)
        axis.set_ylabel(unit)
        axis.tick_params(axis="x", rotation=20)
        for bar, name, value in zip(bars, names, values, strict=True):
            f1 = systems[name]["f1_presplit"]
            label = f"{value:.1f}\nF1 {f1:.3f}" if f1 is not None else f"{value:.1f}"
            position = (bar.get_x() + bar.get_width() / 2, bar.get_height())
            axis.annotate(label, position, ha="center", va="bottom", fontsize=8)
        axis.set_ylim(0, max(values) * 1.3)
    dataset, machine = data["dataset"], data["machine"]
    fig.suptitle(
        f"ner-export bench on {Path(dataset['path']).name} "
        f"({dataset['sentences']} sentences, {machine['cpus_available']} CPUs)"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
