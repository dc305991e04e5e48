"""The NER_EXPORT_REQUIRE_EXTRAS guard, run in a child pytest on a throwaway test file."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent

CASES = """
import pytest

def test_needs_a_missing_package():
    pytest.importorskip("ner_export_no_such_package", reason="needs ner_export_no_such_package")

def test_skips_for_a_missing_peer():
    pytest.skip("openvino_int8: pip install 'ner-export[peers]'")

def test_skips_for_absent_data():
    pytest.skip("CoNLL-2003 is not at /nowhere/train.txt (it is not redistributable)")

def test_has_its_package():
    assert pytest.importorskip("json").dumps(1) == "1"
"""


def _run(tmp_path: Path, guard: str | None) -> subprocess.CompletedProcess[str]:
    (tmp_path / "conftest.py").write_text(
        "from extras_guard import install, pytest_make_collect_report, pytest_runtest_makereport  # noqa: F401\n"
        "install()\n"
    )
    (tmp_path / "test_cases.py").write_text(CASES)
    env = {k: v for k, v in os.environ.items() if k != "NER_EXPORT_REQUIRE_EXTRAS"}
    if guard is not None:
        env["NER_EXPORT_REQUIRE_EXTRAS"] = guard
    env["PYTHONPATH"] = os.pathsep.join([str(TESTS), env.get("PYTHONPATH", "")])
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider", "--rootdir", str(tmp_path), "."],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )


def test_without_the_guard_missing_packages_skip(tmp_path: Path) -> None:
    result = _run(tmp_path, None)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed, 3 skipped" in result.stdout, result.stdout


def test_the_guard_fails_each_package_skip_and_names_it(tmp_path: Path) -> None:
    result = _run(tmp_path, "1")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "2 failed, 1 passed, 1 skipped" in result.stdout, result.stdout
    assert "'ner_export_no_such_package' does not import" in result.stdout
    assert "turns this skip into a failure: openvino_int8" in result.stdout
    assert "CoNLL-2003 is not at" in result.stdout  # data, not a package: still a skip


@pytest.mark.parametrize(
    "module",
    [
        "torch",
        "optimum.onnxruntime",
        "openvino",
        "nncf",
        "ctranslate2",
        "ray.serve",
        "pyarrow",
        "fastapi",
        "uvicorn",
        "prometheus_client",
        "matplotlib",
        "huggingface_hub",
        "httpx",
        "seqeval",
        "onnx",
        "onnx_ir",
    ],
)
def test_every_extra_imports_in_the_full_job(module: str) -> None:
    """In the full job (the guard on) each extra's package imports; elsewhere this says which is missing."""
    pytest.importorskip(module, reason=f"{module} is not installed here (CI's full job installs every extra)")
