"""`evaluate_target(config)`: entity-level scores of a bundle or a checkpoint, whichever a path holds.

A bundle is scored by the runtime alone (`runtime.evaluate.evaluate_bundle`), so scoring one works in
an install without torch; anything else goes to `finetune.evaluate`, imported only then, which scores
a checkpoint through PyTorch or says the path is neither. The choice is made once, when the
`EvalConfig` is built: a bundle-only option (another backend, a non-first aggregation) given for a
checkpoint is refused there, as a `ValueError` naming it, before anything loads. This lives in the
package root because it is the one place that picks between the runtime and the training stack.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ner_export.runtime.decoding import DECODINGS, STRATEGIES, WORD_SPLITS
from ner_export.runtime.evaluate import EvalReport, evaluate_bundle
from ner_export.runtime.manifest import BACKENDS, is_bundle

__all__ = ["EvalConfig", "evaluate_target", "CHECKPOINT_AGGREGATIONS"]

CHECKPOINT_AGGREGATIONS = ("first", "simple")  # PyTorch tagging labels each word by its first token


@dataclass(frozen=True)
class EvalConfig:
    """What to score and how. `target`: a bundle or a checkpoint directory; `data`: a CoNLL file with gold
    tags. `aggregation`, `word_split` and `backend` apply to bundles (as for `NerModel.load`); a checkpoint
    takes only the defaults. `bundle` records which of the two `target` is."""

    target: str
    data: str
    batch_size: int = 32
    aggregation: str = STRATEGIES[0]
    word_split: str = WORD_SPLITS[0]
    decoding: str = DECODINGS[0]
    backend: str = BACKENDS[0]
    bundle: bool = field(init=False)

    def __post_init__(self) -> None:
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
        )
    from ner_export.finetune import evaluate  # a checkpoint, or neither (evaluate says so)

    return evaluate(config.target, config.data, batch_size=config.batch_size, decoding=config.decoding)
