"""Compare bundles of one checkpoint exported with different int8 settings, in one run.

    python -m ner_export.benchmarks.compare_int8 --data test.txt NAME=BUNDLE [NAME=BUNDLE ...]

Prints a Markdown table: test F1 from pre-split words, int8 graph size, throughput at batch 32 (best
of three rounds) and single-sentence p50 (bundles take turns on blocks of 50 sentences). Kept apart
from `ner-export bench` because it answers a different question: which export settings to ship.
"""

from __future__ import annotations

import argparse
import warnings
from pathlib import Path

import numpy as np

from ner_export.runtime import NerModel
from ner_export.runtime.conll import read_conll
from ner_export.runtime.labels import entity_scores
from ner_export.runtime.manifest import BundleManifest

from .timing import measure_speed

__all__ = ["compare"]


def compare(data: str, bundles: dict[str, str], rounds: int = 3, latency_sentences: int = 500) -> str:
    """The comparison table for `bundles` ({name: bundle directory}) on the CoNLL file `data`."""
    sentences = read_conll(data)
    words = [list(s.words) for s in sentences]
    gold = [list(s.tags) for s in sentences]
    texts = [" ".join(w) for w in words]
    models = {name: NerModel.load(path) for name, path in bundles.items()}
    rows = {}
    for name, model in models.items():
        graph = Path(bundles[name]) / BundleManifest.read(Path(bundles[name])).graph_for("cpu", "int8").file
        rows[name] = {
            "f1": entity_scores(gold, model.predict_words(words)).f1,
            "mb": graph.stat().st_size / 1e6,
            "sps": [],
            "lat": [],
        }
    for name, speed in measure_speed(models, texts, rounds, latency_sentences).items():
        rows[name].update(speed)
    lines = [
        "| int8 variant | test F1 (pre-split) | int8 graph MB | sent/s @32 (best of rounds) | p50 ms |",
        "|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        lines.append(
            f"| {name} | {r['f1']:.4f} | {r['mb']:.1f} | {max(r['sps']):.0f} "
            f"| {1000 * float(np.median(r['lat'])):.2f} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("bundles", nargs="+", help="NAME=BUNDLE_DIR")
    args = parser.parse_args()
    bundles = dict(item.split("=", 1) for item in args.bundles)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        print(compare(args.data, bundles, args.rounds))


if __name__ == "__main__":
    main()
