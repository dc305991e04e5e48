"""ner_export.finetune: read CoNLL files and fine-tune a token-classification model (PyTorch).

Importing this package is cheap; torch and transformers load when training or tagging starts.
"""

from .conll import Sentence, TagRepairWarning, read_conll, write_conll
from .pipeline import ner_pipeline
from .train import TrainConfig, TrainResult, default_base_model, finetune, load_checkpoint, tag_words

__all__ = [
    "Sentence",
    "TagRepairWarning",
    "read_conll",
    "write_conll",
    "TrainConfig",
    "TrainResult",
    "finetune",
    "default_base_model",
    "load_checkpoint",
    "tag_words",
    "ner_pipeline",
]
