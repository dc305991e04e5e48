"""The other CPU engines, fed exactly what the bare onnxruntime session is fed.

`openvino_int8` is the bundle's fp32 graph read by OpenVINO and quantized to int8 by NNCF's
post-training quantization, calibrated on the checkpoint's validation sample (never test data); it
runs batches on a model compiled with the throughput hint (several streams, requests in flight
through an `AsyncInferQueue`) and single sentences on one compiled with the latency hint, each
engine's own best mode. `ctranslate2_int8` is the checkpoint's encoder converted by CTranslate2 with
int8 weights, the token-classification head applied in numpy (CTranslate2 has no such head); the
converter reads a linked copy of the checkpoint whose config.json is the stock one, since it loads
through transformers' AutoConfig, which refuses the marked config of a model trained with casing.

Both see the same pre-tokenized, length-sorted batches as `session_int8` (special tokens, casing
classes as token types), so the three rows compare engines and nothing else: no tokenizing, no
decoding. Their pre-split F1 reads each sentence alone and takes each word's first-token argmax,
like `session_int8`'s, an engine check rather than the best the model can do. Each is optional and
skipped, with the reason, when its package is missing (`pip install 'ner-export[peers]'`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ner_export.runtime import available_cpus

__all__ = ["PEERS", "CTranslate2Int8", "OpenVinoInt8", "missing_peer"]

PEERS = {"openvino_int8": ("openvino", "nncf"), "ctranslate2_int8": ("ctranslate2",)}
"""Each peer system and the packages it needs."""

_CALIBRATION_SENTENCES = 300


def missing_peer(name: str) -> str | None:
    """Why peer `name` cannot run here (its missing package), or None."""
    import importlib.util

    for module in PEERS[name]:
        if importlib.util.find_spec(module) is None:
            return f"the Python package {module!r} is not installed (pip install 'ner-export[peers]')"
    return None


def calibration_words(checkpoint: Path) -> list[list[str]]:
    """Sentences of the checkpoint's validation sample (dev data; the packaged sample when the checkpoint
    has none), the peers' calibration set: the same sentences the export calibrates on."""
    from ner_export.export.validate import validation_sentences

    _, sentences = validation_sentences(checkpoint, None, _CALIBRATION_SENTENCES)
    return [list(s.words) for s in sentences]


class OpenVinoInt8:
    """NNCF int8 of an fp32 ONNX graph on OpenVINO's CPU plugin; `run_one` and `run_many` give logits."""

    def __init__(self, fp32_graph: Path, calibration: Sequence[dict[str, np.ndarray]], threads: int | None = None):
        import nncf
        import openvino as ov

        core = ov.Core()
        model = core.read_model(str(fp32_graph))
        self.inputs = {port.get_any_name() for port in model.inputs}
        started = time.perf_counter()
        quantized = nncf.quantize(
            model,
            nncf.Dataset([{k: v for k, v in feed.items() if k in self.inputs} for feed in calibration]),
            model_type=nncf.ModelType.TRANSFORMER,
            subset_size=len(calibration),
        )
        self.quantize_seconds = time.perf_counter() - started
        config = {"INFERENCE_NUM_THREADS": threads or available_cpus()}
        self._latency = core.compile_model(quantized, "CPU", {**config, "PERFORMANCE_HINT": "LATENCY"})
        self._throughput = core.compile_model(quantized, "CPU", {**config, "PERFORMANCE_HINT": "THROUGHPUT"})
        self.requests = int(self._throughput.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
        self._request = self._latency.create_infer_request()

    def run_one(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        return np.asarray(self._request.infer({k: v for k, v in feeds.items() if k in self.inputs})[0])

    def run_many(self, batches: Sequence[dict[str, np.ndarray]]) -> list[np.ndarray]:
        import openvino as ov

        out: list[Any] = [None] * len(batches)
        queue = ov.AsyncInferQueue(self._throughput, self.requests)

        def done(request: Any, index: int) -> None:
            out[index] = request.get_output_tensor(0).data.copy()

        queue.set_callback(done)
        for index, feeds in enumerate(batches):
            queue.start_async({k: v for k, v in feeds.items() if k in self.inputs}, index)
        queue.wait_all()
        return out


class CTranslate2Int8:
    """A checkpoint's encoder in CTranslate2 (int8 weights) with its classifier in numpy; `run` gives logits."""

    def __init__(self, checkpoint: Path, workdir: Path, threads: int | None = None) -> None:
        import ctranslate2
        from ctranslate2.converters import TransformersConverter
        from safetensors.numpy import load_file

        out = workdir / "ctranslate2"
        started = time.perf_counter()
        source = _linked_stock_checkpoint(checkpoint, workdir / "ctranslate2-source")
        TransformersConverter(str(source)).convert(str(out), quantization="int8", force=True)
        self.convert_seconds = time.perf_counter() - started
        self._encoder = ctranslate2.Encoder(
            str(out), device="cpu", compute_type="int8", intra_threads=threads or available_cpus(), inter_threads=1
        )
        weights = load_file(str(checkpoint / "model.safetensors"))
        self._weight = np.ascontiguousarray(weights["classifier.weight"].T, dtype=np.float32)
        self._bias = weights["classifier.bias"].astype(np.float32)

    def run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        import ctranslate2

        ids = feeds["input_ids"].astype(np.int32)
        lengths = feeds["attention_mask"].sum(axis=1).astype(np.int32)
        types = feeds.get("token_type_ids")
        output = self._encoder.forward_batch(
            ctranslate2.StorageView.from_array(ids),
            ctranslate2.StorageView.from_array(lengths),
            token_type_ids=None if types is None else types.tolist(),
        )
        return np.asarray(output.last_hidden_state) @ self._weight + self._bias


def _linked_stock_checkpoint(checkpoint: Path, dest: Path) -> Path:
    """`checkpoint` with the config.json transformers reads (a casing marker resolved) and every other
    file linked, not copied: the same weights, tokenizer and config values."""
    from ner_export.finetune import read_config

    dest.mkdir(parents=True, exist_ok=True)
    for item in Path(checkpoint).iterdir():
        if item.name != "config.json" and not (dest / item.name).exists():
            (dest / item.name).symlink_to(item.resolve())
    (dest / "config.json").write_text(json.dumps(read_config(checkpoint), indent=2) + "\n", encoding="utf-8")
    return dest
