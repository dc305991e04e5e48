"""A text's answer never depends on which texts share its batch: the default int8 graph, by property test,
on onnxruntime and on the OpenVINO backend (the bundle's NNCF int8 IR; skipped without openvino).

The same checks run against a dynamically quantized bundle must find differences, so they can fail.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from conftest import WORDS, needs_torch, openvino_graph
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ner_export.runtime import BundleManifest, NerModel

_PLAIN = [w for w in WORDS if not w.startswith("##")]
_word = st.sampled_from(_PLAIN).map(lambda w: w.capitalize() if len(w) > 3 and w[0] in "bcjlmprst" else w)
_text = st.lists(_word, min_size=0, max_size=40).map(" ".join)
_long_text = st.lists(_word, min_size=150, max_size=400).map(" ".join)  # several 128-token windows


def _key(entities) -> list[tuple[str, int, int]]:
    return [(e.label, e.start, e.end) for e in entities]


def _assert_same(alone, together) -> None:
    assert _key(alone) == _key(together)
    np.testing.assert_allclose([e.score for e in alone], [e.score for e in together], rtol=0, atol=1e-5)


@pytest.fixture(scope="module", params=["onnxruntime", "openvino"])
def int8_model(tiny_bundle: Path, request: pytest.FixtureRequest) -> NerModel:
    if request.param == "openvino":
        openvino_graph(tiny_bundle)
    return NerModel.load(tiny_bundle, backend=request.param)


@pytest.fixture(scope="module")
def dynamic_bundle(tiny_checkpoint: Path, conll_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    needs_torch()
    from ner_export.export import ExportConfig, export_bundle

    out = tmp_path_factory.mktemp("dynamic") / "bundle"
    export_bundle(
        ExportConfig(model_dir=str(tiny_checkpoint), out=str(out), validate_data=str(conll_file), int8="dynamic")
    )
    return out


def test_the_default_int8_graph_says_it_is_batch_invariant(tiny_bundle: Path, int8_model: NerModel) -> None:
    assert int8_model.precision == "int8" and int8_model.batch_invariant is True
    assert BundleManifest.read(tiny_bundle).graph_for("cpu", "int8", int8_model.backend).batch_invariant is True


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    text=_text,
    neighbours=st.lists(st.one_of(_text, _long_text), min_size=0, max_size=12),
    position=st.integers(0, 12),
    batch_size=st.integers(1, 40),
)
def test_entities_do_not_depend_on_the_batch(
    int8_model: NerModel, text: str, neighbours: list[str], position: int, batch_size: int
) -> None:
    texts = list(neighbours)
    texts.insert(min(position, len(texts)), text)
    together = int8_model.predict(texts, batch_size=batch_size)[texts.index(text)]
    _assert_same(int8_model.predict([text])[0], together)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    sentences=st.lists(st.lists(_word, min_size=1, max_size=30), min_size=1, max_size=10),
    batch_size=st.integers(1, 16),
    seed=st.integers(0, 1000),
)
def test_word_tags_do_not_depend_on_the_batch_or_the_order(
    int8_model: NerModel, sentences: list[list[str]], batch_size: int, seed: int
) -> None:
    alone = [int8_model.predict_words([words], batch_size=1)[0] for words in sentences]
    order = list(range(len(sentences)))
    random.Random(seed).shuffle(order)
    shuffled = int8_model.predict_words([sentences[i] for i in order], batch_size=batch_size)
    assert [shuffled[order.index(i)] for i in range(len(sentences))] == alone


def _logit_gaps(model: NerModel, trials: int = 30) -> list[float]:
    """Largest |logit difference| of a text read alone and inside a batch of random neighbours, per trial."""
    rng = random.Random(7)
    gaps = []
    for _ in range(trials):
        texts = [" ".join(rng.choices(_PLAIN, k=rng.randint(1, 120))) for _ in range(rng.randint(2, 9))]
        encodings = model._encode(texts)
        types = None
        if model.manifest.casing:
            from ner_export.runtime.casing import case_ids

            types = [case_ids(t, e.offsets) for t, e in zip(texts, encodings, strict=True)]
        together = model.logits(encodings, batch_size=32, types=types)
        alone = model.logits(encodings[:1], batch_size=1, types=types[:1] if types else None)
        gaps.append(float(np.abs(together[0] - alone[0]).max()))
    return gaps


def test_static_int8_logits_are_identical_alone_and_in_a_batch(int8_model: NerModel) -> None:
    # exactly, on both backends: static scales, and kernels whose results do not depend on the batch's shape
    assert max(_logit_gaps(int8_model)) == 0.0


def test_the_same_check_finds_the_dynamic_graph_batch_dependent(dynamic_bundle: Path) -> None:
    dynamic = NerModel.load(dynamic_bundle)
    assert dynamic.batch_invariant is False
    assert BundleManifest.read(dynamic_bundle).graph_for("cpu", "int8").quantization["method"] == "dynamic"
    gaps = _logit_gaps(dynamic)
    assert max(gaps) > 1e-3, gaps  # per-batch activation scales: the neighbours move the logits


def test_long_texts_read_in_windows_are_batch_invariant(int8_model: NerModel) -> None:
    rng = random.Random(3)
    long_text = " ".join(rng.choices(_PLAIN, k=600))
    shorts = [" ".join(rng.choices(_PLAIN, k=rng.randint(1, 8))) for _ in range(20)]
    alone = int8_model.predict([long_text])[0]
    for batch_size in (1, 3, 32):
        _assert_same(alone, int8_model.predict([*shorts[:7], long_text, *shorts[7:]], batch_size=batch_size)[7])


def test_streams_give_the_single_stream_results(tiny_bundle: Path) -> None:
    rng = random.Random(5)
    texts = [" ".join(rng.choices(_PLAIN, k=rng.randint(1, 60))) for _ in range(300)]
    one = NerModel.load(tiny_bundle, streams=1)
    two = NerModel.load(tiny_bundle, threads=2, streams=2)
    assert one.streams == 1 and two.streams == 2
    assert two.predict(texts, batch_size=8) == one.predict(texts, batch_size=8)
    words = [t.split() for t in texts]
    assert two.predict_words(words, batch_size=8) == one.predict_words(words, batch_size=8)
    with pytest.raises(ValueError, match="streams=0"):
        NerModel.load(tiny_bundle, streams=0)


def test_calls_on_one_stream_each_run_side_by_side_with_the_single_stream_results(tiny_bundle: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    rng = random.Random(6)
    texts = [" ".join(rng.choices(_PLAIN, k=rng.randint(1, 60))) for _ in range(200)]
    expected = NerModel.load(tiny_bundle, streams=1).predict(texts, batch_size=8)
    two = NerModel.load(tiny_bundle, threads=2, streams=2)

    class Untouchable:
        def run(self, *args: object, **kwargs: object) -> None:
            raise AssertionError("stream=True ran on the whole model's session")

    two._runner.session = Untouchable()  # every batch must go through the streams' session
    halves = [texts[:100], texts[100:]]
    with ThreadPoolExecutor(2) as pool:
        found = list(pool.map(lambda part: two.predict(part, batch_size=8, stream=True), halves))
    assert found[0] + found[1] == expected
