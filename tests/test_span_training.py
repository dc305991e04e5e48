"""Training on span files: the context reason names what marks documents in a span file."""

from __future__ import annotations

import pytest

from ner_export.finetune import Relatedness, choose_context


@pytest.mark.parametrize(
    ("documents", "relatedness", "chosen", "reason"),
    [
        (3, None, "document", "chosen automatically: the training file's records name 3 documents (doc_id), so"),
        (1, None, "none", "chosen automatically: no doc_id divides the training file's records into documents, so"),
        (
            1,
            Relatedness(0.6, 0.1, 100),
            "document",
            "no doc_id divides the training file's records into documents, but",
        ),
    ],
)
def test_the_context_reason_of_a_span_file_names_its_doc_ids(
    documents: int, relatedness: Relatedness | None, chosen: str, reason: str
) -> None:
    mode, why = choose_context("auto", documents, relatedness, "spans")
    assert mode == chosen and reason in why and "-DOCSTART-" not in why
    assert choose_context("none", 2, None, "spans") == (
        "none",
        "as asked; the training file's records name 2 documents (doc_id)",
    )
    assert "-DOCSTART- lines" in choose_context("auto", 2)[1]  # a CoNLL file's reason is unchanged
