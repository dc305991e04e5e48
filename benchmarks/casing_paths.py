"""What each way of running a casing model gives on raw text, and how often it agrees with `ner_pipeline`.

    python -m ner_export.benchmarks.casing_paths CHECKPOINT BUNDLE --data test.txt [--sentences N] [-q]

A model trained with casing reads capitalisation classes from token_type_ids. Its config.json is
marked so that stock transformers refuses it; unmarked (model_type "bert"), stock transformers loads
it and feeds zeros there, silently. This script measures what that costs against the paths that feed
casing: `ner_pipeline` on the checkpoint (PyTorch), Optimum's ORTModel on the bundle's int8 graph
through `ner_pipeline`, and the runtime. The degraded path is
rebuilt on purpose: the stock `TokenClassificationPipeline` around the loaded model, whose tokenizer
gives all-zero token types, exactly what `pipeline("token-classification", model=CKPT)` runs on an
unmarked checkpoint.

Every path reads each sentence alone as raw text (its words joined by spaces), with the pipeline's
"first" aggregation; entities become word tags with `entities_to_word_tags` and are scored against
the gold tags (entity F1, micro). The runtime row uses its defaults (constrained decoding) and a
second row its pipeline-parity settings (argmax, pipeline word split). Each row also counts the
sentences whose entities (label and span) are exactly `ner_pipeline`'s. Markdown goes to stdout,
progress to stderr.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ner_export.runtime.conll import read_conll
from ner_export.runtime.errors import NerExportError
from ner_export.runtime.labels import entity_scores
from ner_export.runtime.manifest import BundleManifest

from .bench import entities_to_word_tags

__all__ = ["PATHS", "PathResult", "measure", "render"]

Spans = list[tuple[str, int, int]]
_TEXTS_PER_CALL = 256  # texts per call, so the progress bar moves


PATHS = {
    "ner_pipeline": "ner_pipeline on the PyTorch checkpoint (casing fed)",
    "stock_zeros": "stock transformers pipeline, token types all zero (the silent path of an unmarked checkpoint)",
    "optimum_int8": "Optimum ORTModel on the bundle's int8 graph, through ner_pipeline",
    "runtime_int8": "runtime NerModel, int8, defaults (constrained decoding)",
    "runtime_int8_parity": "runtime NerModel, int8, pipeline parity (argmax, pipeline word split)",
}
"""Each path measured, in order: key and description."""


@dataclass(frozen=True)
class PathResult:
    key: str
    name: str
    f1: float
    same_as_ner_pipeline: int  # sentences whose entities are exactly ner_pipeline's
    sentences: int


def _pipeline_spans(pipe: object) -> Callable[[list[str]], list[Spans]]:
    def run(texts: list[str]) -> list[Spans]:
        rows = pipe(texts, batch_size=32)  # type: ignore[operator]
        return [[(e["entity_group"], int(e["start"]), int(e["end"])) for e in row] for row in rows]

    return run


def _path_runners(checkpoint: Path, bundle: Path) -> dict[str, Callable[[list[str]], list[Spans]]]:
    from optimum.onnxruntime import ORTModelForTokenClassification
    from transformers import pipeline

    from ner_export.finetune import checkpoint_casing, load_checkpoint, load_config, load_tokenizer, ner_pipeline
    from ner_export.runtime import BenchMismatchError, NerModel

    model, tokenizer = load_checkpoint(str(checkpoint))
    if checkpoint_casing(model.config) != BundleManifest.read(bundle).casing:
        raise BenchMismatchError(f"{checkpoint} and {bundle} disagree on casing: measure a bundle with its checkpoint")
    options = {"aggregation_strategy": "first", "device": "cpu"}
    stock = pipeline("token-classification", model=model, tokenizer=tokenizer, **options)
    graph = BundleManifest.read(bundle).graph_for("cpu", "int8").file  # the runtime's default graph too
    ort_model = ORTModelForTokenClassification.from_pretrained(bundle, config=load_config(bundle), file_name=graph)
    runtime = NerModel.load(bundle)
    parity = NerModel.load(bundle, word_split="pipeline", decoding="argmax")

    def entities(model: NerModel) -> Callable[[list[str]], list[Spans]]:
        return lambda texts: [[(e.label, e.start, e.end) for e in row] for row in model.predict(texts)]

    return {
        "ner_pipeline": _pipeline_spans(ner_pipeline(model, tokenizer, **options)),
        "stock_zeros": _pipeline_spans(stock),
        "optimum_int8": _pipeline_spans(ner_pipeline(ort_model, load_tokenizer(str(bundle)), **options)),
        "runtime_int8": entities(runtime),
        "runtime_int8_parity": entities(parity),
    }


def measure(
    checkpoint: str | Path, bundle: str | Path, data: str | Path, sentences: int | None = None, progress: bool = True
) -> list[PathResult]:
    """One `PathResult` per path, `ner_pipeline`'s first, on the first `sentences` of the CoNLL file `data`."""
    from tqdm.auto import tqdm

    read = read_conll(data)[:sentences] if sentences else read_conll(data)
    words = [list(s.words) for s in read]
    gold = [list(s.tags) for s in read]
    texts = [" ".join(w) for w in words]
    spans: dict[str, list[Spans]] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # third-party deprecations, nothing a reader can act on
        paths = _path_runners(Path(checkpoint), Path(bundle))
        for key, run in paths.items():
            found: list[Spans] = []
            for start in tqdm(range(0, len(texts), _TEXTS_PER_CALL), desc=key, disable=not progress, file=sys.stderr):
                found += run(texts[start : start + _TEXTS_PER_CALL])
            spans[key] = found
    reference = spans["ner_pipeline"]
    return [
        PathResult(
            key,
            PATHS[key],
            entity_scores(gold, [entities_to_word_tags(w, row) for w, row in zip(words, rows, strict=True)]).f1,
            sum(sorted(a) == sorted(b) for a, b in zip(rows, reference, strict=True)),
            len(texts),
        )
        for key, rows in spans.items()
    ]


def render(results: Sequence[PathResult], checkpoint: str, bundle: str, data: str) -> str:
    """The Markdown table of `results`."""
    n = results[0].sentences if results else 0
    lines = [
        f"Checkpoint `{checkpoint}`, bundle `{bundle}`, data `{data}` (first {n} sentences, each read alone "
        'as raw text, aggregation "first"; entity F1 against the gold tags)',
        "",
        "| path | entity F1 (raw text) | sentences with ner_pipeline's entities |",
        "|---|---|---|",
    ]
    for r in results:
        lines.append(f"| {r.name} | {r.f1:.4f} | {r.same_as_ner_pipeline} of {r.sentences} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", help="checkpoint folder (trained with casing)")
    parser.add_argument("bundle", help="its bundle folder")
    parser.add_argument("--data", required=True, help="CoNLL file with gold tags")
    parser.add_argument("--sentences", type=int, default=None, help="only the first N sentences")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    try:
        results = measure(args.checkpoint, args.bundle, args.data, args.sentences, progress=not args.quiet)
    except NerExportError as exc:
        sys.exit(f"error: {exc}")
    print(render(results, args.checkpoint, args.bundle, args.data))


if __name__ == "__main__":
    main()
