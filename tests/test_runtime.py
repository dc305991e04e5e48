"""Runtime: offsets, order, batching, windows, bad input, no torch, parity with transformers' pipeline."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from ner_export.runtime import Entity, NerModel
from ner_export.runtime.context import plan_windows
from ner_export.runtime.decoding import sequence_allowed, text_word_spans

TEXTS = [
    "John Smith lives in Paris.",
    "Maria Lopez works for Reuters in London, said the minister on Monday.",
    "The Bank of Tokyo and the French company agreed in Berlin.",
    "",
    "   ",
    "new york city , united states of america ; north river university club",
    "Zoë Müller (Reuters) — 東京 said 🙂 that U.S. corp's group won the World Cup!",
]


def _check_offsets(text: str, entities: list[Entity]) -> None:
    previous_end = 0
    for entity in entities:
        assert text[entity.start : entity.end] == entity.text
        assert 0 <= entity.start < entity.end <= len(text)
        assert entity.start >= previous_end, "entities overlap or are unsorted"
        assert entity.text == entity.text.strip() or entity.text.strip() == ""
        assert 0.0 <= entity.score <= 1.0
        previous_end = entity.end


def test_offsets_are_exact(tiny_model: NerModel) -> None:
    results = tiny_model.predict(TEXTS)
    assert len(results) == len(TEXTS)
    assert sum(len(r) for r in results) > 5, "the tiny model should find entities to check"
    for text, entities in zip(TEXTS, results, strict=True):
        _check_offsets(text, entities)
    assert results[3] == [] and results[4] == []


def test_results_keep_input_order_and_do_not_depend_on_batching(tiny_model: NerModel) -> None:
    one_by_one = [tiny_model(text) for text in TEXTS]
    for batch_size in (1, 2, 3, 64):
        got = tiny_model.predict(TEXTS, batch_size=batch_size)
        assert [[(e.label, e.start, e.end) for e in r] for r in got] == [
            [(e.label, e.start, e.end) for e in r] for r in one_by_one
        ]
    assert tiny_model.predict([]) == []


def test_int8_graph_runs(tiny_bundle: Path) -> None:
    model = NerModel.load(tiny_bundle)
    assert model.precision == "int8"
    results = model.predict(TEXTS)
    assert [bool(entities) for entities in results] == [bool(text.strip()) for text in TEXTS], (
        "the int8 graph finds entities in every text that has words, none in blank ones"
    )
    for text, entities in zip(TEXTS, results, strict=True):
        _check_offsets(text, entities)


def test_plan_windows_cover_every_token_once() -> None:
    for n in (0, 1, 5, 10, 11, 37, 100, 1000):
        windows = plan_windows(n, size=10, stride=3)
        owned = [t for _, _, a, b in windows for t in range(a, b)]
        assert owned == list(range(n))
        for start, end, own_a, own_b in windows:
            assert 0 <= start <= own_a <= own_b <= end <= n and end - start <= 10


def test_long_text_is_windowed_not_truncated(tiny_bundle: Path) -> None:
    model = NerModel.load(tiny_bundle, precision="fp32")
    sentences = [TEXTS[0], TEXTS[1], TEXTS[2]] * 40  # far beyond max_length tokens
    document = " ".join(sentences)
    assert len(model._tokenizer.encode(document, add_special_tokens=False).ids) > 4 * model.manifest.max_length
    entities = model(document)
    _check_offsets(document, entities)
    assert entities[-1].end > len(document) * 0.9, "entities near the end of a long text must be found"


def test_words_longer_than_max_length(tiny_model: NerModel) -> None:
    words = ("John Smith lives in Paris and Maria Lopez works for Reuters".split()) * 30
    tags = tiny_model.predict_words([words])[0]
    assert len(tags) == len(words)
    # The same sentence repeated: positions far from window edges get the same tags as the first copy.
    short = tiny_model.predict_words([words[:11]])[0]
    assert tags[:5] == short[:5]


def test_predict_words_returns_valid_iob2(tiny_model: NerModel) -> None:
    word_lists = [["John", "Smith", "lives", "in", "Paris", "."], [], ["U.S.", "", "Bank"]]
    tags = tiny_model.predict_words(word_lists)
    assert [len(t) for t in tags] == [6, 0, 3]
    assert tags[2][1] == "O"  # an empty word has no tokens
    for row in tags:
        for previous, tag in zip(["O", *row], row, strict=False):
            if tag.startswith("I-"):
                assert previous[2:] == tag[2:], f"{tag} after {previous} is not IOB2"


@pytest.mark.parametrize(
    "bad, match",
    [(None, "NoneType"), (b"bytes", "bytes"), (42, "int")],
)
def test_call_rejects_non_strings(tiny_model: NerModel, bad, match: str) -> None:
    with pytest.raises(TypeError, match=match):
        tiny_model(bad)


def test_predict_names_the_bad_item(tiny_model: NerModel) -> None:
    with pytest.raises(TypeError, match="item 2 is int"):
        tiny_model.predict(["fine", "also fine", 3])
    with pytest.raises(TypeError, match="list of texts"):
        tiny_model.predict("a string, not a list")
    with pytest.raises(TypeError, match="item 1 is list"):
        tiny_model.predict(["ok", ["nested"]])
    with pytest.raises(TypeError, match="item 0, word 1 is int"):
        tiny_model.predict_words([["ok", 1]])


@pytest.mark.parametrize("bad, position", [("bad \ud800 x", 4), ("caf\udce9 Paris", 3), ("\udfff", 0)])
def test_text_that_cannot_be_encoded_is_an_input_error(tiny_model: NerModel, bad: str, position: int) -> None:
    """A lone surrogate (a JSON \\ud800 escape, or undecodable bytes read with surrogateescape) names its
    text and character; it is bad input (InputError, a ValueError), not a TypeError from the tokenizer."""
    from ner_export.runtime import InputError, NerExportError

    code = f"U\\+{ord(bad[position]):04X}"
    with pytest.raises(InputError, match=rf"^NerModel\(\): text 0 has a lone surrogate {code} at character {position}"):
        tiny_model(bad)
    with pytest.raises(InputError, match=rf"^predict: text 2 has a lone surrogate {code} at character {position}"):
        tiny_model.predict(["fine", "Zoë also fine", bad])
    with pytest.raises(InputError, match=rf"^predict_words: item 1, word 1 has a lone surrogate {code}"):
        tiny_model.predict_words([["ok"], ["ok", bad]])
    assert issubclass(InputError, ValueError) and issubclass(InputError, NerExportError)
    tiny_model.predict(["Zoë Müller 🙂 met Reuters."])  # valid non-ASCII text still passes: no error


def test_bad_options_are_value_errors(tiny_bundle: Path, tiny_model: NerModel) -> None:
    with pytest.raises(ValueError, match="device"):
        NerModel.load(tiny_bundle, device="tpu")
    with pytest.raises(ValueError, match="aggregation"):
        tiny_model.predict(["x"], aggregation="mean")
    with pytest.raises(ValueError, match="batch_size"):
        tiny_model.predict(["x"], batch_size=0)


def test_cuda_without_gpu_is_a_clear_error(tiny_bundle: Path) -> None:
    import onnxruntime

    from ner_export.runtime import DeviceError
    from ner_export.runtime.session import cuda_problem

    problem = cuda_problem(onnxruntime)
    if problem is None:
        pytest.skip("this machine has CUDA (a CUDA build of onnxruntime and an NVIDIA driver)")
    with pytest.raises(DeviceError, match="onnxruntime-gpu") as raised:
        NerModel.load(tiny_bundle, device="cuda")
    assert "\n" not in str(raised.value) and problem in str(raised.value)


def test_runtime_imports_no_torch() -> None:
    code = (
        "import sys\n"
        "import ner_export.runtime\n"
        "from ner_export.runtime import NerModel\n"
        "heavy = [m for m in ('torch', 'transformers', 'optimum', 'seqeval', 'sklearn') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_predicting_with_a_bundle_loads_no_torch(tiny_bundle: Path) -> None:
    code = (
        "import sys\n"
        "from ner_export.runtime import NerModel\n"
        f"NerModel.load({str(tiny_bundle)!r})('John Smith lives in Paris.')\n"
        "print('torch' in sys.modules, 'transformers' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False False"


# --------------------------------------------------------------------------- parity with transformers
PARITY_TEXTS = [
    "John Smith lives in Paris.",
    "Maria Lopez works for Reuters in London, said the minister on Monday.",
    "The Bank of Tokyo and the French company agreed in Berlin.",
    "new york city , united states of america ; north river university club",
    "the world cup in germany , france and the united states",
    "Smithing johnson's u.s. corp-group (reuters) said: 2024 was new.",
]


@pytest.fixture(scope="module")
def reference_pipeline(tiny_checkpoint: Path):
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    model = AutoModelForTokenClassification.from_pretrained(tiny_checkpoint).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_checkpoint)
    return model, tokenizer


@pytest.mark.parametrize("strategy", ["first", "average", "max", "simple"])
def test_same_entities_as_transformers_pipeline(
    reference_pipeline, tiny_bundle: Path, strategy: str, assert_same_entities
) -> None:
    from transformers import pipeline

    model, tokenizer = reference_pipeline
    reference = pipeline(
        "token-classification", model=model, tokenizer=tokenizer, aggregation_strategy=strategy, device="cpu"
    )
    ours = NerModel.load(tiny_bundle, precision="fp32", word_split="pipeline", aggregation=strategy, decoding="argmax")
    assert assert_same_entities(reference, ours, PARITY_TEXTS) > 5


@pytest.mark.parametrize("strategy", ["first", "average", "max"])
def test_text_words_equal_pipeline_words_on_plain_text(reference_pipeline, tiny_bundle: Path, strategy: str) -> None:
    """On text without punctuation the default word split is the pipeline's, so the entities are equal."""
    import re

    from transformers import pipeline

    model, tokenizer = reference_pipeline
    reference = pipeline(
        "token-classification", model=model, tokenizer=tokenizer, aggregation_strategy=strategy, device="cpu"
    )
    ours = NerModel.load(tiny_bundle, precision="fp32", aggregation=strategy, decoding="argmax")
    compared = 0
    for text in (re.sub(r"[^\w\s]", "", t) for t in PARITY_TEXTS):
        expected = [(e["entity_group"], e["start"], e["end"]) for e in reference(text)]
        assert expected == [(e.label, e.start, e.end) for e in ours(text)], text
        compared += len(expected)
    assert compared > 5


def test_text_words_are_whitespace_chunks_with_a_punctuation_free_core(tiny_model: NerModel) -> None:
    from ner_export.runtime.decoding import text_words

    text = "The U.S. (Reuters) said: Jean-Pierre's B. -- ok"
    encoding = tiny_model._tokenizer.encode(text, add_special_tokens=False)
    offsets = np.asarray(encoding.offsets)
    starts, core = text_words(text, offsets)
    words: list[list[int]] = []
    for i, (b, e) in enumerate(offsets.tolist()):
        if not core[i]:
            continue
        if starts[i]:
            words.append([b, e])
        else:
            words[-1][1] = e
    assert [text[b:e] for b, e in words] == ["The", "U.S", "Reuters", "said", "Jean-Pierre's", "B", "-", "-", "ok"]


def test_entity_keeps_the_period_of_an_initial() -> None:
    from ner_export.runtime.decoding import extend_initial

    text = "B. Young and the U.S. met in Paris. Then"
    assert text[: extend_initial(text, 1)] == "B."
    assert text[17 : extend_initial(text, 20)] == "U.S."
    assert text[29 : extend_initial(text, 34)] == "Paris"
    assert extend_initial("ends with B", 11) == 11


def test_missing_onnxruntime_names_the_extra(tiny_bundle: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ner_export.runtime import MissingDependencyError

    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # makes `import onnxruntime` fail
    with pytest.raises(MissingDependencyError, match=r"pip install 'ner-export\[cpu\]'"):
        NerModel.load(tiny_bundle)


@pytest.mark.parametrize("decoding", ["constrained", "argmax"])
@pytest.mark.parametrize("precision", ["fp32", "int8"])
def test_default_fast_path_equals_the_general_decoder(tiny_bundle: Path, precision: str, decoding: str) -> None:
    model = NerModel.load(tiny_bundle, precision=precision, decoding=decoding)
    texts = TEXTS + PARITY_TEXTS + ["(Reuters) B. Young -- U.S.", "... ,,, !!", "a\tb\nc  d"]
    compared = repaired = 0
    for text in texts:
        encoding = model._tokenizer.encode(text, add_special_tokens=False)
        logits = model.logits([encoding])[0]
        words = text_word_spans(text, encoding.offsets)
        argmax = logits[[first for first, _ in words]].argmax(axis=1).tolist()
        repaired += decoding == "constrained" and not sequence_allowed(argmax, model._decoder.allowed_rows)
        general = model._decoder.entities(text, encoding, logits, "first")
        with_columns = model._token_logits([encoding], 32, None, None, decoded=True)[0]  # the graph's decoding
        assert with_columns.shape == (logits.shape[0], logits.shape[1] + 3)
        for scores in (logits, with_columns):
            fast = model._decoder.text_word_entities(text, encoding.offsets, words, scores)
            assert [(e.label, e.start, e.end, e.text) for e in fast] == [
                (e.label, e.start, e.end, e.text) for e in general
            ], text
            np.testing.assert_allclose([e.score for e in fast], [e.score for e in general], rtol=1e-6)
        compared += len(fast)
    assert compared > 10
    assert repaired > 0 or decoding == "argmax"  # the constrained search ran, not only the valid-argmax shortcut


@pytest.mark.parametrize("which", ["tiny_bundle", "casing_bundle"])
@pytest.mark.parametrize("aggregation", ["first", "max"])
def test_a_lone_text_takes_the_short_path_with_the_batch_path_answer(
    which: str, aggregation: str, request: pytest.FixtureRequest
) -> None:
    model = NerModel.load(request.getfixturevalue(which), aggregation=aggregation)
    long_text = " ".join(["Maria Lopez of Reuters in London"] * 40)  # more than one window: the general path
    texts = TEXTS + PARITY_TEXTS + [long_text]
    taken = [model._single_window_entities(text, aggregation) is not None for text in texts]
    assert taken[0] and not taken[-1] and not taken[TEXTS.index("")]
    batched = model.predict(texts + ["a neighbour that pads the others " * 3], batch_size=64)
    found = 0
    for text, together in zip(texts, batched, strict=False):
        alone = model(text)
        assert [(e.label, e.start, e.end, e.text) for e in alone] == [
            (e.label, e.start, e.end, e.text) for e in together
        ], text
        np.testing.assert_allclose([e.score for e in alone], [e.score for e in together], rtol=0, atol=1e-6)
        found += len(alone)
    assert found > 10


def test_io_binding_and_padded_widths_give_the_same_results(tiny_bundle: Path) -> None:
    """The CUDA defaults (IO binding, widths padded to a multiple of 16) checked on CPU against the plain path."""
    texts = [
        "john smith went to paris .",
        "reuters",
        "the bank of tokyo said on monday that it was in london and paris",
    ] * 3
    plain = NerModel.load(tiny_bundle, precision="fp32")
    bound = NerModel.load(tiny_bundle, precision="fp32", io_binding=True, pad_multiple=16)
    assert bound.io_binding and bound.pad_multiple == 16 and not plain.io_binding and plain.pad_multiple == 1
    encodings = plain._encode(texts)
    for a, b in zip(plain.logits(encodings), bound.logits(encodings), strict=True):
        assert np.allclose(a, b, atol=1e-4)
    assert [[(e.label, e.start, e.end) for e in row] for row in bound.predict(texts)] == [
        [(e.label, e.start, e.end) for e in row] for row in plain.predict(texts)
    ]
    with pytest.raises(ValueError, match="pad_multiple"):
        NerModel.load(tiny_bundle, pad_multiple=0)


@pytest.mark.parametrize("decoding", ["constrained", "argmax"])
def test_runtime_decodes_words_as_pytorch_does(tiny_checkpoint: Path, tiny_bundle: Path, decoding: str) -> None:
    """Both decodings give the same tags in the runtime and in the training code's `tag_words`."""
    from ner_export.finetune import load_checkpoint, tag_words

    model, tokenizer = load_checkpoint(str(tiny_checkpoint))
    sentences = [text.split() for text in PARITY_TEXTS]
    runtime = NerModel.load(tiny_bundle, precision="fp32", decoding=decoding)
    expected = tag_words(model, tokenizer, sentences, max_length=runtime.manifest.max_length, decoding=decoding)
    assert runtime.predict_words(sentences) == expected


def test_constrained_decoding_changes_what_argmax_leaves_invalid(tiny_checkpoint: Path, tiny_bundle: Path) -> None:
    """The random tiny model produces I- tags without their B-: argmax and constrained must then differ,
    in words and in raw-text entities, and constrained must equal the best valid sequence."""
    from ner_export.runtime.decoding import allowed_transitions, constrained_labels

    sentences = [text.split() for text in PARITY_TEXTS]
    argmax = NerModel.load(tiny_bundle, precision="fp32", decoding="argmax")
    constrained = NerModel.load(tiny_bundle, precision="fp32")
    assert constrained.decoding == "constrained"
    assert argmax.predict_words(sentences) != constrained.predict_words(sentences)
    assert argmax.predict(PARITY_TEXTS) != constrained.predict(PARITY_TEXTS)
    # the first word-level decision the two disagree on is the search's, over first-token log-probabilities
    allowed = allowed_transitions(constrained._decoder.space)
    for text in PARITY_TEXTS:
        words = text.split()
        encoding = constrained._encode([words], is_pretokenized=True)[0]
        logits = constrained.logits([encoding])[0]
        firsts = [encoding.word_ids.index(w) for w in range(len(words)) if w in encoding.word_ids]
        rows = logits[firsts] - np.log(np.exp(logits[firsts]).sum(axis=1, keepdims=True))
        expected = [constrained.labels[i] for i in constrained_labels(rows, allowed)]
        assert constrained.predict_words([words])[0] == expected


# --------------------------------------------------------------------------- entity scores
def _scripted(model: NerModel, words: dict[str, dict[str, float]]):
    """The model's graph replaced by log-probabilities written by hand: a token listed in `words` gets
    its label probabilities (the rest spread evenly over the other labels), any other token O at 0.92.
    `GraphRunner.run_feeds` (graph inputs -> logits) is what every inference path calls, except a read of the
    graph's own decoding columns, which a scripted graph does not have."""

    def run(feeds, decoded=False):
        assert not decoded
        ids = feeds["input_ids"]
        logits = np.zeros((*ids.shape, len(model.labels)), dtype=np.float32)
        for j, row in enumerate(ids.tolist()):
            for k, token_id in enumerate(row):
                given = words.get(model._tokenizer.id_to_token(token_id), {"O": 0.92})
                rest = (1.0 - sum(given.values())) / (len(model.labels) - len(given))
                logits[j, k] = np.log([given.get(label, rest) for label in model.labels])
        return logits

    model._runner.run_feeds = run  # type: ignore[method-assign]
    model._runner.has_decoding_columns = False
    return model


REUTERS = "John Smith of Reuters visited Paris on day 0."
REUTERS_WORDS = {
    "john": {"B-PER": 0.90, "I-PER": 0.05},
    "smith": {"I-PER": 0.70, "B-PER": 0.20},
    "reuters": {"I-ORG": 0.583, "B-ORG": 0.203, "O": 0.15},  # I-ORG wins but cannot start an entity
    "paris": {"B-LOC": 0.80, "I-LOC": 0.10},
}


@pytest.mark.parametrize(
    "word_split, aggregation",
    [("text", "first"), ("text", "average"), ("text", "max"), ("pipeline", "first"), ("pipeline", "simple")],
)
def test_constrained_entity_score_is_the_probability_of_its_type(
    tiny_bundle: Path, word_split: str, aggregation: str
) -> None:
    """Issue #13's Reuters case: the search repairs Reuters' I-ORG (0.583) to B-ORG (0.203); its score is
    the mean over the entity's words of P(B-X) + P(I-X), here 0.786, not the repaired label's 0.203."""
    model = _scripted(NerModel.load(tiny_bundle, precision="fp32", word_split=word_split), REUTERS_WORDS)
    found = {e.text: (e.label, e.score) for e in model.predict([REUTERS], aggregation=aggregation)[0]}
    assert found.keys() == {"John Smith", "Reuters", "Paris"}
    assert found["Reuters"][0] == "ORG" and found["Reuters"][1] == pytest.approx(0.583 + 0.203, abs=1e-5)
    assert found["John Smith"][1] == pytest.approx(((0.90 + 0.05) + (0.70 + 0.20)) / 2, abs=1e-5)
    assert found["Paris"][1] == pytest.approx(0.80 + 0.10, abs=1e-5)
    assert model(REUTERS) == model.predict([REUTERS])[0]


def test_argmax_entity_score_stays_the_chosen_labels_probability(tiny_bundle: Path) -> None:
    """argmax keeps transformers' pipeline score (mean of the chosen labels' probabilities), for parity;
    the stray I-ORG is an entity of its own there, scored by its own probability."""
    model = _scripted(NerModel.load(tiny_bundle, precision="fp32", decoding="argmax"), REUTERS_WORDS)
    found = {e.text: (e.label, e.score) for e in model(REUTERS)}
    assert found["Reuters"] == ("ORG", pytest.approx(0.583, abs=1e-5))
    assert found["John Smith"][1] == pytest.approx((0.90 + 0.70) / 2, abs=1e-5)
    assert found["Paris"][1] == pytest.approx(0.80, abs=1e-5)


def test_cpu_batches_pad_a_window_by_at_most_a_third_of_its_width(tiny_bundle: Path) -> None:
    # on onnxruntime's CPU kernels padding costs what text costs and batching saves little per row
    import random

    from conftest import WORDS

    model = NerModel.load(tiny_bundle, streams=1)
    assert model.shares_batch(30, 40) and not model.shares_batch(29, 40) and model.shares_batch(40, 40)
    rng = random.Random(5)
    plain = [w for w in WORDS if not w.startswith("##")]
    texts = [" ".join(rng.choices(plain, k=rng.randint(1, 60))) for _ in range(40)]
    runs: list[tuple[list[int], int]] = []  # (each row's tokens, the padded width) per session run
    session = model._session
    run = session.run

    def recording(names, feeds):  # type: ignore[no-untyped-def]
        mask = feeds["attention_mask"]
        runs.append((mask.sum(axis=1).tolist(), mask.shape[1]))
        return run(names, feeds)

    session.run = recording
    try:
        model.predict(texts, batch_size=16)
    finally:
        del session.run
    assert sum(len(rows) for rows, _ in runs) == len(texts)
    assert all(4 * min(rows) >= 3 * width for rows, width in runs)
    assert any(min(rows) < width for rows, width in runs)  # rows of close widths still share a padded batch


def test_warm_up_runs_the_largest_batch_on_the_session_and_every_stream(tiny_bundle: Path) -> None:
    model = NerModel.load(tiny_bundle, precision="fp32", threads=2, streams=2, token_budget=3 * 128)
    streams = model._streams
    assert streams is not None and model.manifest.max_length == 128
    shapes: dict[str, list[tuple[int, ...]]] = {"model": [], "streams": []}

    def recording(session: Any, name: str) -> None:
        run = session.run

        def recorded(names, feeds):  # type: ignore[no-untyped-def]
            shapes[name].append(feeds["input_ids"].shape)
            return run(names, feeds)

        session.run = recorded

    recording(model._session, "model")
    recording(streams.session, "streams")
    model.warm_up(batch_size=8)
    # 8 full-width windows would pass the token budget of 3 windows: the largest batch predict makes is 3;
    # twice, as onnxruntime allocates a shape's second run differently from its first
    assert shapes == {"model": [(3, 128)] * 2, "streams": [(3, 128)] * 4}
    with pytest.raises(ValueError, match="batch_size"):
        model.warm_up(batch_size=0)
