"""`ner-export demo`: the whole pipeline in about two minutes on a laptop CPU, offline.

It fine-tunes the default base model on the small sample this project ships (synthetic sentences,
written by the project), exports the int8 bundle, prints the entities the bundle finds in a few new
sentences, and compares PyTorch with the bundle on the sample's test split: entity F1 from the same
pre-split words, and single-sentence latency (transformers' pipeline vs `NerModel`, taking turns on
blocks of sentences). It lives in the package root because it drives every stage, as a user would.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ner_export.runtime import NerModel

__all__ = ["DemoResult", "run_demo", "sample_path", "DEMO_SENTENCES"]

DEMO_SENTENCES = (
    "Maria Lopez flew from Madrid to Toronto on Monday to meet executives of Northwind Logistics.",
    "The Bank of England said on Tuesday that inflation in Britain had slowed.",
    "Kenji Watanabe scored twice as Osaka Blue beat Lyon United in the Champions Trophy final.",
    "Zoë Müller, a spokeswoman for Helios Energy, declined to comment on the French proposal.",
)


def sample_path(split: str) -> Path:
    """Path of the packaged sample's `train`, `dev` or `test` file."""
    return Path(str(resources.files("ner_export.finetune") / "sample" / f"{split}.txt"))


@dataclass(frozen=True)
class DemoResult:
    """What the demo measured: where it wrote, and PyTorch's and the bundle's F1 and median latency."""

    checkpoint: str
    bundle: str
    pytorch_f1: float
    bundle_f1: float
    pytorch_p50_ms: float
    bundle_p50_ms: float


def run_demo(
    workdir: Path,
    *,
    base_model: str | None = None,
    epochs: int = 8,
    progress: bool = True,
    echo: Callable[[str], None] = print,
) -> DemoResult:
    """Fine-tune on the sample, export, predict and compare; returns the figures it printed."""
    from ner_export.runtime import NerModel

    workdir = Path(workdir)
    checkpoint, bundle = workdir / "checkpoint", workdir / "bundle"
    _fine_tune(checkpoint, base_model=base_model, epochs=epochs, progress=progress, echo=echo)
    _export(checkpoint, bundle, progress=progress, echo=echo)
    model = NerModel.load(bundle)
    _show_entities(model, echo)
    result, sentences, casing = _compare_with_pytorch(checkpoint, bundle, model)
    _print_comparison(result, sentences, echo)
    if casing:
        echo(
            "the model reads casing classes in token_type_ids, which stock tools would fill with zeros, so "
            "stock transformers and Optimum refuse its config.json; load it with "
            f"ner_export.finetune.ner_pipeline({str(checkpoint)!r}) or NerModel.load({str(bundle)!r})"
        )
    return result


def _fine_tune(
    checkpoint: Path, *, base_model: str | None, epochs: int, progress: bool, echo: Callable[[str], None]
) -> None:
    """Step 1: fine-tune the base model on the sample's train split, picking the epoch on its dev split."""
    from ner_export.finetune import TrainConfig, finetune

    echo(f"1/3 fine-tuning on the packaged sample ({sample_path('train')})")
    trained = finetune(
        TrainConfig(
            train=str(sample_path("train")),
            dev=str(sample_path("dev")),
            out=str(checkpoint),
            base_model=base_model,
            epochs=epochs,
            batch_size=16,
            learning_rate=1e-4,
            max_length=64,
            force=True,
            progress=progress,
            context="none",  # the sample's sentences are independent: neighbours would only be noise
        )
    )
    echo(f"    best dev F1 {trained.best_dev_f1:.3f} after {trained.train_seconds:.0f} s")


def _export(checkpoint: Path, bundle: Path, *, progress: bool, echo: Callable[[str], None]) -> None:
    """Step 2: export the checkpoint to the int8 bundle."""
    from ner_export.export import ExportConfig, export_bundle

    echo("2/3 exporting the int8 bundle")
    exported = export_bundle(ExportConfig(model_dir=str(checkpoint), out=str(bundle), force=True, progress=progress))
    echo(f"    {bundle}: int8 graph {exported.sizes_mb.get('model_int8.onnx', 0):.1f} MB")


def _show_entities(model: NerModel, echo: Callable[[str], None]) -> None:
    """Step 3: the entities the bundle finds in sentences it was not trained on."""
    echo("3/3 entities found by the bundle")
    for sentence, entities in zip(DEMO_SENTENCES, model.predict(list(DEMO_SENTENCES)), strict=True):
        found = ", ".join(f"{e.text} [{e.label}]" for e in entities) or "(none)"
        echo(f"  {sentence}\n    -> {found}")


def _compare_with_pytorch(checkpoint: Path, bundle: Path, model: NerModel) -> tuple[DemoResult, int, bool]:
    """Entity F1 on the sample's test split from the same words, and single-sentence latency (the
    transformers pipeline against the bundle, taking turns on blocks of sentences); also the number of
    test sentences and whether the model reads casing classes."""
    from ner_export.benchmarks import block_latencies
    from ner_export.finetune import checkpoint_casing, load_checkpoint, ner_pipeline, read_conll, tag_words
    from ner_export.runtime.labels import entity_scores

    test = read_conll(sample_path("test"))
    words = [list(s.words) for s in test]
    gold = [list(s.tags) for s in test]
    torch_model, tokenizer = load_checkpoint(str(checkpoint))
    pytorch_f1 = entity_scores(gold, tag_words(torch_model, tokenizer, words)).f1
    bundle_f1 = entity_scores(gold, model.predict_words(words)).f1
    texts = [" ".join(w) for w in words]
    reference = ner_pipeline(torch_model, tokenizer, aggregation_strategy="first", device="cpu")
    times = block_latencies(
        {"torch": lambda i: reference(texts[i]), "bundle": lambda i: model(texts[i])}, len(texts), block=25
    )
    result = DemoResult(
        str(checkpoint),
        str(bundle),
        pytorch_f1,
        bundle_f1,
        1000 * statistics.median(times["torch"]),
        1000 * statistics.median(times["bundle"]),
    )
    return result, len(texts), checkpoint_casing(torch_model.config)


def _print_comparison(result: DemoResult, sentences: int, echo: Callable[[str], None]) -> None:
    """The comparison as a Markdown table, and the bundle's speed-up."""
    echo(f"\nOn the sample's {sentences} test sentences:")
    echo("| system              | entity F1 | p50 latency / sentence |")
    echo("|---------------------|-----------|------------------------|")
    echo(f"| PyTorch pipeline    | {result.pytorch_f1:9.3f} | {result.pytorch_p50_ms:18.2f} ms |")
    echo(f"| ner-export int8     | {result.bundle_f1:9.3f} | {result.bundle_p50_ms:18.2f} ms |")
    echo(f"bundle speed-up: {result.pytorch_p50_ms / result.bundle_p50_ms:.1f}x   (bundle at {result.bundle})")
