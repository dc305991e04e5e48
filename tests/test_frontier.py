"""The frontier bench (`ner-export bench BUNDLE --compare OTHER`) on two tiny bundles: the JSON, the
Markdown, and a chart with one labelled point per bundle in each panel."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from ner_export.benchmarks.frontier import FrontierConfig, run_frontier
from ner_export.runtime import BundleError

BUNDLE_KEYS = {
    "path",
    "layers",
    "context",
    "bundle_mb",
    "int8_graph_mb",
    "distilled_from",
    "f1_presplit",
    "f1_rawtext",
    "latency_ms",
    "throughput_sps",
    "throughput_sps_1thread",
    "vs_reference",
    "training",
}


def _cli(*args: Any):
    from ner_export.cli import cli

    return CliRunner().invoke(cli, [str(a) for a in args])


def test_two_bundles_are_measured_in_one_run(
    tiny_bundle: Path, casing_bundle: Path, conll_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import matplotlib.pyplot as plt

    figures: list[Any] = []
    close = plt.close
    monkeypatch.setattr(plt, "close", lambda fig=None: (figures.append(fig), close(fig)))
    config = FrontierConfig(
        (str(tiny_bundle), str(casing_bundle)),
        str(conll_file),
        out=str(tmp_path),
        latency_sentences=4,
        warmup=1,
        progress=False,
        command="ner-export bench ...",
    )
    result = run_frontier(config)
    assert [Path(f).name for f in result.files] == ["frontier.json", "frontier.md", "frontier.png"]
    data = json.loads((tmp_path / "frontier.json").read_text())
    assert data["dataset"]["sentences"] == 4 and data["settings"]["latency_sentences"] == 4
    names = list(data["bundles"])
    assert len(names) == 2 and data["reference"] == names[0] and len(set(names)) == 2
    for name, row in data["bundles"].items():
        assert set(row) == BUNDLE_KEYS, name
        assert row["layers"] == 2 and row["distilled_from"] is None and row["bundle_mb"] > row["int8_graph_mb"] > 0
        assert row["training"] is None  # the tiny checkpoints have no metrics.json
        assert 0 <= row["f1_presplit"] <= 1 and 0 <= row["f1_rawtext"] <= 1
        assert row["throughput_sps"] > 0 and row["throughput_sps_1thread"] > 0 and row["latency_ms"]["p50"] > 0
    assert data["bundles"][names[0]]["vs_reference"]["throughput"] == 1.0
    markdown = (tmp_path / "frontier.md").read_text()
    lines = markdown.splitlines()
    table = lines.index(next(line for line in lines if line.startswith("| bundle | layers |"))) + 2
    rows = lines[table : lines.index("", table)]
    assert [row.split("|")[1].strip() for row in rows] == names
    assert "## Targets" in markdown and "no distilled student of this depth in the run" in markdown
    assert (tmp_path / "frontier.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    (figure,) = figures
    for axis in figure.axes:
        assert [line.get_label() for line in axis.lines] == ["reference", "other"]  # kinds, not bundles
        assert [len(line.get_xdata()) for line in axis.lines] == [1, 1]
        assert sorted(text.get_text() for text in axis.texts) == sorted(f"{n} (2 layers)" for n in names)


def test_the_bench_command_compares_bundles(
    tiny_bundle: Path, casing_bundle: Path, tiny_checkpoint: Path, conll_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "results"
    args = ["bench", tiny_bundle, "--compare", casing_bundle, "--data", conll_file, "--out", out]
    result = _cli(*args, "--latency-sentences", 2, "-q")
    assert result.exit_code == 0, result.output
    assert "Speed/accuracy frontier" in result.output and (out / "frontier.png").is_file()
    notes = tmp_path / "notes.md"
    notes.write_text("Tried: temperature 2 and 4.\n", encoding="utf-8")
    named = _cli(*args, "--name", "students", "--latency-sentences", 2, "--notes", notes, "-q")
    assert named.exit_code == 0 and json.loads((out / "students.json").read_text())["notes"] == notes.read_text()
    assert "## Notes\n\nTried: temperature 2 and 4.\n" in (out / "students.md").read_text()
    single = _cli("bench", tiny_bundle, "--checkpoint", tiny_checkpoint, "--data", conll_file, "--notes", notes)
    assert single.exit_code == 2 and "--notes belongs to --compare" in single.output
    both = _cli(*args, "--checkpoint", tiny_checkpoint)
    assert both.exit_code == 2 and "leave out --checkpoint and --systems" in both.output
    plain = _cli("bench", tiny_bundle, "--data", conll_file)
    assert plain.exit_code == 2 and "Missing option '--checkpoint'" in plain.output


def test_bad_frontier_inputs(tiny_bundle: Path, conll_file: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="measured once"):
        FrontierConfig((str(tiny_bundle), str(tiny_bundle) + "/"), str(conll_file))
    with pytest.raises(ValueError, match="non-empty"):
        FrontierConfig((), str(conll_file))
    with pytest.raises(BundleError, match="not a directory"):
        run_frontier(FrontierConfig((str(tiny_bundle), str(tmp_path / "absent")), str(conll_file), progress=False))
