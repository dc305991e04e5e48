"""transformers' token-classification pipeline for ner-export checkpoints, casing included.

A checkpoint trained with casing (`ner_export.runtime.casing`) reads each token's casing class from
token_type_ids. The stock pipeline fills that input with zeros, so it would run such a model as if
every word were lowercase. `ner_pipeline` returns the same pipeline with one change: after the stock
tokenization, token_type_ids are replaced by the casing classes of each token, taken from the text
through the tokenizer's offsets, exactly as training, export validation and the runtime compute
them. For a checkpoint without casing it is the stock pipeline. Works for a PyTorch model and for
Optimum's ORTModelForTokenClassification alike, since both read the same inputs.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ner_export.runtime.casing import case_ids

__all__ = ["ner_pipeline"]


def ner_pipeline(model: Any, tokenizer: Any | None = None, **kwargs: Any) -> Any:
    """`transformers.pipeline("token-classification", ...)` that feeds casing when the model was trained with it."""
    from transformers import AutoConfig, TokenClassificationPipeline, pipeline

    config = AutoConfig.from_pretrained(model) if isinstance(model, str) else model.config
    if not getattr(config, "ner_export_casing", False):
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
