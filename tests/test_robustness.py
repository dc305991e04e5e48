"""Robustness: any Unicode, concurrency, long and many texts, damaged tokenizers, killed exports."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ner_export.runtime import BundleError, NerModel
from ner_export.runtime.manifest import MANIFEST_NAME, sha256_file

SENTENCES = [
    "John Smith lives in Paris.",
    "Maria Lopez works for Reuters in London, said the minister on Monday.",
    "The Bank of Tokyo and the French company agreed in Berlin.",
    "U.S. corp said the world cup in Germany was new.",
]
ODD_PIECES = [
    "🙂",
    "👩‍👩‍👧",
    "🇫🇷",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
    "東京",
    "北京市",
    "한국어",
    "e\u0301",
    "Cafe\u0301",
    "Zoë",
    "Müller",
    "\u200d",
    "\u200b",
    "\u00a0",
    "\u2003",
    "\u3000",
    "\t",
    "\n",
    "\r\n",
    "\x00",
    "\x07",
    "\x1b[0m",
    "مرحبا",
    "שָׁלוֹם",
    "\u202e",
    "ﬁ",
    "Å",
    "ǅ",
    "İstanbul",
    "ß",
    "\ufeff",
    "\U0010ffff",
    "\ud7ff",
    "—",
    "…",
]


def _check_offsets(text, entities) -> None:
    previous_end = 0
    for entity in entities:
        assert text[entity.start : entity.end] == entity.text
        assert 0 <= entity.start < entity.end <= len(text)
        assert entity.start >= previous_end
        previous_end = entity.end


@pytest.fixture(scope="module", params=["fp32", "casing-int8"])
def unicode_model(request: pytest.FixtureRequest) -> NerModel:
    """The tiny bundle's fp32 graph, and the default (int8) graph of the bundle trained with casing, whose
    token types come from each word's capitalisation: odd characters go through both paths."""
    if request.param == "fp32":
        return request.getfixturevalue("tiny_model")
    return NerModel.load(request.getfixturevalue("casing_bundle"))


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(
    st.lists(
        st.one_of(st.sampled_from(SENTENCES), st.sampled_from(ODD_PIECES), st.text(min_size=0, max_size=12)),
        min_size=0,
        max_size=12,
    ),
    st.sampled_from([" ", "", "\n", "\u00a0"]),
)
def test_offsets_hold_on_any_unicode(unicode_model: NerModel, pieces: list[str], separator: str) -> None:
    text = separator.join(pieces)
    for entities in (unicode_model(text), unicode_model.predict([text, text[::-1]])[0]):
        _check_offsets(text, entities)


def test_offsets_hold_on_each_odd_piece_inside_sentences(unicode_model: NerModel) -> None:
    texts = [f"{piece}John{piece} Smith{piece} lives in {piece}Paris{piece}." for piece in ODD_PIECES]
    found = unicode_model.predict(texts)
    assert all(found), [text for text, entities in zip(texts, found, strict=True) if not entities]
    for text, entities in zip(texts, found, strict=True):
        _check_offsets(text, entities)


def test_one_model_shared_by_eight_threads(tiny_bundle: Path) -> None:
    # int8 activations are quantized per batch tensor, so a text's scores can depend on its batch
    # neighbours: threads and the sequential reference make the same calls, only concurrently.
    model = NerModel.load(tiny_bundle)
    texts = [" ".join(SENTENCES[: 1 + i % 4]) * (1 + i % 3) for i in range(500)]
    expected_single = [model(t) for t in texts]
    expected_batch = model.predict(texts, batch_size=16)
    results: dict[int, tuple[list, list]] = {}
    errors: list[BaseException] = []

    def work(k: int) -> None:
        try:
            order = list(range(k, len(texts))) + list(range(k))  # every thread in its own order
            single = {i: model(texts[i]) for i in order}
            results[k] = ([single[i] for i in range(len(texts))], model.predict(texts, batch_size=16))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(k * 61,)) for k in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    spans = lambda rows: [[(e.label, e.start, e.end, e.score) for e in r] for r in rows]  # noqa: E731
    for single, batch in results.values():
        assert spans(single) == spans(expected_single)
        assert spans(batch) == spans(expected_batch)


def test_tokenizer_from_another_model_is_refused(tiny_bundle: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(tiny_bundle, copy)
    tokenizer = json.loads((copy / "tokenizer.json").read_text())
    tokenizer["model"]["vocab"]["zzzextra"] = len(tokenizer["model"]["vocab"])
    (copy / "tokenizer.json").write_text(json.dumps(tokenizer))
    manifest = json.loads((copy / MANIFEST_NAME).read_text())
    manifest["files"]["tokenizer.json"] = sha256_file(copy / "tokenizer.json")  # a consistent but wrong bundle
    (copy / MANIFEST_NAME).write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="does not match the manifest"):
        NerModel.load(copy)


def _bundle_hashes(folder: Path) -> dict[str, str]:
    """sha256 of every file of a complete bundle, each one the manifest lists checked against its record."""
    hashes = {p.name: sha256_file(p) for p in folder.iterdir()}
    listed = json.loads((folder / MANIFEST_NAME).read_text())["files"]
    assert set(listed) <= set(hashes), sorted(set(listed) - set(hashes))
    assert {name: hashes[name] for name in listed} == listed
    return hashes


def _stop_when_staged(process: subprocess.Popen[bytes], parent: Path, pattern: str, seen: set[Path]) -> Path:
    """SIGSTOP the export once a file matching `pattern` appears in its new staging directory (polled, for
    at most 120 s); returns that directory. Stopped, the export cannot finish while the test looks at it."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        for staged in set(parent.glob(".bundle.tmp-*")) - seen:
            if any(p.is_file() for p in staged.rglob(pattern)):
                process.send_signal(signal.SIGSTOP)
                return staged
        assert process.poll() is None, f"the export ended (status {process.returncode}) before writing {pattern}"
        time.sleep(0.005)
    raise AssertionError(f"the export wrote no {pattern} within 120 s")


def test_killed_export_leaves_the_previous_bundle(
    tiny_checkpoint: Path, tiny_bundle: Path, conll_file: Path, tmp_path: Path
) -> None:
    """SIGKILL an export over an existing bundle while it writes the new one (once its first file, then its
    int8 graph, is in the staging directory): the old bundle stays, every file's sha256 unchanged."""
    out = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, out)
    before = _bundle_hashes(out)
    command = [sys.executable, "-m", "ner_export", str(tiny_checkpoint), "-o", str(out), "--force"]
    command += ["--validate-data", str(conll_file), "-q"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    seen: set[Path] = set()
    for pattern in ("*", "model_int8.onnx"):
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            staged = _stop_when_staged(process, tmp_path, pattern, seen)
            # stopped before completion: the staging directory, which the final rename moves into place,
            # is still there, holding part of the new bundle
            assert staged.is_dir() and any(staged.iterdir()), pattern
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait(30)
        assert process.returncode == -signal.SIGKILL
        seen.add(staged)
        assert _bundle_hashes(out) == before, f"killed after {pattern} was staged, the old bundle changed"
    # a SIGKILL cannot clean up its staging directory, but that is hidden (".bundle.tmp-*") and nothing
    # else is visible beside the bundle
    assert [p.name for p in tmp_path.iterdir() if not p.name.startswith(".")] == ["bundle"]
    assert sorted(p for p in tmp_path.iterdir() if p.name.startswith(".")) == sorted(seen)


@pytest.mark.slow
def test_one_megabyte_text_with_bounded_memory(tiny_bundle: Path) -> None:
    import resource

    model = NerModel.load(tiny_bundle)
    text = " ".join(SENTENCES * 15000)[:1_000_000]
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    entities = model(text)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    _check_offsets(text, entities)
    assert entities[-1].end > 990_000
    assert grown_mb < 1500, f"peak RSS grew by {grown_mb:.0f} MB for a 1 MB text"


@pytest.mark.slow
def test_rss_stays_flat_over_100k_short_texts(tiny_bundle: Path) -> None:
    model = NerModel.load(tiny_bundle)

    def rss_mb() -> float:
        with open("/proc/self/statm") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20

    for text in SENTENCES * 500:  # warm-up: arenas and caches reach their size
        model(text)
    start = rss_mb()
    for i in range(100_000):
        model(SENTENCES[i % 4])
    grown = rss_mb() - start
    print(f"RSS after warm-up {start:.1f} MB, growth over 100,000 texts {grown:+.1f} MB")
    assert grown < 50
