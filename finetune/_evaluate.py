"""Checkpoint scoring, and `evaluate`, which scores a bundle or a checkpoint alike.

A checkpoint's words are tagged through PyTorch (`tag_words`, with the context and window it was
trained with); the reading of the data file and the scores are the runtime's (`runtime.evaluate`),
which scores bundles with no torch at all. Both paths read the file's pre-split words, so a
checkpoint's F1 and its bundle's are directly comparable.
"""

from __future__ import annotations

from pathlib import Path

from ner_export.runtime.errors import NotAModelError
from ner_export.runtime.evaluate import EvalReport, evaluate_bundle, evaluate_tags
from ner_export.runtime.manifest import MANIFEST_NAME, is_bundle

from ._checkpoint import checkpoint_context, load_checkpoint
from ._tagging import tag_words


def evaluate_checkpoint(
    checkpoint: str | Path, data: str | Path, batch_size: int = 32, decoding: str = "constrained"
) -> EvalReport:
    """Score the checkpoint folder `checkpoint` on the CoNLL file `data`, decoded as `decoding`."""

    def tagger(words: list[list[str]], documents: list[int]) -> list[list[str]]:
        model, tokenizer = load_checkpoint(str(checkpoint))
        context, max_length = checkpoint_context(model.config)
        return tag_words(model, tokenizer, words, batch_size, max_length, context, documents, decoding)

    return evaluate_tags(checkpoint, "checkpoint", data, tagger)


def evaluate(target: str | Path, data: str | Path, batch_size: int = 32, decoding: str = "constrained") -> EvalReport:
    """Score `target`, a bundle or a checkpoint directory, on the CoNLL file `data`, decoded as `decoding`."""
    if is_bundle(target):
        return evaluate_bundle(target, data, batch_size, decoding)
    if (Path(target) / "config.json").is_file():
        return evaluate_checkpoint(target, data, batch_size, decoding)
    raise NotAModelError(f"{target}: neither a bundle ({MANIFEST_NAME}) nor a checkpoint (config.json)")
