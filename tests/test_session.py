"""Graph inputs: the one-row build (a lone text) against the padded batch build; the shared CPU arena."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ner_export.runtime.session import batch_inputs


@pytest.mark.parametrize("token_types", [True, False])
@pytest.mark.parametrize("as_arrays", [True, False])
@pytest.mark.parametrize("types", [None, "full", "short", "none_given"])
def test_one_row_feeds_equal_the_padded_build(token_types: bool, as_arrays: bool, types: str | None) -> None:
    row = [7, 8, 9, 10, 11]
    classes = {None: None, "full": [[1, 2, 0, 3, 1]], "short": [[2, 1]], "none_given": []}[types]
    rows = [np.asarray(row, dtype=np.int64)] if as_arrays else [row]
    if as_arrays and classes:
        classes = [np.asarray(c, dtype=np.int64) for c in classes]
    options = {"pad_id": 0, "prefix": [101], "suffix": [102], "types": classes, "token_types": token_types}
    lone = batch_inputs(rows, **options)
    padded = batch_inputs(rows, width=len(row) + 3, **options)  # one column wider: the padded build
    names = {"input_ids", "attention_mask"} | ({"token_type_ids"} if token_types else set())
    assert set(lone) == set(padded) == names
    for name, array in lone.items():
        assert array.dtype == np.int64 and array.shape == (1, len(row) + 2), name
        np.testing.assert_array_equal(array, padded[name][:, :-1], err_msg=name)
    assert lone["input_ids"].tolist() == [[101, 7, 8, 9, 10, 11, 102]]


def test_a_shared_arena_reaches_every_session_of_the_model_and_changes_no_answer(tiny_bundle: Path) -> None:
    from ner_export.runtime import NerModel
    from ner_export.runtime.session import shared_cpu_arena

    entries = shared_cpu_arena()
    assert entries == {"session.use_env_allocators": "1"} and shared_cpu_arena() is entries  # registered once
    plain = NerModel.load(tiny_bundle, precision="fp32", threads=2, streams=2)
    shared = NerModel.load(tiny_bundle, precision="fp32", threads=2, streams=2, shared_arena=True)
    texts = [" ".join(["Paris"] * n) for n in (1, 5, 40, 200)] + ["John Smith lives in London ."]
    assert shared.predict(texts, stream=True) == plain.predict(texts, stream=True)
    assert shared.predict(texts) == plain.predict(texts)
    streams = shared._streams
    assert streams is not None and streams._session is not None  # the streams' session was made and ran
    for session in (shared._session, streams.session):
        assert session.get_session_options().get_session_config_entry("session.use_env_allocators") == "1"
    with pytest.raises(RuntimeError, match="does not have configuration"):  # its own arena, as by default
        plain._session.get_session_options().get_session_config_entry("session.use_env_allocators")


def test_a_shared_arena_is_refused_on_openvino(tiny_bundle: Path) -> None:
    from ner_export.runtime import NerModel

    with pytest.raises(ValueError, match="shared_arena is onnxruntime's"):
        NerModel.load(tiny_bundle, backend="openvino", shared_arena=True)
