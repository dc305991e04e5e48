"""int8 schemes side by side: accuracy, batch invariance, speed and size, in one run.

    python -m ner_export.benchmarks.int8_schemes BUNDLE --data dev.txt [--calibration FILE]
        [--calibration-sentences 1000] [--schemes a,b,...] [--rounds 3] [--out FILE.md]

Every scheme is built here from the bundle's fused fp32 graph and calibrated on the same sentences
(`--calibration`, else the checkpoint's validation sample the bundle was validated on; never test
data), then measured on `--data` through the runtime: entity F1 from pre-split words (document
context as trained), how many raw texts get different entities alone and in a shuffled batch of 32,
sent/s at batch 32 (best of rounds), single-sentence p50 (schemes take turns on blocks of
sentences) and the int8 graph's size. A second table measures the word-embedding table's
reconstruction error per row, one scale per table against one per row.

The schemes (names as in `--schemes`):
- `dynamic-tensor`, `dynamic-row`: ONNX Runtime's dynamic int8 (activation scales per batch), the
  word table with one scale, or one per row.
- `static-tensor`, `static-row`, `static-row-percentile`: the same integer kernels with calibrated
  activation scales (`export.calibration`); `static-row` is the export's default.
- `qdq-minmax`, `qdq-percentile`, `qdq-entropy`: ONNX Runtime's static QDQ quantizer, per-channel,
  MatMuls only (it has no fused Attention), word table per row.
- `nbits`: `MatMulNBits` with 8-bit weights (block 32) and `accuracy_level=4`, which quantizes
  activations per row inside the kernel; Attention stays fp32, word table per row.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import shlex
import shutil
import sys
import tempfile
import warnings
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from ner_export.runtime import NerModel
from ner_export.runtime.conll import read_conll
from ner_export.runtime.labels import entity_scores
from ner_export.runtime.manifest import BundleManifest, GraphSpec, sha256_file

from .timing import measure_speed

__all__ = ["SCHEMES", "build_scheme", "compare", "embedding_errors"]

INT8 = "model_int8.onnx"
SCHEMES = (
    "dynamic-tensor",
    "dynamic-row",
    "static-tensor",
    "static-row",
    "static-row-percentile",
    "qdq-minmax",
    "qdq-percentile",
    "qdq-entropy",
    "nbits",
)
_DESCRIPTIONS = {
    "dynamic-tensor": "dynamic activations, word table one scale (the previous default)",
    "dynamic-row": "dynamic activations, word table per row",
    "static-tensor": "calibrated activation scales (minmax), word table one scale",
    "static-row": "calibrated activation scales (minmax), word table per row (the default)",
    "static-row-percentile": "calibrated activation scales (99.999th percentile), word table per row",
    "qdq-minmax": "ORT static QDQ MatMuls (minmax), attention fp32, word table per row",
    "qdq-percentile": "ORT static QDQ MatMuls (percentile), attention fp32, word table per row",
    "qdq-entropy": "ORT static QDQ MatMuls (entropy), attention fp32, word table per row",
    "nbits": "MatMulNBits 8-bit, accuracy_level 4 (per-row activations), attention fp32, word table per row",
}


def _quantize_qdq(
    fp32: Path, dest: Path, feeds: Sequence[dict[str, np.ndarray]], method: str, exclude: Sequence[str]
) -> None:
    """ONNX Runtime's static QDQ quantizer over the MatMuls, calibrated one window per run."""
    from onnxruntime import quantization as oq

    from ner_export.export import third_party_warnings_silenced

    class Reader(oq.CalibrationDataReader):
        # one window per run: the histogram calibrators stack outputs and fail on unequal lengths
        def __init__(self) -> None:
            self.set_range(0, len(feeds))

        def __len__(self) -> int:
            return len(feeds)

        def set_range(self, start_index: int, end_index: int) -> None:
            self.rows = iter(feeds[start_index:end_index])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.rows, None)

    from onnxruntime.quantization.shape_inference import quant_pre_process

    shaped = dest.with_name(dest.stem + ".shaped.onnx")
    with third_party_warnings_silenced(), contextlib.redirect_stdout(sys.stderr):
        # symbolic shape inference types the fused ops' outputs; without it the calibrators see no tensors
        quant_pre_process(str(fp32), str(shaped), skip_optimization=True, auto_merge=True)
        oq.quantize_static(
            str(shaped),
            str(dest),
            Reader(),
            quant_format=oq.QuantFormat.QDQ,
            op_types_to_quantize=["MatMul"],
            per_channel=True,
            activation_type=oq.QuantType.QUInt8,
            weight_type=oq.QuantType.QInt8,
            nodes_to_exclude=list(exclude),
            calibrate_method={
                "minmax": oq.CalibrationMethod.MinMax,
                "percentile": oq.CalibrationMethod.Percentile,
                "entropy": oq.CalibrationMethod.Entropy,
            }[method],
            extra_options={"OpTypesToExcludeOutputQuantization": ["MatMul"], "CalibStridedMinMax": 1},
        )


def _quantize_matmul_nbits(fp32: Path, dest: Path, exclude: Sequence[str]) -> None:
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    quantizer = MatMulNBitsQuantizer(
        onnx.load(str(fp32)),
        bits=8,
        block_size=32,
        is_symmetric=True,
        accuracy_level=4,
        nodes_to_exclude=list(exclude),
        op_types_to_quantize=("MatMul",),
    )
    quantizer.process()
    quantizer.model.save_model_to_file(str(dest), use_external_data_format=False)


def build_scheme(
    scheme: str, fp32: Path, dest: Path, feeds: Sequence[dict[str, np.ndarray]], exclude: Sequence[str] = ()
) -> dict[str, Any]:
    """Write `scheme`'s int8 graph of `fp32` to `dest` (calibrated on `feeds`); what a manifest would record."""
    from ner_export.export import Int8Config, quantize_graph
    from ner_export.export.embedding_rows import quantize_table_rows
    from ner_export.export.quantize import row_quantized_tables

    if scheme.startswith(("dynamic", "static")):
        activations, _, rest = scheme.partition("-")
        config = Int8Config(
            name=scheme,
            activations=activations,
            embeddings="per-row" if rest.startswith("row") else "per-tensor",
            calibration="percentile" if rest.endswith("percentile") else "minmax",
            nodes_to_exclude=tuple(exclude),
        )
        return quantize_graph(fp32, dest, config, feeds)
    with tempfile.TemporaryDirectory(dir=dest.parent) as work:
        stage = Path(work) / "stage.onnx"
        if scheme.startswith("qdq-"):
            _quantize_qdq(fp32, stage, feeds, scheme.removeprefix("qdq-"), exclude)
        elif scheme == "nbits":
            _quantize_matmul_nbits(fp32, stage, exclude)
        else:
            raise ValueError(f"unknown scheme {scheme!r}; choose from {', '.join(SCHEMES)}")
        tables = quantize_table_rows(stage, dest, row_quantized_tables(fp32))
    return {"method": scheme, "batch_invariant": None, "per_row_tables": tables}


def _variant_bundle(bundle: Path, graph: Path, dest: Path, quantization: dict[str, Any]) -> Path:
    """A bundle at `dest` whose int8 graph is `graph` (tokenizer and config copied, manifest rewritten)."""
    manifest = BundleManifest.read(bundle)
    dest.mkdir(parents=True)
    for name in (manifest.tokenizer_file, "config.json"):
        if (bundle / name).is_file():
            shutil.copyfile(bundle / name, dest / name)
    shutil.move(str(graph), dest / INT8)
    files = {name: sha256_file(dest / name) for name in sorted(p.name for p in dest.iterdir())}
    spec = GraphSpec(INT8, "cpu", "int8", quantization, batch_invariant=bool(quantization.get("batch_invariant")))
    replace(manifest, graphs=(spec,), files=files).write(dest)
    return dest


def _batch_dependent_texts(model: NerModel, texts: list[str], seed: int = 0) -> int:
    """Texts whose entities differ between a batch-1 run and a shuffled batch-32 run."""
    alone = [model.predict([t])[0] for t in texts]
    order = list(range(len(texts)))
    random.Random(seed).shuffle(order)
    shuffled = model.predict([texts[i] for i in order], batch_size=32)
    together: list[Any] = [None] * len(texts)
    for position, index in enumerate(order):
        together[index] = shuffled[position]

    def key(entities: Any) -> list[tuple[str, int, int]]:
        return [(e.label, e.start, e.end) for e in entities]

    return sum(key(a) != key(b) for a, b in zip(alone, together, strict=True))


def embedding_errors(bundle: Path, train: str | None = None) -> list[dict[str, Any]]:
    """Reconstruction error of the word table per row: one int8 scale for the table (as ONNX Runtime's
    Gather quantization stores it) against one per row; over all rows, and over the 10% of rows
    rarest in `train` (token counts of the training file, when given)."""
    import onnx
    from onnx import numpy_helper

    from ner_export.export.embedding_rows import quantize_rows, row_errors
    from ner_export.export.quantize import row_quantized_tables
    from ner_export.runtime.session import load_tokenizer

    manifest = BundleManifest.read(bundle)
    fp32 = bundle / manifest.graph_for("cpu", "fp32").file
    names = row_quantized_tables(fp32)
    tables = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(fp32)).graph.initializer if t.name in names}
    rare = None
    if train:
        tokenizer = load_tokenizer(bundle / manifest.tokenizer_file)
        counts = np.zeros(tokenizer.get_vocab_size(), dtype=np.int64)
        words = [list(s.words) for s in read_conll(train)]
        for encoding in tokenizer.encode_batch(words, is_pretokenized=True, add_special_tokens=False):
            np.add.at(counts, encoding.ids, 1)
        rare = np.argsort(counts, kind="stable")[: len(counts) // 10]
    rows = []
    for name, table in tables.items():
        # ONNX Runtime's per-tensor Gather quantization: asymmetric uint8 over the table's range
        low, high = min(float(table.min()), 0.0), max(float(table.max()), 0.0)
        scale = (high - low) / 255.0
        zero = np.round(-low / scale)
        per_tensor = (np.clip(np.round(table / scale) + zero, 0, 255) - zero) * scale
        q, row_scale = quantize_rows(table)
        per_row = q.astype(np.float32) * row_scale
        for label, rebuilt in (("one scale for the table (uint8)", per_tensor), ("one scale per row (int8)", per_row)):
            every = row_errors(table, rebuilt)
            row: dict[str, Any] = {"table": name, "scheme": label, "mean": every.mean, "worst": every.worst}
            if rare is not None:
                rarest = row_errors(table, rebuilt, rare)
                row.update(rare_mean=rarest.mean, rare_worst=rarest.worst)
            rows.append(row)
    return rows


def compare(
    bundle: str,
    data: str,
    *,
    calibration: str | None = None,
    calibration_sentences: int = 1000,
    schemes: Sequence[str] = SCHEMES,
    rounds: int = 3,
    latency_sentences: int = 500,
    train: str | None = None,
    command: str = "",
    say: Callable[[str], None] = lambda _: None,
) -> tuple[str, dict[str, Any]]:
    """(Markdown, JSON-ready results) of every scheme on the CoNLL file `data`."""
    from ner_export.export.quantize import small_embedding_tables
    from ner_export.export.validate import validation_sentences

    source = Path(bundle)
    manifest = BundleManifest.read(source)
    fp32 = source / manifest.graph_for("cpu", "fp32").file
    checkpoint = Path(manifest.source.get("checkpoint", ""))
    calibration_source, sentences = validation_sentences(checkpoint, calibration, calibration_sentences)
    reference = NerModel.load(source, precision="fp32")
    feeds = reference.graph_inputs([list(s.words) for s in sentences], [s.document for s in sentences])
    rows = read_conll(data)
    words, gold = [list(s.words) for s in rows], [list(s.tags) for s in rows]
    documents = [s.document for s in rows]
    texts = [" ".join(w) for w in words]
    keep_fp32 = small_embedding_tables(fp32)
    results: dict[str, dict[str, Any]] = {
        "fp32": {"f1": entity_scores(gold, reference.predict_words(words, documents=documents)).f1}
    }
    with tempfile.TemporaryDirectory(prefix="int8-schemes-") as tmp:
        work = Path(tmp)
        models = {}
        for scheme in schemes:
            say(f"building {scheme}")
            graph = work / f"{scheme}.onnx"
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                record = build_scheme(scheme, fp32, graph, feeds, keep_fp32)
            variant = _variant_bundle(source, graph, work / scheme, record)
            models[scheme] = NerModel.load(variant)
            say(f"accuracy and batch invariance: {scheme}")
            results[scheme] = {
                "description": _DESCRIPTIONS[scheme],
                "f1": entity_scores(gold, models[scheme].predict_words(words, documents=documents)).f1,
                "batch_dependent_texts": _batch_dependent_texts(models[scheme], texts),
                "mb": (variant / INT8).stat().st_size / 1e6,
            }
        say("speed (schemes take turns)")
        for scheme, speed in measure_speed(models, texts, rounds, latency_sentences).items():
            results[scheme].update(sps=max(speed["sps"]), p50_ms=1000 * float(np.median(speed["lat"])))
    errors = embedding_errors(source, train)
    fp32_mb = fp32.stat().st_size / 1e6
    lines = [
        f"Command: `{command}`" if command else "",
        f"{len(texts)} sentences of `{data}`; calibration: {len(sentences)} sentences of `{calibration_source}` "
        f"({len(feeds)} windows). fp32 graph: F1 {results['fp32']['f1']:.4f}, {fp32_mb:.1f} MB.",
        "",
        "| scheme | what | F1 | Δ vs fp32 (points) | batch-dependent texts | sent/s @32 | p50 ms | int8 MB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for scheme in schemes:
        r = results[scheme]
        lines.append(
            f"| `{scheme}` | {r['description']} | {r['f1']:.4f} | {100 * (r['f1'] - results['fp32']['f1']):+.2f} | "
            f"{r['batch_dependent_texts']} | {r['sps']:.0f} | {r['p50_ms']:.2f} | {r['mb']:.1f} |"
        )
    lines += ["", "Word-table reconstruction error per row (relative L2, ‖row − rebuilt‖ / ‖row‖):", ""]
    rare_note = " | rarest 10% mean | rarest 10% worst" if train else ""
    lines += [f"| table | scheme | mean | worst{rare_note} |", "|---|---|---|---" + ("|---|---" if train else "") + "|"]
    for e in errors:
        extra = f" | {e['rare_mean']:.4f} | {e['rare_worst']:.4f}" if train else ""
        lines.append(f"| {e['table']} | {e['scheme']} | {e['mean']:.4f} | {e['worst']:.4f}{extra} |")
    if train:
        lines += ["", f"Rarest rows: the 10% of vocabulary rows least frequent in `{train}` (token counts)."]
    data_out = {"command": command, "data": data, "calibration": calibration_source, "schemes": results}
    data_out["embedding_errors"] = errors
    return "\n".join(lines).lstrip("\n") + "\n", data_out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle")
    parser.add_argument("--data", required=True, help="CoNLL file to measure on (dev)")
    parser.add_argument("--calibration", help="CoNLL file to calibrate on [default: the bundle's validation sample]")
    parser.add_argument("--calibration-sentences", type=int, default=1000)
    parser.add_argument("--schemes", default=",".join(SCHEMES), help="comma-separated subset of " + ",".join(SCHEMES))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--latency-sentences", type=int, default=500)
    parser.add_argument("--train", help="training file, to find the rarest rows of the word table")
    parser.add_argument("--out", help="also write the table to this Markdown file (and .json beside it)")
    args = parser.parse_args()
    schemes = tuple(s.strip() for s in args.schemes.split(",") if s.strip())
    if set(schemes) - set(SCHEMES):
        parser.error(f"--schemes: choose from {', '.join(SCHEMES)}")
    command = "python -m ner_export.benchmarks.int8_schemes " + shlex.join(sys.argv[1:])
    markdown, results = compare(
        args.bundle,
        args.data,
        calibration=args.calibration,
        calibration_sentences=args.calibration_sentences,
        schemes=schemes,
        rounds=args.rounds,
        latency_sentences=args.latency_sentences,
        train=args.train,
        command=command,
        say=lambda message: print(message, file=sys.stderr, flush=True),
    )
    print(markdown)
    if args.out:
        Path(args.out).write_text(markdown, encoding="utf-8")
        Path(args.out).with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
