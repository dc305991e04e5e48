"""ner_export.finetune: fine-tune a token-classification model on CoNLL files, tag and score with PyTorch.

Importing this package is cheap; torch and transformers load when training or tagging starts. The
modules behind it are private (`_train`, `_checkpoint`, `_encoding`, `_batching`, `_tagging`,
`_evaluate`, `_pipeline`, and for distillation `_distill`, `_distill_config`, `_distill_data`, `_teacher`,
`_student`): the names below are the package's API, the one other packages use.
The CoNLL reader and the reader of CoNLL or span files (`ner_export.runtime.conll`,
`ner_export.runtime.labeled_data`, no torch) live in the runtime and are re-exported here.
"""

from ner_export.runtime.conll import Sentence, TagRepairWarning, read_conll, write_conll
from ner_export.runtime.evaluate import EvalReport
from ner_export.runtime.labeled_data import read_labeled

from ._batching import collate, shuffled_batches
from ._checkpoint import (
    CASING_MODEL_TYPE,
    DEV_SAMPLE_NAME,
    add_casing_rows,
    checkpoint_casing,
    checkpoint_context,
    default_base_model,
    load_checkpoint,
    load_config,
    load_tokenizer,
    read_config,
    write_config,
)
from ._distill import distill
from ._distill_config import LAYER_CHOICES, DistillConfig, DistillError, DistillResult
from ._encoding import encode_examples, first_subword_mask, group_sentences, special_tokens, training_features
from ._evaluate import evaluate, evaluate_checkpoint
from ._pipeline import ner_pipeline
from ._tagging import tag_words
from ._train import (
    TRAIN_CONTEXTS,
    Relatedness,
    TrainConfig,
    TrainResult,
    choose_context,
    finetune,
    neighbour_relatedness,
)

__all__ = [
    "Sentence",
    "TagRepairWarning",
    "read_conll",
    "write_conll",
    "read_labeled",
    "TrainConfig",
    "TrainResult",
    "TRAIN_CONTEXTS",
    "Relatedness",
    "choose_context",
    "neighbour_relatedness",
    "finetune",
    "DistillConfig",
    "DistillResult",
    "DistillError",
    "LAYER_CHOICES",
    "distill",
    "default_base_model",
    "load_checkpoint",
    "load_config",
    "load_tokenizer",
    "read_config",
    "write_config",
    "CASING_MODEL_TYPE",
    "add_casing_rows",
    "checkpoint_casing",
    "checkpoint_context",
    "DEV_SAMPLE_NAME",
    "tag_words",
    "ner_pipeline",
    "special_tokens",
    "first_subword_mask",
    "encode_examples",
    "group_sentences",
    "training_features",
    "shuffled_batches",
    "collate",
    "EvalReport",
    "evaluate",
    "evaluate_checkpoint",
]
