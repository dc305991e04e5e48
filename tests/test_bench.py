"""`ner-export bench` on the tiny model: the JSON schema, the ratios, the Markdown and the chart."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from ner_export.benchmarks import SYSTEMS, BenchConfig, BenchResult, entities_to_word_tags, run_bench
from ner_export.benchmarks.systems import BARE, COLD_STARTS
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
    "batch_invariance",
}


def _bench(bundle: Path, checkpoint: Path, data: Path, out: Path, **options: Any) -> BenchResult:
    return run_bench(BenchConfig(str(bundle), str(checkpoint), str(data), out=str(out), progress=False, **options))


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
def self_tagged(tiny_bundle: Path, conll_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """conftest's sentences tagged with the tiny model's own fp32 predictions, so that a system running
    the model correctly scores 1.0 and a broken one less (on the real tags the random model scores 0)."""
    from ner_export.finetune import Sentence, read_conll, write_conll
    from ner_export.runtime import NerModel

    sentences = read_conll(conll_file)
    tags = NerModel.load(tiny_bundle, precision="fp32").predict_words([list(s.words) for s in sentences])
    assert sum(tag.startswith("B-") for row in tags for tag in row) >= 5
    path = tmp_path_factory.mktemp("self-tagged") / "self.conll"
    write_conll(path, [Sentence(s.words, tuple(t)) for s, t in zip(sentences, tags, strict=True)])
    return path


@pytest.fixture(scope="module")
def bench(tiny_bundle: Path, tiny_checkpoint: Path, self_tagged: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("bench")
    return _bench(tiny_bundle, tiny_checkpoint, self_tagged, out, latency_sentences=4, warmup=1, command="test"), out


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
        assert system["model_mb"] > 0
        if name in COLD_STARTS:
            assert system["ratios_vs_pytorch"]["cold_start"] == pytest.approx(
                system["cold_start_s"] / base["cold_start_s"]
            )
            assert system["cold_start_s"] > 0 and system["peak_rss_mb"] > 0
        else:  # the dynamic variant and the peers are built inside the run: no fresh-process start to time
            assert system["cold_start_s"] is None and system["ratios_vs_pytorch"]["cold_start"] is None
    assert base["imports_torch"] is True and data["systems"]["optimum_int8"]["imports_torch"] is True
    assert (
        data["systems"]["runtime_int8"]["imports_torch"] is False
        and data["systems"]["session_int8"]["imports_torch"] is False
    )
    for name in BARE:
        assert data["systems"][name]["f1_rawtext"] is None and data["systems"][name]["imports_torch"] is False
    assert data["systems"]["runtime_int8"]["batch_invariance"] == 0
    assert {t["target"] for t in data["targets"]} >= {"p50 latency / pytorch", "throughput / pytorch", "cold start (s)"}
    paired = data["paired_overhead"]  # runtime_int8 against its own session, call by call
    assert paired["runtime_p50_ms"] > 0 and paired["session_p50_ms"] > 0
    assert paired["ratio"] == pytest.approx(paired["runtime_p50_ms"] / paired["session_p50_ms"])
    assert paired["uncached_ratio"] == pytest.approx(paired["uncached_p50_ms"] / paired["session_p50_ms"])
    assert data["settings"]["latency_history"] == data["dataset"]["sentences"] - data["settings"]["latency_sentences"]
    sps = data["paired_throughput"]  # runtime_int8 against the dynamic graph, slice by slice
    assert sps["runtime_sps"] > 0 and sps["ratio"] == pytest.approx(sps["runtime_sps"] / sps["dynamic_sps"])


def test_paired_overhead_takes_turns_on_the_runtimes_own_session() -> None:
    from ner_export.benchmarks.bench import paired_overhead
    from ner_export.benchmarks.systems import BareSystem, RuntimeSystem

    calls: list[tuple[str, int]] = []
    runtime, session = object.__new__(RuntimeSystem), object.__new__(BareSystem)
    runtime.name, session.name = "runtime_int8", "session_int8"
    runtime.single = lambda text, i: calls.append(("runtime", i))  # type: ignore[method-assign]
    runtime.run_session = lambda feeds: calls.append(("session", feeds["i"]))  # type: ignore[method-assign]
    runtime.single_uncached = lambda text: calls.append(("uncached", "abc".index(text)))  # type: ignore[method-assign]
    runtime.forget = lambda: calls.append(("forget", -1))  # type: ignore[method-assign]
    session.single_feeds = lambda i: {"i": i}  # type: ignore[method-assign]
    result = paired_overhead([runtime, session], ["a", "b", "c"], rounds=2)
    one_round = [("forget", -1), ("runtime", 0), ("session", 0), ("uncached", 0)]
    one_round += [("session", 1), ("uncached", 1), ("runtime", 1), ("uncached", 2), ("runtime", 2), ("session", 2)]
    assert calls == one_round * 2
    assert result is not None
    assert set(result) == {"runtime_p50_ms", "session_p50_ms", "ratio", "uncached_p50_ms", "uncached_ratio"}
    assert paired_overhead([runtime], ["a"], rounds=1) is None


def test_paired_throughput_takes_turns_on_the_same_slices() -> None:
    from ner_export.benchmarks.bench import paired_throughput
    from ner_export.benchmarks.systems import RuntimeSystem

    calls: list[tuple[str, list[str], int]] = []
    static, dynamic = object.__new__(RuntimeSystem), object.__new__(RuntimeSystem)
    static.name, dynamic.name = "runtime_int8", "runtime_int8_dynamic"
    static.answers = lambda texts, b: calls.append(("static", texts, b)) or []  # type: ignore[method-assign]
    dynamic.answers = lambda texts, b: calls.append(("dynamic", texts, b)) or []  # type: ignore[method-assign]
    texts = ["a", "b", "c", "d", "e"]
    result = paired_throughput([static, dynamic], texts, batch_size=2, rounds=2, turn=2)
    one_round = [("static", ["a", "b"], 2), ("dynamic", ["a", "b"], 2), ("dynamic", ["c", "d"], 2)]
    one_round += [("static", ["c", "d"], 2), ("static", ["e"], 2), ("dynamic", ["e"], 2)]
    assert calls == one_round * 2
    assert result is not None and result["ratio"] == pytest.approx(result["runtime_sps"] / result["dynamic_sps"])
    assert paired_throughput([static], texts, 2, 1) is None


def test_accuracy_figures_are_those_of_each_system(
    bench, tiny_bundle: Path, tiny_checkpoint: Path, self_tagged: Path
) -> None:
    """Every F1 in the results is the one the system's own API gives on the same sentences."""
    from ner_export.finetune import checkpoint_context, load_checkpoint, read_conll, tag_words
    from ner_export.runtime import NerModel
    from ner_export.runtime.labels import entity_scores

    systems = bench[0].data["systems"]
    sentences = read_conll(self_tagged)
    words, gold = [list(s.words) for s in sentences], [list(s.tags) for s in sentences]
    documents = [s.document for s in sentences]
    for precision in ("int8", "fp32"):
        model = NerModel.load(tiny_bundle, precision=precision)
        presplit = model.predict_words(words, batch_size=32, documents=documents)
        assert systems[f"runtime_{precision}"]["f1_presplit"] == entity_scores(gold, presplit).f1
        spans = [[(e.label, e.start, e.end) for e in row] for row in model.predict([" ".join(w) for w in words])]
        rawtext = [entities_to_word_tags(w, row) for w, row in zip(words, spans, strict=True)]
        assert systems[f"runtime_{precision}"]["f1_rawtext"] == entity_scores(gold, rawtext).f1
    torch_model, tokenizer = load_checkpoint(str(tiny_checkpoint))
    context, window = checkpoint_context(torch_model.config)
    reference = tag_words(torch_model, tokenizer, words, 32, window, context, documents)
    assert systems["pytorch"]["f1_presplit"] == entity_scores(gold, reference).f1
    # the data holds the fp32 graph's own tags, which PyTorch agrees with
    assert systems["runtime_fp32"]["f1_presplit"] == systems["pytorch"]["f1_presplit"] == 1.0
    assert systems["optimum_int8"]["f1_presplit"] == systems["runtime_int8"]["f1_presplit"] > 0.5


def test_sizes_hashes_and_goals_are_computed_from_the_run(bench, tiny_bundle: Path, self_tagged: Path) -> None:
    import hashlib

    from ner_export.benchmarks import TARGETS

    data = bench[0].data
    systems = data["systems"]
    assert data["dataset"]["sha256"] == hashlib.sha256(self_tagged.read_bytes()).hexdigest()
    assert data["dataset"]["tokens"] == 31  # the words of the four sentences of conftest.TRAIN_CONLL
    for precision, graph in (("int8", "model_int8.onnx"), ("fp32", "model.onnx")):
        assert systems[f"runtime_{precision}"]["model_mb"] == round((tiny_bundle / graph).stat().st_size / 1e6, 2)
    assert systems["session_int8"]["model_mb"] == systems["runtime_int8"]["model_mb"]
    for system in systems.values():
        assert system["throughput_sps"] > 0 and 0 < system["latency_ms"]["p50"] < 10_000
    goals = {t["target"]: t for t in data["targets"]}
    assert set(goals) == {t.name for t in TARGETS}  # every goal applies to a full run
    run, base = systems["runtime_int8"], systems["pytorch"]
    gap = goals["F1 pre-split: pytorch - runtime_int8 (points)"]
    assert gap["value"] == pytest.approx(100 * (base["f1_presplit"] - run["f1_presplit"]))
    assert gap["met"] is (gap["value"] <= 0.3)
    size = goals["int8 graph / fp32 graph size"]
    assert (
        size["value"] == pytest.approx(run["model_mb"] / systems["runtime_fp32"]["model_mb"]) and size["kind"] == "max"
    )
    speed = goals["throughput / pytorch"]
    assert speed["value"] == run["ratios_vs_pytorch"]["throughput"] and speed["met"] is (speed["value"] >= 4.0)


def test_markdown_and_chart(bench) -> None:
    result, out = bench
    markdown = (out / "bench.md").read_text()
    assert markdown == result.markdown
    for name in SYSTEMS:
        assert f"| {name} |" in markdown
    assert "Targets" in markdown
    assert f"**{result.data['paired_overhead']['ratio']:.3f}x**" in markdown
    for name, system in result.data["systems"].items():  # the table shows the measured values
        row = next(line for line in markdown.splitlines() if line.startswith(f"| {name} | "))
        assert row.startswith(f"| {name} | {system['f1_presplit']:.4f} | ")
        assert f" {system['latency_ms']['p50']:.2f} | " in row and f" {system['throughput_sps']:.0f} | " in row
    assert (out / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_labels_must_match(tiny_bundle: Path, conll_file: Path, tmp_path: Path) -> None:
    from conftest import make_tiny_checkpoint

    other = make_tiny_checkpoint(tmp_path / "other", labels=["O", "B-X", "I-X"])
    with pytest.raises(BenchMismatchError, match="labels"):
        _bench(tiny_bundle, other, conll_file, tmp_path / "o")


def test_unknown_system_and_missing_data(
    tiny_bundle: Path, tiny_checkpoint: Path, conll_file: Path, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match="unknown system"):
        _bench(tiny_bundle, tiny_checkpoint, conll_file, tmp_path, systems=("pytorch", "tensorrt"))
    with pytest.raises(DataNotFoundError, match="no such file"):
        _bench(tiny_bundle, tiny_checkpoint, tmp_path / "nope.txt", tmp_path)


def test_compare_int8_table(tiny_bundle: Path, conll_file: Path) -> None:
    from ner_export.benchmarks.compare_int8 import compare
    from ner_export.finetune import read_conll
    from ner_export.runtime import NerModel
    from ner_export.runtime.labels import entity_scores

    table = compare(str(conll_file), {"a": str(tiny_bundle), "b": str(tiny_bundle)}, rounds=1, latency_sentences=4)
    lines = table.splitlines()
    assert lines[0].startswith("| int8 variant |") and len(lines) == 4
    sentences = read_conll(conll_file)
    f1 = entity_scores(
        [list(s.tags) for s in sentences], NerModel.load(tiny_bundle).predict_words([list(s.words) for s in sentences])
    ).f1
    mb = (tiny_bundle / "model_int8.onnx").stat().st_size / 1e6
    for line, name in zip(lines[2:], "ab", strict=True):
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        assert cells[:3] == [name, f"{f1:.4f}", f"{mb:.1f}"]
        assert float(cells[3]) > 0 and float(cells[4]) > 0  # sentences/s and p50 ms were measured


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


def _conll_sentences() -> tuple[list[list[str]], list[list[str]]]:
    """The words and gold tags of the conftest training sentences."""
    from conftest import TRAIN_CONLL

    blocks = [[line.split() for line in block.splitlines()] for block in TRAIN_CONLL.strip().split("\n\n")]
    return [[word for word, _ in block] for block in blocks], [[tag for _, tag in block] for block in blocks]


def _write_conll(path: Path, words: list[list[str]], tags: list[list[str]], documents_start: set[int]) -> Path:
    """A CoNLL file of the sentences, with a -DOCSTART- line before each sentence index in `documents_start`."""
    blocks = []
    for i, (sentence, sentence_tags) in enumerate(zip(words, tags, strict=True)):
        start = "-DOCSTART- O\n\n" if i in documents_start else ""
        blocks.append(start + "".join(f"{w} {t}\n" for w, t in zip(sentence, sentence_tags, strict=True)))
    path.write_text("\n".join(blocks), encoding="utf-8")
    return path


def _raw_text_f1(model: Any, documents: list[list[list[str]]], gold: list[list[str]]) -> float:
    """Entity F1 of `model` reading each document (its sentences' words joined by spaces) as one text, its
    entities turned back into word tags and split into the sentences again."""
    from ner_export.runtime.labels import entity_scores

    tags: list[list[str]] = []
    for sentences in documents:
        words = [word for sentence in sentences for word in sentence]
        found = [(e.label, e.start, e.end) for e in model(" ".join(words))]
        document_tags = entities_to_word_tags(words, found)
        for sentence in sentences:
            tags.append(document_tags[: len(sentence)])
            document_tags = document_tags[len(sentence) :]
    return entity_scores(gold, tags).f1


def test_context_model_is_scored_with_documents(context_pair: tuple[Path, Path], tmp_path: Path) -> None:
    """Raw-text F1 reads whole documents: the runtime's equals the runtime's own F1 on the two documents
    read as texts, PyTorch's (the pipeline: first sub-word, argmax) that of the runtime decoding alike."""
    from ner_export.runtime import NerModel

    checkpoint, bundle = context_pair
    words, gold = _conll_sentences()
    data = _write_conll(tmp_path / "documents.conll", words, gold, documents_start={0, 2})
    systems = ("pytorch", "runtime_fp32", "session_int8")
    result = _bench(
        bundle, checkpoint, data, tmp_path, latency_sentences=2, warmup=1, systems=systems, cold_start=False
    )
    assert result.data["settings"]["context"] == "document"
    measured = result.data["systems"]
    documents = [words[:2], words[2:]]
    runtime = _raw_text_f1(NerModel.load(bundle, precision="fp32"), documents, gold)
    pipeline_like = NerModel.load(bundle, precision="fp32", aggregation="first", decoding="argmax")
    assert runtime > 0 and measured["runtime_fp32"]["f1_rawtext"] == pytest.approx(runtime, abs=1e-12)
    assert measured["pytorch"]["f1_rawtext"] == pytest.approx(_raw_text_f1(pipeline_like, documents, gold), abs=1e-12)
    assert measured["session_int8"]["f1_rawtext"] is None
    assert "trained with document context" in result.markdown


def test_context_mismatch_between_checkpoint_and_bundle_is_refused(
    context_pair: tuple[Path, Path], tiny_checkpoint: Path, conll_file: Path, tmp_path: Path
) -> None:
    _, bundle = context_pair
    with pytest.raises(BenchMismatchError, match="trained with context 'none' but the bundle"):
        _bench(bundle, tiny_checkpoint, conll_file, tmp_path, systems=("runtime_int8",), cold_start=False)


def test_documents_are_joined_and_split_back() -> None:
    from ner_export.benchmarks import group_documents, split_documents

    words = [["a", "b"], ["c"], ["d", "e", "f"], ["g"]]
    doc_words, sizes = group_documents(words, [0, 0, 1, 2])
    assert doc_words == [["a", "b", "c"], ["d", "e", "f"], ["g"]]
    assert split_documents(doc_words, sizes) == words


def test_casing_model_is_fed_casing_by_every_system(
    casing_checkpoint: Path, casing_bundle: Path, tmp_path: Path
) -> None:
    """Scored against the casing model's own fp32 tags: PyTorch tags the words exactly so, and raw-text F1
    of the pipelines equals that of the runtime (which feeds casing) decoding as they do."""
    from ner_export.runtime import NerModel

    words, _ = _conll_sentences()
    own = NerModel.load(casing_bundle, precision="fp32").predict_words(words)
    data = _write_conll(tmp_path / "own.conll", words, own, documents_start=set())
    result = _bench(casing_bundle, casing_checkpoint, data, tmp_path, latency_sentences=2, warmup=1, cold_start=False)
    measured = result.data["systems"]
    assert measured["runtime_fp32"]["f1_presplit"] == measured["pytorch"]["f1_presplit"] == 1.0
    sentences = [[sentence] for sentence in words]
    for name, precision in (("pytorch", "fp32"), ("optimum_int8", "int8")):
        pipeline_like = NerModel.load(casing_bundle, precision=precision, aggregation="first", decoding="argmax")
        expected = _raw_text_f1(pipeline_like, sentences, own)
        assert expected > 0 and measured[name]["f1_rawtext"] == pytest.approx(expected, abs=1e-12), name
    assert measured["runtime_fp32"]["f1_rawtext"] == _raw_text_f1(
        NerModel.load(casing_bundle, precision="fp32"), sentences, own
    )


def test_casing_mismatch_between_checkpoint_and_bundle_is_refused(
    casing_bundle: Path, tiny_checkpoint: Path, conll_file: Path, tmp_path: Path
) -> None:
    with pytest.raises(BenchMismatchError, match="without casing but the bundle"):
        _bench(casing_bundle, tiny_checkpoint, conll_file, tmp_path, systems=("runtime_int8",), cold_start=False)


def test_batch_invariance_counts_texts_whose_answer_changes() -> None:
    from ner_export.benchmarks import batch_invariance

    class Flaky:
        """Answers each text by its length, except that a batch of more than one moves texts with 'x'."""

        def answers(self, texts: list[str], batch_size: int) -> list[object]:
            return [(len(t), batch_size > 1 and "x" in t) for t in texts]

    texts = ["ax", "b", "cx", "dd", "e"]
    assert batch_invariance(Flaky(), texts, 32) == 2
    assert batch_invariance(Flaky(), ["a", "b"], 32) == 0


def test_a_missing_peer_is_skipped_with_its_reason(
    tiny_bundle: Path, tiny_checkpoint: Path, conll_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ner_export.benchmarks.systems as systems

    monkeypatch.setattr(systems, "missing_peer", lambda name: f"{name}: the Python package is not installed")
    result = _bench(
        tiny_bundle,
        tiny_checkpoint,
        conll_file,
        tmp_path,
        latency_sentences=2,
        warmup=1,
        systems=("runtime_int8", "openvino_int8", "ctranslate2_int8"),
        cold_start=False,
    )
    assert set(result.data["systems"]) == {"runtime_int8"}
    assert set(result.data["skipped"]) == {"openvino_int8", "ctranslate2_int8"}
    assert "- `openvino_int8`: openvino_int8: the Python package is not installed" in result.markdown


def test_peer_engines_run_the_models_graph(tiny_bundle: Path, tiny_checkpoint: Path, tmp_path: Path) -> None:
    """OpenVINO's int8 and CTranslate2's int8 encoder give the fp32 graph's token labels on most tokens."""
    import numpy as np

    from ner_export.benchmarks.peers import missing_peer
    from ner_export.benchmarks.systems import load_systems
    from ner_export.runtime import NerModel

    for name in ("openvino_int8", "ctranslate2_int8"):
        if missing_peer(name):
            pytest.skip(f"{name}: {missing_peer(name)}")
    texts = ["john smith of reuters said on monday", "the bank of tokyo and paris", "maria lopez in berlin"]
    skipped: dict[str, str] = {}
    peers = load_systems(
        tiny_bundle, tiny_checkpoint, ("session_int8", "openvino_int8", "ctranslate2_int8"), texts, 2, skipped, tmp_path
    )
    assert not skipped
    fp32 = NerModel.load(tiny_bundle, precision="fp32")
    reference = [np.asarray(row).argmax(-1) for row in fp32.logits(fp32._encode(texts))]
    for system in peers:
        labels = system.answers(texts, 2)
        # the peers' answers include [CLS] and [SEP]; the runtime's logits do not
        agree = np.mean(
            [a == b for got, ref in zip(labels, reference, strict=True) for a, b in zip(got[1:-1], ref, strict=True)]
        )
        assert agree > 0.8, (system.name, agree)
        assert system.answers(texts, 1) == labels or system.name != "session_int8"


def test_systems_load_a_casing_model_from_its_marked_folders(
    casing_bundle: Path, casing_checkpoint: Path, tiny_checkpoint: Path, tmp_path: Path
) -> None:
    """The config.json of a casing model is marked so that stock loaders refuse it: `optimum_int8` (and
    its cold-start script) load the bundle with the config resolved and answer like the runtime, and
    the CTranslate2 peer converts the checkpoint into exactly the numbers of the unmarked old format."""
    import numpy as np
    from conftest import make_casing_checkpoint

    from ner_export.benchmarks.peers import CTranslate2Int8, missing_peer
    from ner_export.benchmarks.systems import cold_start, load_systems
    from ner_export.runtime import NerModel

    texts = ["John Smith of REUTERS visited Paris", "maria lopez works for the Bank of Tokyo", "ACME Corp in Berlin"]
    skipped: dict[str, str] = {}
    (optimum,) = load_systems(casing_bundle, casing_checkpoint, ("optimum_int8",), texts, 2, skipped, tmp_path)
    assert not skipped
    parity = NerModel.load(casing_bundle, precision="int8", word_split="pipeline", decoding="argmax")
    expected = [[(e.label, e.start, e.end) for e in row] for row in parity.predict(texts)]
    assert optimum.answers(texts, 1) == expected and any(expected)
    assert cold_start("optimum_int8", casing_bundle, casing_checkpoint, texts[0])["cold_start_s"] > 0
    if missing_peer("ctranslate2_int8"):
        pytest.skip(f"ctranslate2_int8: {missing_peer('ctranslate2_int8')}")
    old = make_casing_checkpoint(tiny_checkpoint, tmp_path / "old-style", old_style=True)
    marked, unmarked = CTranslate2Int8(casing_checkpoint, tmp_path / "marked"), CTranslate2Int8(old, tmp_path / "old")
    ids = np.array([[2, 40, 41, 42, 3, 0]], dtype=np.int64)
    feeds = {"input_ids": ids, "attention_mask": (ids > 0).astype(np.int64), "token_type_ids": ids % 3 * (ids > 3)}
    assert np.array_equal(marked.run(feeds), unmarked.run(feeds))
    assert not np.array_equal(marked.run(feeds), marked.run({**feeds, "token_type_ids": 0 * ids}))


def test_casing_paths_measures_each_way_of_running_a_casing_model(
    casing_checkpoint: Path, casing_bundle: Path, conll_file: Path, tmp_path: Path
) -> None:
    """On sentences tagged by the casing model's own `ner_pipeline`, that path scores 1.0 and agrees on
    every sentence, the paths that feed casing agree with it, and the all-zero stock path does not."""
    pytest.importorskip("optimum.onnxruntime", reason="needs Optimum with ONNX Runtime (the export extra)")
    from ner_export.benchmarks.casing_paths import PATHS, main, measure
    from ner_export.finetune import Sentence, ner_pipeline, read_conll, write_conll

    sentences = [*read_conll(conll_file)] * 2 + [Sentence(("JOHN", "SMITH", "of", "ACME", "Corp"), ("O",) * 5)]
    pipe = ner_pipeline(str(casing_checkpoint), aggregation_strategy="first", device="cpu")
    tagged = []
    for s in sentences:
        spans = [(e["entity_group"], e["start"], e["end"]) for e in pipe(" ".join(s.words))]
        tagged.append(Sentence(s.words, tuple(entities_to_word_tags(list(s.words), spans))))
    assert sum(tag.startswith("B-") for s in tagged for tag in s.tags) >= 5
    data = tmp_path / "self.conll"
    write_conll(data, tagged)
    results = {r.key: r for r in measure(casing_checkpoint, casing_bundle, data, 9, progress=False)}
    assert list(results) == list(PATHS)
    reference, stock = results["ner_pipeline"], results["stock_zeros"]
    assert reference.f1 == 1.0 and reference.same_as_ner_pipeline == reference.sentences == 9
    assert stock.same_as_ner_pipeline < 9 and stock.f1 < 1.0
    # Optimum and the runtime in parity mode run the same int8 graph the same way; int8 may move an
    # entity or two away from PyTorch's. The runtime's default decoding is measured, not compared.
    optimum, parity = results["optimum_int8"], results["runtime_int8_parity"]
    assert optimum.same_as_ner_pipeline == parity.same_as_ner_pipeline >= 7 and optimum.f1 == parity.f1
    assert 0 < results["runtime_int8"].f1 <= 1
    main([str(casing_checkpoint), str(casing_bundle), "--data", str(data), "--sentences", "3", "-q"])


def test_the_openvino_runtime_row_is_the_backends_own(bench, tiny_bundle: Path, self_tagged: Path) -> None:
    """`runtime_int8_openvino` is NerModel on its OpenVINO backend: its F1 is the backend's, its size the IR's."""
    from conftest import openvino_graph

    from ner_export.finetune import read_conll
    from ner_export.runtime import NerModel
    from ner_export.runtime.labels import entity_scores

    spec = openvino_graph(tiny_bundle)
    data = bench[0].data
    assert "runtime_int8_openvino" not in data["skipped"]
    row = data["systems"]["runtime_int8_openvino"]
    sentences = read_conll(self_tagged)
    words, gold = [list(s.words) for s in sentences], [list(s.tags) for s in sentences]
    model = NerModel.load(tiny_bundle, backend="openvino")
    assert row["f1_presplit"] == entity_scores(gold, model.predict_words(words, batch_size=32)).f1
    size = sum((tiny_bundle / name).stat().st_size for name in (spec.file, spec.weights))
    assert row["model_mb"] == round(size / 1e6, 2) and row["imports_torch"] is False
    assert row["batch_invariance"] == 0 and row["cold_start_s"] > 0
    goals = {t["target"] for t in data["targets"]}
    assert "runtime_int8_openvino throughput / openvino_int8 (bare, pre-tokenized)" in goals


def test_the_openvino_runtime_row_is_skipped_with_its_reason(
    tiny_bundle: Path, tiny_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil
    import sys

    from ner_export.benchmarks.systems import load_systems
    from ner_export.runtime.manifest import MANIFEST_NAME

    assert "runtime_int8_openvino" in SYSTEMS
    bare = tmp_path / "bare"
    shutil.copytree(tiny_bundle, bare)
    data = json.loads((bare / MANIFEST_NAME).read_text())
    data["graphs"] = [g for g in data["graphs"] if g.get("backend") != "openvino"]
    data["validation"]["openvino"] = {"shipped": False, "reason": "turned off (--no-openvino)"}
    (bare / MANIFEST_NAME).write_text(json.dumps(data))
    skipped: dict[str, str] = {}
    assert load_systems(bare, tiny_checkpoint, ("runtime_int8_openvino",), ["paris"], 2, skipped, tmp_path) == []
    assert skipped == {
        "runtime_int8_openvino": "the bundle has no OpenVINO graph: turned off (--no-openvino) "
        "(export with ner-export[openvino] installed)"
    }
    if any(g.get("backend") == "openvino" for g in json.loads((tiny_bundle / MANIFEST_NAME).read_text())["graphs"]):
        monkeypatch.setitem(sys.modules, "openvino", None)  # as if not installed
        skipped.clear()
        assert load_systems(tiny_bundle, tiny_checkpoint, ("runtime_int8_openvino",), ["x"], 2, skipped, tmp_path) == []
        why = "the Python package 'openvino' is not installed (pip install 'ner-export[openvino]')"
        assert skipped == {"runtime_int8_openvino": why}


def test_the_peer_race_goals_of_the_openvino_runtime() -> None:
    from ner_export.benchmarks import TARGETS

    def row(sps: float, p50: float) -> dict[str, Any]:
        return {"throughput_sps": sps, "latency_ms": {"p50": p50}}

    results = {"runtime_int8_openvino": row(1300, 1.6), "openvino_int8": row(1200, 1.5)}
    results["ctranslate2_int8"] = row(870, 5.7)
    race = {t.name: t for t in TARGETS if t.name.startswith("runtime_int8_openvino")}
    assert {name: (t.kind, t.limit) for name, t in race.items()} == {
        "runtime_int8_openvino throughput / openvino_int8 (bare, pre-tokenized)": ("min", 1.05),
        "runtime_int8_openvino throughput / ctranslate2_int8 (bare, pre-tokenized)": ("min", 1.15),
        "runtime_int8_openvino p50 latency / best peer's p50": ("max", 1.0),
    }
    assert [round(t.measure(results), 4) for t in race.values()] == [
        round(1300 / 1200, 4),
        round(1300 / 870, 4),
        round(1.6 / 1.5, 4),
    ]
    assert all(t.applies(results) for t in race.values())
    assert not any(t.applies({"runtime_int8_openvino": results["runtime_int8_openvino"]}) for t in race.values())
    assert not any(t.applies({"openvino_int8": results["openvino_int8"]}) for t in race.values())


def test_a_runtime_system_times_texts_against_its_primed_token_cache(tiny_bundle: Path) -> None:
    from ner_export.benchmarks.systems import RuntimeSystem

    system = RuntimeSystem("runtime_int8", tiny_bundle, "int8", 32)
    system.prime(["John Smith lives in Paris ."])
    cache = system._model._chunk_tokens
    primed = set(cache._chunks)
    assert {"John", "Paris", "."} <= primed
    system.single("Maria Lopez of Reuters", 0)
    assert set(cache._chunks) > primed
    system.forget()
    assert set(cache._chunks) == primed
    assert system.single_uncached("Maria Lopez of Reuters") == system.single("Maria Lopez of Reuters", 0)
    assert (
        system._uncached_model._chunk_tokens.capacity == 0 and system._uncached_model._session is system._model._session
    )
