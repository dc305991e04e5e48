"""`ner-export bench` on the tiny model: the JSON schema, the ratios, the Markdown and the chart."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ner_export.benchmarks import SYSTEMS, BenchConfig, entities_to_word_tags, run_bench
from ner_export.runtime import BenchMismatchError, DataNotFoundError

SYSTEM_KEYS = {
    "f1_presplit",
    "f1_rawtext",
    "latency_ms",
    "throughput_sps",
    "cold_start_s",
    "peak_rss_mb",
    "model_mb",
    "imports_torch",
    "ratios_vs_pytorch",
}


def test_entities_to_word_tags() -> None:
    words = ["The", "U.S.", "Bank", "of", "Tokyo", "said"]
    # "The U.S. Bank of Tokyo said": U.S. = 4..8, Bank of Tokyo = 9..22
    assert entities_to_word_tags(words, [("LOC", 4, 7), ("ORG", 9, 22)]) == [
        "O",
        "B-LOC",
        "B-ORG",
        "I-ORG",
        "I-ORG",
        "O",
    ]
    assert entities_to_word_tags(words, [("ORG", 4, 13), ("LOC", 14, 22)]) == [
        "O",
        "B-ORG",
        "I-ORG",
        "B-LOC",
        "I-LOC",
        "O",
    ]
    assert entities_to_word_tags([], []) == []


@pytest.fixture(scope="module")
def bench(tiny_bundle: Path, tiny_checkpoint: Path, conll_file: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("bench")
    return run_bench(
        BenchConfig(
            bundle=str(tiny_bundle),
            checkpoint=str(tiny_checkpoint),
            data=str(conll_file),
            out=str(out),
            latency_sentences=4,
            warmup=1,
            progress=False,
            command="test",
        )
    ), out


def test_json_schema_and_ratios(bench) -> None:
    result, out = bench
    data = json.loads((out / "bench.json").read_text())
    assert set(data) >= {"dataset", "machine", "versions", "command", "systems", "targets"}
    assert set(data["dataset"]) == {"path", "sentences", "tokens", "sha256"} and data["dataset"]["sentences"] == 4
    assert set(data["systems"]) == set(SYSTEMS)
    base = data["systems"]["pytorch"]
    for name, system in data["systems"].items():
        assert SYSTEM_KEYS <= set(system), name
        assert set(system["latency_ms"]) == {"p50", "p95", "p99"}
        assert system["latency_ms"]["p50"] <= system["latency_ms"]["p95"] <= system["latency_ms"]["p99"]
        assert system["ratios_vs_pytorch"]["latency_p50"] == pytest.approx(
            system["latency_ms"]["p50"] / base["latency_ms"]["p50"]
        )
        assert system["ratios_vs_pytorch"]["throughput"] == pytest.approx(
            system["throughput_sps"] / base["throughput_sps"]
        )
        assert system["ratios_vs_pytorch"]["cold_start"] == pytest.approx(system["cold_start_s"] / base["cold_start_s"])
        assert system["model_mb"] > 0 and system["cold_start_s"] > 0 and system["peak_rss_mb"] > 0
    assert base["imports_torch"] is True and data["systems"]["optimum_int8"]["imports_torch"] is True
    assert (
        data["systems"]["runtime_int8"]["imports_torch"] is False
        and data["systems"]["session_int8"]["imports_torch"] is False
    )
    assert data["systems"]["session_int8"]["f1_rawtext"] is None
    assert {t["target"] for t in data["targets"]} >= {"p50 latency / pytorch", "throughput / pytorch", "cold start (s)"}


def test_markdown_and_chart(bench) -> None:
    result, out = bench
    markdown = (out / "bench.md").read_text()
    assert markdown == result.markdown
    for name in SYSTEMS:
        assert f"| {name} |" in markdown
    assert "Targets" in markdown
    assert (out / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_labels_must_match(tiny_bundle: Path, conll_file: Path, tmp_path: Path) -> None:
    from conftest import make_tiny_checkpoint

    other = make_tiny_checkpoint(tmp_path / "other", labels=["O", "B-X", "I-X"])
    with pytest.raises(BenchMismatchError, match="labels"):
        run_bench(
            BenchConfig(
                bundle=str(tiny_bundle),
                checkpoint=str(other),
                data=str(conll_file),
                out=str(tmp_path / "o"),
                progress=False,
            )
        )


def test_unknown_system_and_missing_data(
    tiny_bundle: Path, tiny_checkpoint: Path, conll_file: Path, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match="unknown system"):
        run_bench(
            BenchConfig(
                bundle=str(tiny_bundle),
                checkpoint=str(tiny_checkpoint),
                data=str(conll_file),
                out=str(tmp_path),
                systems=("pytorch", "tensorrt"),
                progress=False,
            )
        )
    with pytest.raises(DataNotFoundError, match="no such file"):
        run_bench(
            BenchConfig(
                bundle=str(tiny_bundle),
                checkpoint=str(tiny_checkpoint),
                data=str(tmp_path / "nope.txt"),
                out=str(tmp_path),
                progress=False,
            )
        )


def test_compare_int8_table(tiny_bundle: Path, conll_file: Path) -> None:
    from ner_export.benchmarks.compare_int8 import compare

    table = compare(str(conll_file), {"a": str(tiny_bundle), "b": str(tiny_bundle)}, rounds=1, latency_sentences=4)
    lines = table.splitlines()
    assert lines[0].startswith("| int8 variant |") and len(lines) == 4
    assert lines[2].startswith("| a | ") and lines[3].startswith("| b | ")


@pytest.fixture(scope="module")
def context_pair(
    tiny_bundle: Path, tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path]:
    """The tiny checkpoint and bundle, both marked as trained with document context."""
    import dataclasses
    import shutil

    from ner_export.runtime.manifest import BundleManifest

    root = tmp_path_factory.mktemp("context-bench")
    checkpoint, bundle = root / "checkpoint", root / "bundle"
    shutil.copytree(tiny_checkpoint, checkpoint)
    shutil.copytree(tiny_bundle, bundle)
    config = json.loads((checkpoint / "config.json").read_text())
    config.update(ner_export_context="document", max_length_trained=BundleManifest.read(bundle).max_length)
    (checkpoint / "config.json").write_text(json.dumps(config))
    dataclasses.replace(BundleManifest.read(bundle), context="document").write(bundle)
    return checkpoint, bundle


def test_context_model_is_scored_with_documents(
    context_pair: tuple[Path, Path], conll_file: Path, tmp_path: Path
) -> None:
    checkpoint, bundle = context_pair
    systems = ("pytorch", "runtime_fp32", "session_int8")
    result = run_bench(
        BenchConfig(
            bundle=str(bundle),
            checkpoint=str(checkpoint),
            data=str(conll_file),
            out=str(tmp_path),
            latency_sentences=2,
            warmup=1,
            systems=systems,
            cold_start=False,
            progress=False,
        )
    )
    assert result.data["settings"]["context"] == "document"
    measured = result.data["systems"]
    assert measured["pytorch"]["f1_rawtext"] is not None and measured["runtime_fp32"]["f1_rawtext"] is not None
    assert measured["session_int8"]["f1_rawtext"] is None
    assert "trained with document context" in result.markdown


def test_context_mismatch_between_checkpoint_and_bundle_is_refused(
    context_pair: tuple[Path, Path], tiny_checkpoint: Path, conll_file: Path, tmp_path: Path
) -> None:
    _, bundle = context_pair
    with pytest.raises(BenchMismatchError, match="trained with context 'none' but the bundle"):
        run_bench(
            BenchConfig(
                bundle=str(bundle),
                checkpoint=str(tiny_checkpoint),
                data=str(conll_file),
                out=str(tmp_path),
                systems=("runtime_int8",),
                cold_start=False,
                progress=False,
            )
        )


def test_documents_are_joined_and_split_back() -> None:
    from ner_export.benchmarks import group_documents, split_documents

    words = [["a", "b"], ["c"], ["d", "e", "f"], ["g"]]
    doc_words, sizes = group_documents(words, [0, 0, 1, 2])
    assert doc_words == [["a", "b", "c"], ["d", "e", "f"], ["g"]]
    assert split_documents(doc_words, sizes) == words


def test_casing_model_is_fed_casing_by_every_system(
    casing_checkpoint: Path, casing_bundle: Path, conll_file: Path, tmp_path: Path
) -> None:
    result = run_bench(
        BenchConfig(
            bundle=str(casing_bundle),
            checkpoint=str(casing_checkpoint),
            data=str(conll_file),
            out=str(tmp_path),
            latency_sentences=2,
            warmup=1,
            cold_start=False,
            progress=False,
        )
    )
    measured = result.data["systems"]
    assert measured["runtime_fp32"]["f1_presplit"] == measured["pytorch"]["f1_presplit"]
    assert measured["optimum_int8"]["f1_rawtext"] is not None


def test_casing_mismatch_between_checkpoint_and_bundle_is_refused(
    casing_bundle: Path, tiny_checkpoint: Path, conll_file: Path, tmp_path: Path
) -> None:
    with pytest.raises(BenchMismatchError, match="without casing but the bundle"):
        run_bench(
            BenchConfig(
                bundle=str(casing_bundle),
                checkpoint=str(tiny_checkpoint),
                data=str(conll_file),
                out=str(tmp_path),
                systems=("runtime_int8",),
                cold_start=False,
                progress=False,
            )
        )
