"""`evaluate_target(config)`: entity-level scores of a bundle or a checkpoint, whichever a path holds.

A bundle is scored by the runtime alone (`runtime.evaluate.evaluate_bundle`), so scoring one works in
an install without torch; a checkpoint is tagged through PyTorch (`ner_export.finetune`, imported only
then) and scored by the runtime's `evaluate_tags`; a path that is neither is a `NotAModelError`. The
choice is made once, when the `EvalConfig` is built: a bundle-only option (another backend, a
non-first aggregation) given for a checkpoint is refused there, as a `ValueError` naming it, before
anything loads. This lives in the package root because it is the one place that picks between the
runtime and the training stack.

The data file is CoNLL or spans (`runtime.labeled_data`: by extension unless `data_format` names it).
On a span file a bundle predicts each record's raw text and is scored by exact spans; a checkpoint is
scored on the record's words (word level), since PyTorch tagging reads pre-split words. The report
says which (`EvalReport.scoring`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ner_export.runtime.decoding import DECODINGS, STRATEGIES, WORD_SPLITS
from ner_export.runtime.errors import NotAModelError
from ner_export.runtime.evaluate import EvalReport, evaluate_bundle, evaluate_tags
from ner_export.runtime.labeled_data import DATA_FORMATS
from ner_export.runtime.manifest import BACKENDS, MANIFEST_NAME, is_bundle
from ner_export.runtime.span_records import OFFSET_UNITS

__all__ = ["EvalConfig", "evaluate_target", "CHECKPOINT_AGGREGATIONS"]

CHECKPOINT_AGGREGATIONS = ("first", "simple")  # PyTorch tagging labels each word by its first token


@dataclass(frozen=True)
class EvalConfig:
    """What to score and how. `target`: a bundle or a checkpoint directory; `data`: a CoNLL or span file
    with gold labels, read as `data_format` ("auto": by extension) with span `offsets` counting code
    points or UTF-16 units, bad span records skipped and reported with `skip_bad`. `aggregation`,
    `word_split` and `backend` apply to bundles (as for `NerModel.load`); a checkpoint takes only the
    defaults. `bundle` records which of the two `target` is."""

    target: str
    data: str
    batch_size: int = 32
    aggregation: str = STRATEGIES[0]
    word_split: str = WORD_SPLITS[0]
    decoding: str = DECODINGS[0]
    backend: str = BACKENDS[0]
    data_format: str = DATA_FORMATS[0]
    offsets: str = OFFSET_UNITS[0]
    skip_bad: bool = False
    bundle: bool = field(init=False)

    def __post_init__(self) -> None:
        if self.data_format not in DATA_FORMATS:
            raise ValueError(f"data_format must be one of {', '.join(DATA_FORMATS)}, got {self.data_format!r}")
        if self.offsets not in OFFSET_UNITS:
            raise ValueError(f"offsets must be one of {', '.join(OFFSET_UNITS)}, got {self.offsets!r}")
        object.__setattr__(self, "bundle", is_bundle(self.target))
        if self.bundle:
            return
        if self.backend != BACKENDS[0]:
            raise ValueError(f"--backend {self.backend} applies to bundles: a checkpoint is scored through PyTorch")
        if self.aggregation not in CHECKPOINT_AGGREGATIONS:
            raise ValueError(
                f"--aggregation {self.aggregation} applies to bundles: a checkpoint is scored by each word's first "
                "token (first or simple)"
            )


def evaluate_target(config: EvalConfig) -> EvalReport:
    """Score `config.target` on `config.data`: a bundle through the runtime, a checkpoint through PyTorch."""
    if config.bundle:
        return evaluate_bundle(
            config.target,
            config.data,
            batch_size=config.batch_size,
            decoding=config.decoding,
            aggregation=config.aggregation,
            word_split=config.word_split,
            backend=config.backend,
            data_format=config.data_format,
            offsets=config.offsets,
            skip_bad=config.skip_bad,
        )
    if not (Path(config.target) / "config.json").is_file():
        raise NotAModelError(f"{config.target}: neither a bundle ({MANIFEST_NAME}) nor a checkpoint (config.json)")
    from ner_export.finetune import checkpoint_context, load_checkpoint, tag_words

    def tagger(words: list[list[str]], documents: list[int]) -> list[list[str]]:
        model, tokenizer = load_checkpoint(config.target)
        context, max_length = checkpoint_context(model.config)
        return tag_words(model, tokenizer, words, config.batch_size, max_length, context, documents, config.decoding)

    return evaluate_tags(
        config.target, "checkpoint", config.data, tagger, config.data_format, config.offsets, config.skip_bad
    )
