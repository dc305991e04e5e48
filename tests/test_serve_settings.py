"""`ner-export serve` settings: CLI defaults equal `ServeSettings`, bad settings and bundles fail
early, thread spinning, and an app that is not ready until its model is loaded.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

httpx = pytest.importorskip("httpx", reason="the serve tests need httpx (the test extra)")
pytest.importorskip("fastapi", reason="ner-export serve needs the serve extra (fastapi, uvicorn, prometheus-client)")
pytest.importorskip("uvicorn", reason="ner-export serve needs the serve extra (fastapi, uvicorn, prometheus-client)")
from serve_harness import TEXTS, expected  # noqa: E402

from ner_export.runtime import NerModel  # noqa: E402


def test_cli_defaults_are_the_settings_defaults() -> None:
    import inspect
    from dataclasses import fields

    from ner_export.cli import cli
    from ner_export.serve import ServeSettings

    options = cli.commands["serve"].make_context("serve", ["bundle/"]).params  # what the command passes to run()
    options.pop("bundle")
    engine = {
        name: options.pop(name)
        for name in ("engine", "address", "num_replicas", "autoscaling_config", "num_cpus", "max_ongoing_requests")
    }
    assert engine == {
        "engine": "local",
        "address": None,
        "num_replicas": None,
        "autoscaling_config": None,
        "num_cpus": None,
        "max_ongoing_requests": None,
    }
    defaults = {f.name: f.default for f in fields(ServeSettings)}
    assert options == defaults
    load = inspect.signature(NerModel.load).parameters
    assert ServeSettings().max_batch_tokens == load["token_budget"].default, (
        "--max-batch-tokens defaults to the runtime's token budget"
    )
    assert (ServeSettings().aggregation, ServeSettings().decoding, ServeSettings().word_split) == (
        load["aggregation"].default,
        load["decoding"].default,
        load["word_split"].default,
    )


def test_threads_spin_only_inside_a_run_unless_asked(tiny_bundle: Path) -> None:
    from ner_export.serve import ServeSettings

    # by default onnxruntime's threads stop spinning when a run returns: the event loop gets the CPUs
    assert ServeSettings().model_options()["session_config"] == {"session.force_spinning_stop": "1"}
    assert ServeSettings(spin=True).model_options()["session_config"] is None  # onnxruntime's own default
    assert ServeSettings(backend="openvino").model_options()["session_config"] is None  # not an onnxruntime session
    assert (
        ServeSettings().model_options()["shared_arena"]
        and not ServeSettings(backend="openvino").model_options()["shared_arena"]
    )
    model = NerModel.load(tiny_bundle, **ServeSettings(threads=1).model_options())
    assert model.predict(TEXTS) == NerModel.load(tiny_bundle, threads=1).predict(TEXTS)


def test_bad_settings_and_bundles_fail_early(tiny_bundle: Path, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from ner_export.cli import cli
    from ner_export.runtime import BundleError
    from ner_export.serve import ServeSettings, create_app

    with pytest.raises(TypeError, match="max_batch"):
        create_app(tiny_bundle, max_batch=3)
    with pytest.raises(ValueError, match="max_client_batch_size=64 exceeds max_queued_texts=8"):
        ServeSettings(max_client_batch_size=64, max_queued_texts=8)
    with pytest.raises(BundleError, match="not a directory"):
        create_app(tmp_path / "absent")
    result = CliRunner().invoke(cli, ["serve", str(tmp_path / "absent"), "--port", "0"])
    assert (
        result.exit_code == 1 and result.output.startswith("Error:") and len(result.output.strip().splitlines()) == 1
    ), result.output
    result = CliRunner().invoke(cli, ["serve", str(tiny_bundle), "--precision", "fp16", "--port", "0"])
    assert result.exit_code == 1 and "no fp16 graph" in result.output, result.output


def test_create_app_is_not_ready_until_loaded_and_reports_a_failed_load(
    tiny_bundle: Path, tmp_path: Path, offline: NerModel
) -> None:
    """The Python entry point, driven in-process: 503 before its lifespan has loaded the model, exact
    answers after; a bundle whose graph fails its checksum turns /health 503, and the CLI exits 1."""
    import asyncio

    from ner_export.serve import create_app

    async def scenario(app: Any, broken: bool) -> None:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://serve.test") as client:
            ready = await client.get("/ready")
            assert ready.status_code == 503 and ready.json() == {"status": "loading"}
            refused = await client.post("/predict", json={"inputs": "Paris"})
            assert (
                refused.status_code == 503
                and refused.json()["error_type"] == "unavailable"
                and refused.headers["retry-after"] == "1"
            )
            async with app.router.lifespan_context(app):
                for _ in range(500):
                    status = (await client.get("/ready")).json()["status"]
                    if status != "loading":
                        break
                    await asyncio.sleep(0.02)
                if broken:
                    assert status == "failed"
                    health = await client.get("/health")
                    assert health.status_code == 503 and "sha256" in health.json()["error"]
                else:
                    assert status == "ready"
                    answer = await client.post("/", json={"inputs": TEXTS[1]})
                    assert answer.json() == expected(offline, [TEXTS[1]], None, True)

    asyncio.run(scenario(create_app(tiny_bundle, precision="fp32", access_log=False), broken=False))
    broken = tmp_path / "broken"
    shutil.copytree(tiny_bundle, broken)
    (broken / "model.onnx").write_bytes(b"not a graph")
    asyncio.run(scenario(create_app(broken, precision="fp32", access_log=False), broken=True))
    cli = subprocess.run(
        [sys.executable, "-m", "ner_export", "serve", str(broken), "--precision", "fp32", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert cli.returncode == 1 and cli.stderr.strip().splitlines()[-1].startswith("Error: cannot serve"), cli.stderr[
        -2000:
    ]


def test_warm_up_runs_the_largest_batch_on_every_session_the_batches_run_on(tiny_bundle: Path) -> None:
    """The server's batches run on the model's session and on the streams' one: the warm-up must make the
    latter and run the largest batch (max batch size x full-width windows) on both, or their arenas'
    growth lands on the first requests that need it."""
    from ner_export.serve.model_loading import warm_up

    model = NerModel.load(tiny_bundle, precision="fp32", threads=2, streams=2)
    streams = model._streams
    assert streams is not None and streams._session is None  # made on first use
    shapes: list[tuple[int, int]] = []
    session = model._session
    run = session.run

    def recording(names, feeds):  # type: ignore[no-untyped-def]
        shapes.append(feeds["input_ids"].shape)
        return run(names, feeds)

    session.run = recording
    warm_up(model, batch_size=4)
    assert (4, model.manifest.max_length) in shapes, shapes  # the model's own session ran the largest batch
    assert streams._session is not None
    assert model.predict(TEXTS, stream=True) == model.predict(TEXTS)
