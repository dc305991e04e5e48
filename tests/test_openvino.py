"""The OpenVINO backend: the bundle's NNCF int8 IR, made at export, run by `NerModel.load(backend="openvino")`.

Tests that run OpenVINO skip, saying so, where openvino is not installed (the runtime-only CI job);
the ones that check what happens without it, or with a bundle lacking the graph, run everywhere.
"""

from __future__ import annotations

import json
import random
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from conftest import WORDS, needs_torch, openvino_graph

from ner_export.runtime import BundleError, BundleManifest, MissingDependencyError, NerModel
from ner_export.runtime.manifest import MANIFEST_NAME, sha256_file

_PLAIN = [w for w in WORDS if not w.startswith("##")]
XML, BIN = "model_int8_openvino.xml", "model_int8_openvino.bin"


def _texts(seed: int, count: int, longest: int = 60) -> list[str]:
    rng = random.Random(seed)
    return [
        " ".join(w.capitalize() if rng.random() < 0.4 else w for w in rng.choices(_PLAIN, k=rng.randint(1, longest)))
        for _ in range(count)
    ]


@pytest.fixture(scope="module")
def ov_model(tiny_bundle: Path) -> NerModel:
    openvino_graph(tiny_bundle)
    return NerModel.load(tiny_bundle, backend="openvino")


@pytest.fixture(scope="module")
def ort_model(tiny_bundle: Path) -> NerModel:
    return NerModel.load(tiny_bundle)


def _without_openvino_graph(bundle: Path, dest: Path) -> Path:
    shutil.copytree(bundle, dest)
    data = json.loads((dest / MANIFEST_NAME).read_text())
    data["graphs"] = [g for g in data["graphs"] if g.get("backend") != "openvino"]
    for name in (XML, BIN):
        data["files"].pop(name, None)
        (dest / name).unlink(missing_ok=True)
    (dest / MANIFEST_NAME).write_text(json.dumps(data))
    return dest


# --------------------------------------------------------------------------- the export
def test_export_ships_the_openvino_graph_hashed_and_recorded(tiny_bundle: Path) -> None:
    spec = openvino_graph(tiny_bundle)
    manifest = BundleManifest.read(tiny_bundle)
    assert (spec.file, spec.weights, spec.device, spec.precision, spec.backend) == (XML, BIN, "cpu", "int8", "openvino")
    assert spec.batch_invariant is True
    for name in (XML, BIN):
        assert manifest.files[name] == sha256_file(tiny_bundle / name)
    # listed after every onnxruntime graph, which existing callers (and older readers) keep getting
    assert manifest.graphs[-1] == spec
    assert manifest.graph_for("cpu").file == manifest.graph_for("cpu", "int8").file == "model_int8.onnx"
    assert manifest.graph_for("cpu", "int8", "openvino") == spec
    q = spec.quantization
    assert q["method"] == "nncf-ptq" and q["model_type"] == "transformer" and q["activations"] == "static"
    # calibrated on what the onnxruntime gate calibrated on: the validation sentences' windows, never test data
    assert q["calibration_data"] == manifest.graph_for("cpu", "int8").quantization["calibration_data"]
    assert q["calibration_data"] == manifest.validation["int8_calibration"] and q["subset_size"] > 0
    outcome = manifest.validation["openvino"]
    assert outcome["shipped"] is True and outcome["reason"] == "" and outcome["graph"] == XML
    assert q["f1_drop"] == outcome["drop"] and outcome["drop"] <= outcome["limit"]
    assert outcome["limit"] == manifest.validation["applied_max_f1_drop"]
    ir = (tiny_bundle / XML).read_text()
    assert 'type="FakeQuantize"' in ir  # really quantized: int8 activations, not a converted fp32 graph


def test_bf16_is_measured_and_kept_only_within_the_limit(tiny_bundle: Path) -> None:
    from ner_export.runtime.openvino_backend import computes_bf16

    spec = openvino_graph(tiny_bundle)
    q, outcome = spec.quantization, BundleManifest.read(tiny_bundle).validation["openvino"]
    bf16 = q["bf16"]
    assert outcome["bf16"] == bf16 and outcome["inference_precision"] == q["inference_precision"]
    if not computes_bf16():
        assert bf16 == {"kept": False, "reason": "this CPU has no bf16 instructions"}
        assert q["inference_precision"] == "f32"
        return
    assert bf16["f1_drop"] is not None and (bf16["f1_drop"] <= outcome["limit"]) == bf16["kept"]
    if bf16["kept"]:  # the graph's F1 is bf16's, and f32's is kept beside it
        assert q["inference_precision"] == "bf16" and q["f1"] == bf16["f1"] and "f1" in q["f32"]
    else:
        assert q["inference_precision"] == "f32" and "f32" not in q and bf16["reason"]
    compiled = NerModel.load(tiny_bundle, backend="openvino")._session.compiled
    assert compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name() == q["inference_precision"]


def test_a_cpu_without_bf16_keeps_f32_and_says_why(monkeypatch: pytest.MonkeyPatch) -> None:
    needs_torch()
    from ner_export.export import openvino_int8

    monkeypatch.setattr(openvino_int8, "computes_bf16", lambda: False)
    record = {"fp32_f1": 0.9, "inference_precision": "f32"}

    def unused(record: dict) -> list:  # neither case gets as far as measuring
        raise AssertionError("measured")

    assert openvino_int8._try_bf16(unused, None, record, 0.3) == {  # type: ignore[arg-type]
        "kept": False,
        "reason": "this CPU has no bf16 instructions",
    }
    monkeypatch.setattr(openvino_int8, "computes_bf16", lambda: True)
    unscored = openvino_int8._try_bf16(unused, None, {"fp32_f1": None}, 0.3)  # type: ignore[arg-type]
    assert unscored["kept"] is False and "no entity F1" in unscored["reason"]


def test_no_openvino_flag_leaves_it_out_and_says_so(tiny_checkpoint: Path, conll_file: Path, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from ner_export.cli import cli

    out = tmp_path / "bundle"
    result = CliRunner().invoke(
        cli, ["export", str(tiny_checkpoint), "-o", str(out), "--validate-data", str(conll_file), "--no-openvino", "-q"]
    )
    assert result.exit_code == 0, result.output
    assert "openvino int8 (NNCF): left out: turned off (--no-openvino)" in result.output
    manifest = BundleManifest.read(out)
    assert all(g.backend == "onnxruntime" for g in manifest.graphs)
    assert XML not in manifest.files and not (out / XML).exists() and not (out / BIN).exists()
    assert manifest.validation["openvino"]["shipped"] is False
    assert manifest.validation["openvino"]["reason"] == "turned off (--no-openvino)"
    with pytest.raises(BundleError, match="lists no openvino graph for device 'cpu'"):
        NerModel.load(out, backend="openvino")


def test_openvino_f32_flag_skips_bf16(tiny_checkpoint: Path, conll_file: Path, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from ner_export.cli import cli

    needs_torch()
    for package in ("openvino", "nncf"):
        pytest.importorskip(package, reason=f"making the OpenVINO graph needs {package}, absent here")
    out = tmp_path / "bundle"
    args = ["export", str(tiny_checkpoint), "-o", str(out), "--validate-data", str(conll_file), "--openvino-f32", "-q"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "openvino int8 (NNCF, f32): entity F1 drop vs fp32" in result.output
    q = openvino_graph(out).quantization
    assert q["inference_precision"] == "f32" and "bf16" not in q
    compiled = NerModel.load(out, backend="openvino")._session.compiled
    assert compiled.get_property("INFERENCE_PRECISION_HINT").get_type_name() == "f32"


def test_the_verdict_ships_only_within_the_limit() -> None:
    needs_torch()
    from ner_export.export.openvino_int8 import openvino_verdict

    assert openvino_verdict(0.9, 0.9, 0.3) == (True, 0.0, "")
    shipped, drop, reason = openvino_verdict(0.90, 0.8975, 0.3)
    assert shipped and drop == pytest.approx(0.25) and reason == ""
    shipped, drop, reason = openvino_verdict(0.90, 0.85, 0.3)
    assert not shipped and drop == pytest.approx(5.0)
    assert reason.startswith("NNCF int8 loses 5.00 points of entity F1 against fp32 (0.8500 vs 0.9000)")
    assert "0.30-point limit" in reason
    assert openvino_verdict(0.9, 0.93, 0.0)[0] is True  # a gain is no loss
    assert openvino_verdict(None, None, 0.3) == (True, None, "")  # labels without entity F1: unmeasured


def test_a_failing_quantizer_leaves_the_graph_out_and_the_export_goes_on(tmp_path: Path) -> None:
    needs_torch()
    from ner_export.export.openvino_int8 import add_openvino_graph

    class Unscored:
        scored = False

    def broken() -> None:
        raise RuntimeError("no calibration today\nsecond line")

    (tmp_path / XML).write_text("half-written")
    outcome, graph = add_openvino_graph(tmp_path, None, Unscored(), "model.onnx", 0.3, broken)
    assert graph is None and outcome.shipped is False
    assert outcome.reason == "NNCF/OpenVINO failed: RuntimeError: no calibration today"
    assert not (tmp_path / XML).exists()
    assert outcome.to_dict()["graph"] is None


# --------------------------------------------------------------------------- loading
def test_backend_selection_and_its_errors(tiny_bundle: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="backend='tensorrt' is not one of onnxruntime, openvino"):
        NerModel.load(tiny_bundle, backend="tensorrt")
    with pytest.raises(ValueError, match="backend='openvino' runs on cpu only"):
        NerModel.load(tiny_bundle, backend="openvino", device="cuda")
    bare = _without_openvino_graph(tiny_bundle, tmp_path / "bare")
    with pytest.raises(BundleError, match=r"lists no openvino graph for device 'cpu' \(it has: int8 for cpu, "):
        NerModel.load(bare, backend="openvino")
    assert NerModel.load(bare).backend == "onnxruntime"


def test_a_missing_openvino_names_the_extra(tiny_bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without openvino, the OpenVINO backend is a MissingDependencyError naming the extra, and the default
    backend is untouched. The bundle's graph entry is faked when the test bundle has none: the package is
    looked for before the graph's files are read."""
    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, bundle)
    data = json.loads((bundle / MANIFEST_NAME).read_text())
    if not any(g.get("backend") == "openvino" for g in data["graphs"]):
        for name in (XML, BIN):
            (bundle / name).write_text("not an IR")
            data["files"][name] = sha256_file(bundle / name)
        fake = {"file": XML, "weights": BIN, "device": "cpu", "precision": "int8", "backend": "openvino"}
        data["graphs"].append(fake)
        (bundle / MANIFEST_NAME).write_text(json.dumps(data))
    monkeypatch.setitem(sys.modules, "openvino", None)  # import openvino now raises ImportError
    with pytest.raises(MissingDependencyError, match=r"needs the Python package 'openvino'.*ner-export\[openvino\]"):
        NerModel.load(bundle, backend="openvino")
    assert NerModel.load(bundle)("john smith in paris") == NerModel.load(tiny_bundle)("john smith in paris")


def test_a_damaged_ir_is_a_bundle_error(tiny_bundle: Path, tmp_path: Path) -> None:
    openvino_graph(tiny_bundle)
    bundle = tmp_path / "bundle"
    shutil.copytree(tiny_bundle, bundle)
    (bundle / BIN).write_bytes((bundle / BIN).read_bytes()[:100])
    with pytest.raises(BundleError, match=f"{BIN}: sha256 .* does not match"):
        NerModel.load(bundle, backend="openvino")
    with pytest.raises(BundleError, match=f"{XML}: OpenVINO cannot load this graph"):
        NerModel.load(bundle, backend="openvino", verify=False)


def test_only_the_openvino_backend_imports_openvino_and_neither_imports_torch(tiny_bundle: Path) -> None:
    openvino_graph(tiny_bundle)
    code = (
        "import sys\n"
        "from ner_export.runtime import NerModel\n"
        "NerModel.load(sys.argv[1], backend=sys.argv[2])('john smith in paris')\n"
        "print('openvino' in sys.modules, 'torch' in sys.modules, 'nncf' in sys.modules)\n"
    )
    for backend, expected in (("onnxruntime", "False False False"), ("openvino", "True False False")):
        done = subprocess.run(
            [sys.executable, "-c", code, str(tiny_bundle), backend], capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, done.stderr[-2000:]
        assert done.stdout.split("\n")[-2] == expected, (backend, done.stdout)


# --------------------------------------------------------------------------- the outputs contract
@pytest.mark.parametrize("which", ["tiny_bundle", "casing_bundle"])
def test_openvino_agrees_with_the_onnxruntime_int8_graph_on_most_words(
    which: str, request: pytest.FixtureRequest
) -> None:
    """Two quantizers of one model: not identical, but the same tags on most words; and the logits really come
    from OpenVINO (they differ from onnxruntime's)."""
    from ner_export.runtime.openvino_backend import OpenVinoSession

    bundle = request.getfixturevalue(which)
    openvino_graph(bundle)
    ov, ort = NerModel.load(bundle, backend="openvino"), NerModel.load(bundle)
    assert isinstance(ov._session, OpenVinoSession) and ov.backend == "openvino" and ov.precision == "int8"
    assert repr(ov) == "NerModel(device='cpu', precision='int8', backend='openvino', labels=9)"
    texts = _texts(1, 200)
    words = [t.split() for t in texts]
    ov_tags, ort_tags = ov.predict_words(words), ort.predict_words(words)
    pairs = [(a, b) for x, y in zip(ov_tags, ort_tags, strict=True) for a, b in zip(x, y, strict=True)]
    agreement = sum(a == b for a, b in pairs) / len(pairs)
    assert agreement > 0.9, agreement
    assert sum(tag != "O" for tag, _ in pairs) > 0.2 * len(pairs)  # the comparison is about entities
    ov_entities, ort_entities = ov.predict(texts), ort.predict(texts)
    spans = [{(e.label, e.start, e.end) for e in row} for row in ov_entities]
    ort_spans = [{(e.label, e.start, e.end) for e in row} for row in ort_entities]
    shared = sum(len(a & b) for a, b in zip(spans, ort_spans, strict=True))
    assert shared > 0.8 * sum(len(b) for b in ort_spans)
    for text, row in zip(texts, ov_entities, strict=True):
        for entity in row:
            assert text[entity.start : entity.end] == entity.text and 0 < entity.score <= 1
    encodings = ov._encode(texts[:20])
    types = None
    if ov.manifest.casing:
        from ner_export.runtime.casing import case_ids

        types = [case_ids(t, e.offsets) for t, e in zip(texts[:20], encodings, strict=True)]
    pairs_of_logits = zip(ov.logits(encodings, types=types), ort.logits(encodings, types=types), strict=True)
    gaps = [np.abs(a - b).max() for a, b in pairs_of_logits]
    assert max(gaps) > 1e-4  # another engine's numbers, not onnxruntime's


def test_long_texts_and_empty_inputs_keep_the_contract(ov_model: NerModel) -> None:
    long_text = " ".join(random.Random(2).choices(_PLAIN, k=700))  # several windows
    (entities,) = ov_model.predict([long_text])
    assert entities and all(long_text[e.start : e.end] == e.text for e in entities)
    assert entities == ov_model.predict([long_text], batch_size=1)[0]
    assert ov_model.predict([]) == [] and ov_model.predict(["", "   "]) == [[], []]
    assert ov_model.predict_words([[]]) == [[]]


def test_streams_give_the_single_stream_results_on_openvino(tiny_bundle: Path) -> None:
    openvino_graph(tiny_bundle)
    texts = _texts(5, 300)
    one = NerModel.load(tiny_bundle, backend="openvino", streams=1)
    two = NerModel.load(tiny_bundle, backend="openvino", threads=2, streams=2)
    assert one.streams == 1 and two.streams == 2
    assert two.predict(texts, batch_size=8) == one.predict(texts, batch_size=8)
    words = [t.split() for t in texts]
    assert two.predict_words(words, batch_size=8) == one.predict_words(words, batch_size=8)
    assert two._streams is not None and two._streams._session is not None  # the streams path ran
    assert int(two._streams.session.compiled.get_property("NUM_STREAMS")) == 2
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2) as pool:  # a server's two batch workers, one stream each
        halves = list(pool.map(lambda part: two.predict(part, batch_size=8, stream=True), [texts[:150], texts[150:]]))
    assert halves[0] + halves[1] == one.predict(texts, batch_size=8)


def _recorded_masks(model: NerModel, texts: list[str], batch_size: int) -> list[np.ndarray]:
    """The attention masks of every batch `model.predict(texts)` sends to its session."""
    masks: list[np.ndarray] = []
    session = model._session
    run = session.run

    def recording(names, feeds):  # type: ignore[no-untyped-def]
        masks.append(feeds["attention_mask"].copy())
        return run(names, feeds)

    session.run = recording
    try:
        model.predict(texts, batch_size=batch_size)
    finally:
        del session.run
    return masks


def test_openvino_batches_are_never_padded(tiny_bundle: Path) -> None:
    # OpenVINO's fused int8 attention let padding move a padded row's logits (up to 0.09 on the CoNLL-2003
    # model; the tiny model's graph has no such fusion, so the rule is checked instead of its effect)
    openvino_graph(tiny_bundle)
    texts = _texts(11, 60) + [" ".join(random.Random(3).choices(_PLAIN, k=700))]  # with a long text's windows
    ov = NerModel.load(tiny_bundle, backend="openvino", streams=1)
    ort = NerModel.load(tiny_bundle, streams=1)
    ov_masks, ort_masks = _recorded_masks(ov, texts, 16), _recorded_masks(ort, texts, 16)
    assert all(mask.all() for mask in ov_masks)
    assert not all(mask.all() for mask in ort_masks)  # the same texts do pad on onnxruntime: the check can fail
    assert sum(len(m) for m in ov_masks) == sum(len(m) for m in ort_masks)  # every window still runs once
    assert all(len(mask) <= 16 for mask in ov_masks)


def test_the_session_runs_once_on_the_thread_that_builds_it(tiny_bundle: Path) -> None:
    # openvino's binding can deadlock when two threads make a process's first `infer` at once (seen with
    # two streams on a fresh process's first large predict, 1-2 hangs in 5-6 runs on the CoNLL-2003 model,
    # none on the tiny one); the session guards against it by running once as it is built
    from ner_export.runtime.openvino_backend import OpenVinoSession, create_openvino_session

    spec = openvino_graph(tiny_bundle)
    compiled = create_openvino_session(tiny_bundle / spec.file, tiny_bundle / spec.weights, threads=1).compiled
    infers: list[tuple[int, int]] = []  # (thread, request) of each inference

    class RecordingRequest:
        def __init__(self) -> None:
            self._request = compiled.create_infer_request()

        def infer(self, *args, **kwargs):
            infers.append((threading.get_ident(), id(self)))
            return self._request.infer(*args, **kwargs)

    class RecordingModel:  # the compiled model, its infer requests recorded
        inputs, outputs = compiled.inputs, compiled.outputs

        def create_infer_request(self) -> RecordingRequest:
            return RecordingRequest()

    session = OpenVinoSession(RecordingModel())
    here = threading.get_ident()
    assert [thread for thread, _ in infers] == [here], "exactly one inference as it is built, on this thread"
    feeds = {"input_ids": np.array([[2, 10, 3]]), "attention_mask": np.ones((1, 3), dtype=np.int64)}
    feeds = {port.name: feeds.get(port.name, np.zeros((1, 3), dtype=np.int64)) for port in session.get_inputs()}
    other = threading.Thread(target=session.run, args=(None, feeds))
    other.start()
    other.join(30)
    session.run(None, feeds)
    threads = [thread for thread, _ in infers]
    assert threads[1] == other.ident and threads[2] == here
    assert infers[2][1] == infers[0][1] != infers[1][1], "each thread its own request, made once"


def test_one_model_serves_many_threads(ov_model: NerModel) -> None:
    texts = _texts(9, 40)
    expected = [ov_model.predict(texts[i::4], batch_size=4) for i in range(4)]
    got: list = [None] * 4
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            for _ in range(3):
                got[i] = ov_model.predict(texts[i::4], batch_size=4)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors and got == expected


# --------------------------------------------------------------------------- the CLI
def test_predict_and_eval_take_the_backend(tiny_bundle: Path, conll_file: Path, ov_model: NerModel) -> None:
    from click.testing import CliRunner

    from ner_export.cli import cli
    from ner_export.runtime.evaluate import evaluate_bundle

    texts = ["John Smith of Reuters said in Paris", "maria lopez in berlin"]
    result = CliRunner().invoke(cli, ["predict", str(tiny_bundle), *texts, "--backend", "openvino"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert [row["entities"] for row in rows] == [[e.to_dict() for e in r] for r in ov_model.predict(texts)]
    scored = CliRunner().invoke(cli, ["eval", str(tiny_bundle), "--data", str(conll_file), "--backend", "openvino"])
    assert scored.exit_code == 0, scored.output
    f1 = evaluate_bundle(tiny_bundle, conll_file, backend="openvino").f1
    assert f"entity-level micro F1: {f1:.4f}" in scored.output
    bad = CliRunner().invoke(cli, ["predict", str(tiny_bundle), "x", "--backend", "tensorrt"])
    assert bad.exit_code == 2 and "'tensorrt' is not one of 'onnxruntime', 'openvino'" in bad.output


def test_eval_of_a_checkpoint_refuses_the_backend(tiny_checkpoint: Path, conll_file: Path) -> None:
    from click.testing import CliRunner

    from ner_export.cli import cli

    result = CliRunner().invoke(cli, ["eval", str(tiny_checkpoint), "--data", str(conll_file), "--backend", "openvino"])
    assert result.exit_code == 2 and "--backend openvino applies to bundles" in result.output


def test_predict_without_an_openvino_graph_is_one_line(tiny_bundle: Path, tmp_path: Path) -> None:
    bare = _without_openvino_graph(tiny_bundle, tmp_path / "bare")
    done = subprocess.run(
        [sys.executable, "-m", "ner_export", "predict", str(bare), "Paris", "--backend", "openvino"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [
        f"Error: {MANIFEST_NAME} lists no openvino graph for device 'cpu' "
        "(it has: int8 for cpu, fp32 for cpu, fp32 for cuda)"
    ]


def test_annotate_takes_the_backend(tiny_bundle: Path, tmp_path: Path, ov_model: NerModel) -> None:
    pytest.importorskip("pyarrow", reason="annotate needs pyarrow (the annotate extra)")
    from click.testing import CliRunner

    from ner_export.cli import cli

    texts = _texts(3, 12)
    source = tmp_path / "in.txt"
    source.write_text("\n".join(texts) + "\n", encoding="utf-8")
    out = tmp_path / "out"
    result = CliRunner().invoke(
        cli,
        ["annotate", str(tiny_bundle), "--input", str(source), "--output", str(out), "--output-format", "jsonl"]
        + ["--backend", "openvino", "-q"],
    )
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for part in sorted(out.glob("part-*.jsonl")) for line in part.read_text().splitlines()]
    assert [row["entities"] for row in rows] == [[e.to_dict() for e in r] for r in ov_model.predict(texts)]
    manifest = json.loads((out / "_manifest.json").read_text())
    assert manifest["bundle"]["graph"] == XML and manifest["bundle"]["backend"] == "openvino"


def test_serve_takes_the_backend(tiny_bundle: Path, ov_model: NerModel) -> None:
    pytest.importorskip("fastapi", reason="serving needs the serve extra")
    import asyncio

    import httpx

    from ner_export.serve import ServeSettings, create_app

    with pytest.raises(ValueError, match="backend='tensorrt' is not one of onnxruntime, openvino"):
        ServeSettings(backend="tensorrt")
    text = "John Smith of Reuters said in Paris"

    async def scenario() -> None:
        app = create_app(tiny_bundle, backend="openvino", access_log=False)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://serve.test") as client:
            async with app.router.lifespan_context(app):
                for _ in range(500):
                    if (await client.get("/ready")).json()["status"] != "loading":
                        break
                    await asyncio.sleep(0.02)
                info = (await client.get("/info")).json()
                assert info["graph"]["file"] == XML and info["graph"]["backend"] == "openvino"
                assert info["batch_invariant"] is True
                answer = (await client.post("/predict", json={"inputs": text})).json()
                assert [(e["entity_group"], e["start"], e["end"]) for e in answer] == [
                    (e.label, e.start, e.end) for e in ov_model(text)
                ]

    asyncio.run(scenario())
