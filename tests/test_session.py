"""Graph inputs: the one-row build (a lone text) against the padded batch build."""

from __future__ import annotations

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
