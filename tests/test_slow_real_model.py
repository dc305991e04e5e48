"""Slow tests on a real model: the demo (all-MiniLM-L6-v2 fine-tuned on the shipped sample).

Run with `python -m pytest -m slow`; CI runs them after the default suite.
"""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory):
    from ner_export.demo import run_demo

    lines: list[str] = []
    result = run_demo(tmp_path_factory.mktemp("demo"), progress=False, echo=lines.append)
    return result, "\n".join(lines)


def test_demo_learns_the_sample(demo) -> None:
    result, text = demo
    assert "-> " in text and "| ner-export int8" in text
    assert result.pytorch_f1 > 0.8, text
    assert abs(result.bundle_f1 - result.pytorch_f1) < 0.03, text


def test_long_document_gives_the_entities_of_its_sentences(demo) -> None:
    """A 20,000-character document, windowed, against each sentence predicted alone.

    The only expected differences come from context: inside the document the model also sees the
    neighbouring sentences (it was trained on single sentences), which can flip a few borderline words.
    Window boundaries must not add any: no entity may cross a sentence boundary, be cut or duplicated.
    """
    from ner_export.demo import sample_path
    from ner_export.finetune import read_conll
    from ner_export.runtime import NerModel

    result, _ = demo
    model = NerModel.load(result.bundle)
    texts: list[str] = []
    for split in ("test", "dev", "train"):
        texts += [" ".join(s.words) for s in read_conll(sample_path(split))]
    document, starts, position = "", [], 0
    for text in texts:
        starts.append(position)
        position += len(text) + 1
        if position > 20_000:
            break
    texts = texts[: len(starts)]
    document = " ".join(texts)
    assert len(document) >= 20_000
    assert len(model._tokenizer.encode(document, add_special_tokens=False).ids) > 50 * model.manifest.max_length

    alone = {
        (e.label, s + e.start, s + e.end)
        for s, entities in zip(starts, model.predict(texts), strict=True)
        for e in entities
    }
    together = model(document)
    spans = [(e.label, e.start, e.end) for e in together]
    assert len(spans) == len(set(spans)), "duplicated entities"
    for a, b in zip(together, together[1:], strict=False):
        assert a.end <= b.start, "overlapping or unsorted entities"
    bounds = set(starts[1:])
    for entity in together:
        assert not any(entity.start < b - 1 < entity.end for b in bounds), f"{entity} crosses a sentence boundary"
    same = len(alone & set(spans))
    assert same / len(alone) > 0.95 and same / len(spans) > 0.95, (len(alone), len(spans), same)
