"""transformers' token-classification pipeline for ner-export checkpoints and bundles, casing included.

A model trained with casing (`ner_export.runtime.casing`) reads each token's casing class from
token_type_ids. The stock pipeline fills that input with zeros, so it would run such a model as if
every word were lowercase; its config.json is therefore marked so that stock loaders refuse it
(`_checkpoint`). `ner_pipeline` is the way in: it resolves the marker, and returns the same pipeline
with one change: after the stock tokenization, token_type_ids are replaced by the casing classes of
each token, taken from the text through the tokenizer's offsets, exactly as training, export
validation and the runtime compute them. For a model without casing it is the stock pipeline. It
takes a checkpoint folder, a bundle folder (Optimum's ORTModel on the bundle's int8 graph), or a
loaded PyTorch or ORTModel model, since all read the same inputs.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from ner_export.runtime.casing import case_ids
from ner_export.runtime.errors import MissingDependencyError
from ner_export.runtime.manifest import BundleManifest, is_bundle

from ._checkpoint import checkpoint_casing, load_checkpoint, load_config, load_tokenizer

__all__ = ["ner_pipeline"]


def ner_pipeline(model: Any, tokenizer: Any | None = None, **kwargs: Any) -> Any:
    """`transformers.pipeline("token-classification", ...)` that feeds casing when the model was trained with it.

    `model` is a checkpoint folder, a bundle folder (run by Optimum's ORTModelForTokenClassification on
    its int8 graph), or a loaded model whose config came from `load_checkpoint` / `load_config`.
    """
    from transformers import TokenClassificationPipeline, pipeline

    if isinstance(model, (str, os.PathLike)):
        path = str(model)
        if is_bundle(path):
            model = _bundle_model(path)
            tokenizer = load_tokenizer(path) if tokenizer is None else tokenizer
        elif not checkpoint_casing(load_config(path)):
            return pipeline("token-classification", model=path, tokenizer=tokenizer, **kwargs)
        else:
            model, loaded = load_checkpoint(path)
            tokenizer = loaded if tokenizer is None else tokenizer
    if not checkpoint_casing(model.config):
        return pipeline("token-classification", model=model, tokenizer=tokenizer, **kwargs)

    class CasingPipeline(TokenClassificationPipeline):
        def preprocess(self, sentence: Any, offset_mapping: Any = None, **params: Any) -> Iterator[dict[str, Any]]:
            for inputs in super().preprocess(sentence, offset_mapping=offset_mapping, **params):
                offsets = inputs["offset_mapping"][0].tolist()  # special tokens: (0, 0), so class 0
                # pre-split words come with word_ids, and their offsets are within each word
                types = case_ids(sentence, offsets, inputs.get("word_ids"))
                inputs["token_type_ids"] = inputs["input_ids"].new_tensor([types])
                yield inputs

    return pipeline("token-classification", model=model, tokenizer=tokenizer, pipeline_class=CasingPipeline, **kwargs)


def _bundle_model(path: str) -> Any:
    """Optimum's ORTModel on the bundle's int8 graph, with the bundle's config resolved."""
    try:
        from optimum.onnxruntime import ORTModelForTokenClassification
    except ImportError as exc:
        raise MissingDependencyError(exc.name or "optimum", "export", "Running a bundle in Optimum") from exc
    graph = BundleManifest.read(path).graph_for("cpu", "int8").file
    return ORTModelForTokenClassification.from_pretrained(path, config=load_config(path), file_name=graph)
