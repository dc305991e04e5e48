"""The runtime-only CI job's own checks: that its environment really has no torch stack, and that the
runtime tests there run on the bundles built beforehand (tests/make_test_bundle.py).

These run only with NER_EXPORT_RUNTIME_ONLY=1, which .ci/run sets for that job; in the full
install they skip, since torch is installed there on purpose.
"""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

pytestmark = pytest.mark.skipif(
    os.environ.get("NER_EXPORT_RUNTIME_ONLY") != "1",
    reason="runs in the runtime-only CI job (NER_EXPORT_RUNTIME_ONLY=1, an install without torch)",
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
