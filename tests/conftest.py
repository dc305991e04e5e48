"""Shared fixtures: a tiny random BERT with its own WordPiece vocabulary, built in the test session.

Nothing is downloaded. The classifier's weights are scaled up so the random model makes confident,
varied predictions: that exercises every decoding path, and keeps argmax decisions far from ties, so
PyTorch and ONNX agree on them despite float rounding.

With NER_EXPORT_REQUIRE_EXTRAS=1 (CI's full job) a skip for a missing optional package fails instead,
naming it (tests/extras_guard.py).

With NER_EXPORT_TEST_BUNDLES=DIR the bundle fixtures use the bundles `tests/make_test_bundle.py DIR`
built beforehand, so the runtime tests run in an install without torch; there the fixtures and tests
that need torch skip, saying so.
"""

from __future__ import annotations

import os
import string
from pathlib import Path

import pytest
from extras_guard import install, pytest_make_collect_report, pytest_runtest_makereport  # noqa: F401

install()

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

LABELS = ["O", "B-LOC", "B-MISC", "B-ORG", "B-PER", "I-LOC", "I-MISC", "I-ORG", "I-PER"]
WORDS = (
    "the a of in on to and said was for is by with at from that has new city bank john smith maria lopez "
    "paris london france germany berlin tokyo reuters company minister president united states u s "
    "corp inc group club university river north south monday friday world cup french german english "
    "##s ##ing ##ed ##er ##ly ##an ##ia ##on ##o ##a ##e ##i"
).split()

TRAIN_CONLL = """John B-PER
Smith I-PER
lives O
in O
Paris B-LOC
. O

Maria B-PER
Lopez I-PER
works O
for O
Reuters B-ORG
in O
London B-LOC
. O

The O
French B-MISC
minister O
said O
on O
Monday O
. O

Berlin B-LOC
Bank B-ORG
of I-ORG
Tokyo I-ORG
said O
Germany B-LOC
and O
France B-LOC
agreed O
. O
"""


def _vocab() -> list[str]:
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    chars = list(string.ascii_lowercase + string.digits + string.punctuation)
    vocab = special + chars + [f"##{c}" for c in string.ascii_lowercase + string.digits] + WORDS
    return list(dict.fromkeys(vocab))


PREBUILT = os.environ.get("NER_EXPORT_TEST_BUNDLES")


def needs_torch() -> None:
    """Skip the calling test or fixture when the train extra (torch, transformers) is not installed."""
    for module in ("torch", "transformers"):
        pytest.importorskip(module, reason=f"needs {module} (the train extra); this install has the runtime only")


def openvino_graph(bundle: Path):
    """The bundle's OpenVINO graph entry, for tests that run it (they skip without openvino).

    A bundle exported in this session must have one whenever openvino and nncf are installed (a failure,
    not a skip); a prebuilt bundle, or one exported without them, makes the test skip, saying why.
    """
    from importlib.util import find_spec

    from ner_export.runtime import BundleManifest

    pytest.importorskip("openvino", reason="needs openvino (pip install 'ner-export[openvino]'), absent here")
    manifest = BundleManifest.read(bundle)
    graphs = [g for g in manifest.graphs if g.backend == "openvino"]
    if graphs:
        return graphs[0]
    reason = manifest.validation.get("openvino", {}).get("reason", "not recorded")
    if PREBUILT or find_spec("nncf") is None:
        pytest.skip(f"the test bundle has no OpenVINO graph ({reason})")
    pytest.fail(f"openvino and nncf are installed but the export left the OpenVINO graph out: {reason}")


def make_tiny_checkpoint(folder: Path, labels: list[str] = LABELS, seed: int = 0, logit_scale: float = 40.0) -> Path:
    """Write a random 2-layer BERT token classifier and its tokenizer to `folder`."""
    import torch
    from transformers import BertConfig, BertForTokenClassification, BertTokenizerFast

    folder.mkdir(parents=True, exist_ok=True)
    vocab_file = folder / "vocab.txt"
    vocab_file.write_text("\n".join(_vocab()) + "\n", encoding="utf-8")
    tokenizer = BertTokenizerFast(vocab_file=str(vocab_file), do_lower_case=True, model_max_length=128)
    torch.manual_seed(seed)
    config = BertConfig(
        vocab_size=len(_vocab()),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
    )
    model = BertForTokenClassification(config).eval()
    with torch.no_grad():
        model.classifier.weight.mul_(logit_scale)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def conll_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("data") / "small.conll"
    path.write_text(TRAIN_CONLL, encoding="utf-8")
    return path


def make_casing_checkpoint(source: Path, out: Path, old_style: bool = False) -> Path:
    """`source` trained-with-casing style: three token-type rows, the new ones far apart, and the
    config.json `finetune` writes (marked so that stock transformers refuses it), or with `old_style`
    the older form that earlier versions wrote (the real model_type and `ner_export_casing: true`)."""
    import torch

    from ner_export.finetune import add_casing_rows, load_checkpoint, read_config, write_config

    model, tokenizer = load_checkpoint(str(source))
    add_casing_rows(model, str(source))
    torch.manual_seed(1)
    with torch.no_grad():
        rows = model.base_model.embeddings.token_type_embeddings.weight
        rows[1:] += torch.randn_like(rows[1:]) * 2.0  # as if training had moved them: casing must matter
    model.config.ner_export_casing = True
    model.save_pretrained(out)
    if not old_style:
        write_config(out, read_config(out))
    tokenizer.save_pretrained(out)
    return out


def export_tiny_bundle(checkpoint: Path, conll_file: Path, out: Path) -> Path:
    """The bundle of a tiny checkpoint, validated on `conll_file`."""
    from ner_export.export import ExportConfig, export_bundle

    export_bundle(ExportConfig(model_dir=str(checkpoint), out=str(out), validate_data=str(conll_file), progress=False))
    return out


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    needs_torch()
    return make_tiny_checkpoint(tmp_path_factory.mktemp("tiny") / "checkpoint")


def _bundle(name: str, checkpoint: str, request: pytest.FixtureRequest) -> Path:
    """The prebuilt bundle `name` (NER_EXPORT_TEST_BUNDLES), else the export of the `checkpoint` fixture."""
    if PREBUILT:
        return Path(PREBUILT) / name
    conll_file = request.getfixturevalue("conll_file")
    out = request.getfixturevalue("tmp_path_factory").mktemp(name) / "bundle"
    return export_tiny_bundle(request.getfixturevalue(checkpoint), conll_file, out)


@pytest.fixture(scope="session")
def tiny_bundle(request: pytest.FixtureRequest) -> Path:
    return _bundle("bundle", "tiny_checkpoint", request)


@pytest.fixture(scope="session")
def tiny_model(tiny_bundle: Path):
    from ner_export.runtime import NerModel

    return NerModel.load(tiny_bundle, precision="fp32")


@pytest.fixture(scope="module")
def offline(tiny_bundle: Path):
    """The tiny bundle's fp32 graph on one thread: the answers a server or an engine must equal exactly."""
    from ner_export.runtime import NerModel

    return NerModel.load(tiny_bundle, precision="fp32", threads=1)


@pytest.fixture(scope="session")
def casing_checkpoint(tiny_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny checkpoint trained-with-casing style: three token-type rows, the new ones far apart."""
    return make_casing_checkpoint(tiny_checkpoint, tmp_path_factory.mktemp("casing") / "checkpoint")


@pytest.fixture(scope="session")
def casing_bundle(request: pytest.FixtureRequest) -> Path:
    return _bundle("casing-bundle", "casing_checkpoint", request)


@pytest.fixture(scope="session")
def assert_same_entities():
    """A check that a transformers pipeline and a NerModel find the same entities, spans and scores in
    each text; returns how many entities were compared."""
    import numpy as np

    def check(reference, ours, texts) -> int:
        compared = 0
        for text in texts:
            expected = reference(text)
            got = ours(text)
            assert [(e["entity_group"], e["start"], e["end"]) for e in expected] == [
                (e.label, e.start, e.end) for e in got
            ], text
            np.testing.assert_allclose(
                [e.score for e in got], [float(e["score"]) for e in expected], rtol=1e-4, atol=1e-5
            )
            compared += len(got)
        return compared

    return check
