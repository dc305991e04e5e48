"""The runtime-only CI jobs' own checks: that their environments really have no torch stack and the
onnxruntime of their extra, and that the runtime tests there run on the bundles built beforehand
(tests/make_test_bundle.py).

These run only with NER_EXPORT_RUNTIME_ONLY=cpu or gpu, which .ci/run sets for those jobs; in the full
install they skip, since torch is installed there on purpose.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

JOB = os.environ.get("NER_EXPORT_RUNTIME_ONLY")  # "cpu" or "gpu": the extra this install was made with

pytestmark = pytest.mark.skipif(
    JOB not in {"cpu", "gpu"},
    reason="runs in the runtime-only CI jobs (NER_EXPORT_RUNTIME_ONLY=cpu or gpu, installs without torch)",
)


@pytest.mark.parametrize("module", ["torch", "transformers", "optimum", "seqeval"])
def test_the_training_stack_is_not_installed(module: str) -> None:
    assert importlib.util.find_spec(module) is None, f"{module} is importable: this is not a runtime-only install"


def test_the_bundles_are_the_prebuilt_ones(tiny_bundle: Path, casing_bundle: Path) -> None:
    root = Path(os.environ["NER_EXPORT_TEST_BUNDLES"])
    assert tiny_bundle == root / "bundle" and casing_bundle == root / "casing-bundle"
    assert (tiny_bundle / "bundle.json").is_file() and (casing_bundle / "bundle.json").is_file()


def test_eval_of_a_bundle_works_without_torch(tiny_bundle: Path, conll_file: Path, tmp_path: Path) -> None:
    from ner_export.cli import cli
    from ner_export.runtime import NerModel
    from ner_export.runtime.conll import read_conll
    from ner_export.runtime.labels import entity_scores

    scores = tmp_path / "scores.json"
    result = CliRunner().invoke(cli, ["eval", str(tiny_bundle), "--data", str(conll_file), "--json", str(scores)])
    assert result.exit_code == 0, result.output
    sentences = read_conll(conll_file)
    predicted = NerModel.load(tiny_bundle).predict_words([list(s.words) for s in sentences])
    expected = entity_scores([list(s.tags) for s in sentences], predicted)
    assert json.loads(scores.read_text())["f1"] == pytest.approx(expected.f1)


def test_the_job_has_the_onnxruntime_of_its_extra() -> None:
    """ner-export[cpu] brings onnxruntime, ner-export[gpu] onnxruntime-gpu; never both (they overwrite each other)."""
    from importlib.metadata import PackageNotFoundError, distribution

    def installed(name: str) -> bool:
        try:
            distribution(name)
        except PackageNotFoundError:
            return False
        return True

    wanted, other = ("onnxruntime-gpu", "onnxruntime") if JOB == "gpu" else ("onnxruntime", "onnxruntime-gpu")
    assert installed(wanted) and not installed(other), f"the {JOB} job should have {wanted} and not {other}"


@pytest.mark.skipif(JOB != "gpu", reason="runs in the runtime-only CI job of the gpu extra (no GPU on that machine)")
def test_cuda_without_a_gpu_is_one_line_naming_what_is_missing(tiny_bundle: Path) -> None:
    import onnxruntime

    from ner_export.runtime import DeviceError, NerModel
    from ner_export.runtime.session import cuda_problem

    assert "CUDAExecutionProvider" in onnxruntime.get_available_providers()  # the GPU build is what ran the tests
    problem = cuda_problem(onnxruntime)
    assert problem is not None, "this machine has a GPU: the error path cannot be exercised here"
    with pytest.raises(DeviceError) as raised:
        NerModel.load(tiny_bundle, device="cuda")
    message = str(raised.value)
    assert "\n" not in message and "no NVIDIA driver was found (libcuda.so.1 cannot be loaded)" in message
