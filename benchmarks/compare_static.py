"""Static (calibrated QDQ) int8 against the bundle's dynamic int8, and session options, in one run.

    python -m ner_export.benchmarks.compare_static BUNDLE --data test.txt --calibration dev.txt \
        [--sentences N] [--calibration-sentences 200] [--methods minmax,percentile,entropy] [--out FILE.md]

One Markdown table: entity F1 (pre-split words), int8 graph size, sent/s at batch 32 (best of rounds),
single-sentence p50 (variants take turns on blocks of sentences, `timing.block_latencies`) and, from
fresh processes, load time, cold start (start to first prediction) and peak RSS (VmHWM after a pass).

Trade-offs:

- Static graphs start from the bundle's fused fp32 graph, so they keep its fusions. ONNX Runtime's QDQ
  quantizer has no Attention or EmbedLayerNormalization: pure QDQ quantizes only the MatMuls and keeps
  QKV and the embedding table fp32 (3x the size). The "rest dynamic" rows then quantize those ops
  dynamically with the bundle's own settings, so they differ from it only in the MatMul activations.
- S8S8 (the ORT docs' first choice for QDQ; on x86 ORT turns the activations into u8 itself). MatMul
  outputs stay float, since every consumer is float: ORT then fuses DQ -> MatMul into
  MatMulIntegerToFloat rather than QLinearMatMul plus a requantize and a dequantize.
- The quantizer hands a tensor's DequantizeLinear output to *every* consumer. After the attention
  block's layer norm that puts a QDQ round trip on the residual and gives the FFN input's DQ two
  consumers, which blocks the fusion (that MatMul dequantized its weight on every run, slower than
  fp32); `_float_for_unquantized` gives the float tensor back.
- Calibration feeds one sentence at a time (the bundle's tokenizer, special tokens, max_length), so no
  padding enters the ranges. Percentile and Entropy keep histograms: keep calibration sentences modest.
- Session options are measured on the dynamic graph. Loads skip the sha256 check, so load times compare
  sessions only. The pre-optimized graph is written once (`optimized_model_filepath`, ORT_ENABLE_ALL)
  and loaded with ORT_DISABLE_ALL; ORT warns it may hold hardware-specific optimizations, so it would
  be made on the serving machine, not shipped in the bundle.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shlex
import subprocess
import sys
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ner_export.runtime import NerModel
from ner_export.runtime.errors import ColdStartError
from ner_export.runtime.manifest import BundleManifest, GraphSpec, sha256_file
from ner_export.runtime.session import batch_inputs, create_session, load_tokenizer

__all__ = [
    "METHODS",
    "Variant",
    "compare",
    "fresh_process",
    "fresh_runs",
    "load",
    "quantize_static_variants",
    "swapped_bundle",
]

METHODS = ("minmax", "percentile", "entropy")
INT8 = "model_int8.onnx"


@dataclass(frozen=True)
class Variant:
    """One row: a bundle's int8 graph (or `graph`, outside the manifest) run with these session options."""

    name: str
    bundle: str
    graph: str = ""
    arena: bool = True
    mem_pattern: bool = True
    optimize: bool = True  # ORT_ENABLE_ALL; False loads with ORT_DISABLE_ALL

    def graph_path(self) -> Path:
        return (
            Path(self.graph)
            if self.graph
            else Path(self.bundle) / BundleManifest.read(Path(self.bundle)).graph_for("cpu", "int8").file
        )


def load(variant: Variant) -> NerModel:
    """`NerModel.load` for the runtime's defaults, else the same session with the variant's options."""
    if not variant.graph and variant.arena and variant.mem_pattern and variant.optimize:
        return NerModel.load(variant.bundle, verify=False)  # no sha256 pass, so load times compare sessions only
    manifest = BundleManifest.read(Path(variant.bundle))
    options = {
        "enable_cpu_mem_arena": variant.arena,
        "enable_mem_pattern": variant.mem_pattern,
        "graph_optimization_level": "ORT_ENABLE_ALL" if variant.optimize else "ORT_DISABLE_ALL",
    }
    session = create_session(variant.graph_path(), options=options)  # NerModel.load's, plus the variant's
    tokenizer = load_tokenizer(Path(variant.bundle) / manifest.tokenizer_file, manifest.vocab_size)
    return NerModel(session, tokenizer, manifest, device="cpu", precision="int8")


def fresh_process(variant: Variant, texts_file: Path, spawned: float) -> None:
    """Body of the measuring subprocess: prints cold start, load time and peak RSS as JSON."""
    started = time.perf_counter()
    model = load(variant)
    loaded = time.perf_counter() - started
    texts = json.loads(texts_file.read_text(encoding="utf-8"))
    model(texts[0])
    cold = time.time() - spawned  # interpreter start, imports, load and the first prediction
    model.predict(texts, batch_size=32)  # so the peak includes batch-32 work
    hwm = next(line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith("VmHWM:"))
    print(json.dumps({"cold_s": cold, "load_ms": 1000 * loaded, "rss_mb": int(hwm.split()[1]) / 1024}))


def fresh_runs(variant: Variant, texts_file: Path, runs: int) -> dict[str, float]:
    """Medians over `runs` fresh processes of cold start, load time and peak RSS (VmHWM)."""
    code = "import sys, json; from pathlib import Path\n"
    code += "from ner_export.benchmarks.compare_static import Variant, fresh_process\n"
    code += "fresh_process(Variant(**json.loads(sys.argv[1])), Path(sys.argv[2]), float(sys.argv[3]))"
    results = []
    for _ in range(runs):
        argv = [sys.executable, "-c", code, json.dumps(asdict(variant)), str(texts_file), repr(time.time())]
        done = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=600)
        if done.returncode != 0:
            raise ColdStartError(f"{variant.name}: fresh process failed: {done.stderr.strip()[-500:]}")
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return {key: float(np.median([r[key] for r in results])) for key in ("cold_s", "load_ms", "rss_mb")}


def _float_for_unquantized(path: Path, quantized_ops: set[str]) -> None:
    """Give consumers that are not quantized ops the float tensor instead of its QDQ round trip."""
    import onnx

    model = onnx.load(str(path))
    nodes = model.graph.node
    q_input = {n.output[0]: n.input[0] for n in nodes if n.op_type == "QuantizeLinear"}
    float_of = {
        n.output[0]: q_input[n.input[0]] for n in nodes if n.op_type == "DequantizeLinear" and n.input[0] in q_input
    }
    for node in nodes:
        if node.op_type not in quantized_ops | {"QuantizeLinear", "DequantizeLinear"}:
            for k, name in enumerate(node.input):
                node.input[k] = float_of.get(name, name)
    onnx.save(model, str(path))


def quantize_static_variants(
    bundle: Path, calibration: list[str], out: Path, methods: tuple[str, ...]
) -> dict[str, tuple[Path, float]]:
    """{name: (static int8 graph, seconds)} of the bundle's fp32 graph, calibrated on `calibration` texts."""
    import onnx
    from onnxruntime import quantization as oq
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from ner_export.export import third_party_warnings_silenced

    manifest = BundleManifest.read(bundle)
    dynamic = manifest.graph_for("cpu", "int8").quantization  # the bundle's own dynamic settings
    fp32 = bundle / manifest.graph_for("cpu", "fp32").file
    tokenizer = load_tokenizer(bundle / manifest.tokenizer_file, manifest.vocab_size)
    tokenizer.enable_truncation(manifest.max_length)
    names = {i.name for i in onnx.load(str(fp32), load_external_data=False).graph.input}
    feeds = []
    for encoding in tokenizer.encode_batch(calibration):
        feeds.append({k: v for k, v in batch_inputs([encoding.ids]).items() if k in names})

    class Reader(oq.CalibrationDataReader):
        # quantize_static walks it one sentence at a time (CalibStridedMinMax=1): the histogram
        # calibrators stack each batch's outputs and fail on unequal lengths (onnxruntime#18792)
        def __init__(self) -> None:
            self.set_range(0, len(feeds))

        def __len__(self) -> int:
            return len(feeds)

        def set_range(self, start_index: int, end_index: int) -> None:
            self.rows = iter(feeds[start_index:end_index])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.rows, None)

    graphs: dict[str, tuple[Path, float]] = {}
    exclude = list(dynamic.get("nodes_to_exclude", []))
    fused = [t for t in dynamic.get("op_types", ["Attention", "EmbedLayerNormalization"]) if t != "MatMul"]
    with third_party_warnings_silenced(), contextlib.redirect_stdout(sys.stderr):  # the calibrators print progress
        # symbolic shape inference types the fused ops' outputs; without it the quantizer skips them
        quant_pre_process(str(fp32), str(out / "shaped.onnx"), skip_optimization=True, auto_merge=True)
        for method in methods:
            started = time.perf_counter()
            qdq = out / f"static-{method}.onnx"
            oq.quantize_static(
                str(out / "shaped.onnx"),
                str(qdq),
                Reader(),
                quant_format=oq.QuantFormat.QDQ,
                op_types_to_quantize=["MatMul"],
                per_channel=True,
                activation_type=oq.QuantType.QInt8,
                weight_type=oq.QuantType.QInt8,
                nodes_to_exclude=exclude,
                calibrate_method=getattr(oq.CalibrationMethod, {"minmax": "MinMax"}.get(method, method.title())),
                extra_options={"OpTypesToExcludeOutputQuantization": ["MatMul"], "CalibStridedMinMax": 1},
            )
            _float_for_unquantized(qdq, {"MatMul"})
            seconds = time.perf_counter() - started
            hybrid = out / f"static-{method}-dynamic.onnx"
            oq.quantize_dynamic(
                str(qdq),
                str(hybrid),
                op_types_to_quantize=fused,
                per_channel=bool(dynamic.get("per_channel", True)),
                reduce_range=bool(dynamic.get("reduce_range", False)),
                weight_type=oq.QuantType.QInt8,
                nodes_to_exclude=exclude,
                extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
            )
            if method == methods[0]:
                graphs[f"static QDQ {method} MatMuls, rest fp32"] = (qdq, seconds)
            graphs[f"static QDQ {method} MatMuls, rest dynamic as the bundle"] = (hybrid, time.perf_counter() - started)
    return graphs


def swapped_bundle(bundle: Path, graph: Path, dest: Path, quantization: dict[str, Any]) -> Path:
    """A bundle at `dest` whose only graph is `graph` as its int8 graph (tokenizer linked, manifest rewritten)."""
    manifest = BundleManifest.read(bundle)
    dest.mkdir(parents=True)
    (dest / manifest.tokenizer_file).symlink_to((bundle / manifest.tokenizer_file).resolve())
    graph.rename(dest / INT8)
    files = {manifest.tokenizer_file: manifest.files[manifest.tokenizer_file], INT8: sha256_file(dest / INT8)}
    replace(manifest, graphs=(GraphSpec(INT8, "cpu", "int8", quantization, batch_invariant=False),), files=files).write(
        dest
    )
    return dest


def compare(
    bundle: str,
    data: str,
    calibration: str,
    *,
    sentences: int | None = None,
    calibration_sentences: int = 200,
    methods: tuple[str, ...] = METHODS,
    rounds: int = 3,
    latency_sentences: int = 500,
    cold_runs: int = 3,
    command: str = "",
) -> str:
    """The Markdown table of every variant (module docstring) on the CoNLL file `data`."""
    from ner_export.runtime.conll import read_conll
    from ner_export.runtime.labels import entity_scores

    from .timing import measure_speed

    source = Path(bundle)
    rows = read_conll(data)[:sentences]
    words, gold = [list(s.words) for s in rows], [list(s.tags) for s in rows]
    texts = [" ".join(w) for w in words]
    calibration_texts = [" ".join(s.words) for s in read_conll(calibration)[:calibration_sentences]]
    with tempfile.TemporaryDirectory(prefix="compare-static-") as tmp:
        work = Path(tmp)
        (work / "texts.json").write_text(json.dumps(texts), encoding="utf-8")
        preoptimized = work / "model_int8.optimized.onnx"
        create_session(Variant("", bundle).graph_path(), options={"optimized_model_filepath": str(preoptimized)})
        variants = [
            Variant("dynamic int8 (bundle), runtime defaults: arena on, mem pattern on", bundle),
            Variant("dynamic, arena off", bundle, arena=False),
            Variant("dynamic, mem pattern off", bundle, mem_pattern=False),
            Variant("dynamic, arena off, mem pattern off", bundle, arena=False, mem_pattern=False),
            Variant(
                "dynamic, pre-optimized graph loaded with ORT_DISABLE_ALL",
                bundle,
                graph=str(preoptimized),
                optimize=False,
            ),
        ]
        seconds = {}
        for k, (name, (graph, took)) in enumerate(
            quantize_static_variants(source, calibration_texts, work, methods).items()
        ):
            record = {
                "method": "static",
                "format": "QDQ",
                "variant": name,
                "calibration_sentences": len(calibration_texts),
            }
            variants.append(Variant(name, str(swapped_bundle(source, graph, work / f"v{k}", record))))
            seconds[name] = took
        models = {v.name: load(v) for v in variants}
        same = models[variants[0].name].predict(texts) == models[variants[4].name].predict(texts)  # entities and scores
        documents = [s.document for s in rows]
        table = {
            v.name: {
                "f1": entity_scores(gold, models[v.name].predict_words(words, documents=documents)).f1,
                "mb": v.graph_path().stat().st_size / 1e6,
                "sps": [],
                "lat": [],
            }
            for v in variants
        }
        for name, speed in measure_speed(models, texts, rounds, latency_sentences).items():
            table[name].update(speed)
        del models
        fresh = {v.name: fresh_runs(v, work / "texts.json", cold_runs) if cold_runs else {} for v in variants}
    lines = [
        f"Command: `{command}`" if command else "",
        f"{len(texts)} sentences of {data}; calibration: {len(calibration_texts)} sentences of {calibration}.",
        "",
        "| variant | entity F1 | int8 graph MB | sent/s @32 (best of rounds) | p50 ms | session load ms "
        "| cold start s | peak RSS MB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in table.items():
        f = fresh[name]
        cells = [f"{r['f1']:.4f}", f"{r['mb']:.1f}", f"{max(r['sps']):.0f}", f"{1000 * float(np.median(r['lat'])):.2f}"]
        cells += [f"{f['load_ms']:.0f}", f"{f['cold_s']:.2f}", f"{f['rss_mb']:.0f}"] if f else ["–"] * 3
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += [
        "",
        f"Pre-optimized graph: entities and scores {'identical to' if same else 'DIFFERENT from'} "
        "the bundle's on every sentence.",
    ]
    if seconds:
        lines += [
            "Quantization seconds (calibration included): " + ", ".join(f"{k}: {v:.1f}" for k, v in seconds.items())
        ]
    return "\n".join(lines).lstrip("\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("bundle")
    parser.add_argument("--data", required=True, help="CoNLL file to measure on (dev or test)")
    parser.add_argument("--calibration", required=True, help="CoNLL file to calibrate on (dev)")
    parser.add_argument("--sentences", type=int, default=None, help="first N sentences of --data (default all)")
    parser.add_argument("--calibration-sentences", type=int, default=200)
    parser.add_argument("--methods", default=",".join(METHODS), help="calibration methods, comma-separated")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--latency-sentences", type=int, default=500)
    parser.add_argument("--cold-runs", type=int, default=3, help="fresh processes per variant (0 skips them)")
    parser.add_argument("--out", default=None, help="also write the table to this Markdown file")
    args = parser.parse_args()
    methods = tuple(m.strip().lower() for m in args.methods.split(",") if m.strip())
    if set(methods) - set(METHODS):
        parser.error(f"--methods: choose from {', '.join(METHODS)}")
    command = "python -m ner_export.benchmarks.compare_static " + shlex.join(sys.argv[1:])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        markdown = compare(
            args.bundle,
            args.data,
            args.calibration,
            sentences=args.sentences,
            calibration_sentences=args.calibration_sentences,
            methods=methods,
            rounds=args.rounds,
            latency_sentences=args.latency_sentences,
            cold_runs=args.cold_runs,
            command=command,
        )
    print(markdown)
    if args.out:
        Path(args.out).write_text(markdown + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
