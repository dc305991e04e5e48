"""What both engines do around loading the model: warm it up, log the decision on batching, and
describe the bundle and the process in `/info`.

`ner-export serve` loads in its batcher's worker thread, a Ray Serve replica in its constructor; both
run the same warm-up (the first runs allocate onnxruntime's arenas, which would otherwise land on the
first requests), say the same thing about cross-request batching, and report the same bundle sha256
and the same check that no training library was imported.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

from ner_export.runtime import NerModel
from ner_export.runtime.manifest import MANIFEST_NAME, GraphSpec, sha256_file

__all__ = [
    "HEAVY_MODULES",
    "WARMUP_TEXTS",
    "warm_up",
    "log_model_loaded",
    "log_batching_decision",
    "bundle_sha256",
    "heavy_modules_imported",
]

HEAVY_MODULES = ("torch", "transformers", "optimum")  # a serving process must never import these
WARMUP_TEXTS = ("a", "John Smith lives in Paris .", " ".join(["word"] * 60))


def warm_up(model: NerModel, batch_size: int) -> None:
    """Run a few texts, batched and alone, twice, then the largest batch the server makes on the model's
    session and on every stream (`NerModel.warm_up`): first runs allocate onnxruntime's arenas for these
    shapes, and the server's batches run on both sessions (the streams' one is made on first use), whose
    memory would otherwise grow under the first requests that need it."""
    for _ in range(2):
        model.predict(list(WARMUP_TEXTS), batch_size=batch_size)
        for text in WARMUP_TEXTS:
            model.predict([text])
    model.warm_up(batch_size)


def log_model_loaded(logger: logging.Logger, seconds: float, model: NerModel, graph: GraphSpec, threads: int) -> None:
    """One line once the model is loaded and warmed: how long it took, which graph, how many threads."""
    logger.info(
        "model loaded and warmed in %.2f s (%s graph %s, %d threads)", seconds, model.precision, graph.file, threads
    )


def log_batching_decision(logger: logging.Logger, model: NerModel, allow_batch_dependent: bool) -> None:
    """Say at start whether requests are batched together, and why (the graph's batch invariance)."""
    if model.batch_invariant:
        logger.info(
            "micro-batching across requests: the %s graph is batch-invariant "
            "(a text's entities never depend on its batch)",
            model.precision,
        )
    elif allow_batch_dependent:
        logger.warning(
            "micro-batching across requests on the %s graph, which is NOT batch-invariant (--allow-batch-dependent): "
            "a text's scores may shift slightly with the other texts in its batch",
            model.precision,
        )
    else:
        logger.warning(
            "the %s graph is not batch-invariant: batching only within each request, never across requests, so every "
            "answer equals offline model.predict(texts); pass --allow-batch-dependent to batch across requests "
            "(answers may then shift slightly), or serve a batch-invariant graph (e.g. --precision fp32)",
            model.precision,
        )


def bundle_sha256(bundle_dir: str | os.PathLike[str]) -> str:
    """The sha256 of the bundle's manifest, which names every file's own sha256: the bundle's identity."""
    return sha256_file(Path(bundle_dir) / MANIFEST_NAME)


def heavy_modules_imported() -> dict[str, bool]:
    """For each of `HEAVY_MODULES`, whether this process has imported it (`/info` shows it)."""
    return {name: name in sys.modules for name in HEAVY_MODULES}
