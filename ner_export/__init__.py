"""ner-export: fine-tune an NER model, export it to an int8 ONNX bundle, serve it without torch.

The packages, in the order data flows through them:

- `ner_export.finetune`  CoNLL reader and PyTorch fine-tuning (needs the `train` extra)
- `ner_export.export`    checkpoint -> validated ONNX bundle (needs `train` and `export`)
- `ner_export.runtime`   bundle -> entities, with onnxruntime + tokenizers + numpy only
- `ner_export.serve`     the bundle as an HTTP service (needs the `serve` extra; imports only the runtime)
- `ner_export.annotate`  bulk annotation of corpora (local or Ray) and the shared input reader
- `ner_export.benchmarks` accuracy and speed comparisons, and the demo

`NerModel` and `Entity` are re-exported here lazily, so importing this package stays cheap.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["NerModel", "Entity", "__version__"]


def __getattr__(name: str) -> Any:
    if name in ("NerModel", "Entity"):
        from . import runtime

        return getattr(runtime, name)
    raise AttributeError(f"module 'ner_export' has no attribute {name!r}")
