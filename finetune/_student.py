"""The student: a copy of the teacher that keeps some of its transformer layers and everything else.

Embeddings (word, position and the casing rows of token types), the classifier and the config (labels,
casing, context, window) are the teacher's, so the student reads text exactly as the teacher does and
exports, loads and serves like any checkpoint: only `num_hidden_layers` differs. The kept layers are
renumbered 0..N-1 in the order they had in the teacher.

The layer stack is found where the common encoders keep it (BERT, RoBERTa, ELECTRA, XLM-R: the base
model's `encoder.layer`; DistilBERT: `transformer.layer`); any other architecture is refused by name
rather than guessed at.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from ._distill_config import DistillError

_LAYER_STACKS = (("encoder", "layer"), ("transformer", "layer"))  # attribute paths under the base model
_DEPTH_KEYS = ("num_hidden_layers", "n_layers")  # the config entry that says how many there are


def _layer_stack(model: Any) -> tuple[Any, str, Any]:
    """(the module holding the layer list, the list's attribute name, the list) of a token classifier."""
    import torch

    base = model.base_model
    for holder_name, list_name in _LAYER_STACKS:
        holder = getattr(base, holder_name, None)
        layers = getattr(holder, list_name, None)
        if isinstance(layers, torch.nn.ModuleList):
            return holder, list_name, layers
    raise DistillError(
        f"{type(model).__name__}: no transformer layer list found (looked for "
        f"{', '.join('.'.join(path) for path in _LAYER_STACKS)}); this architecture cannot be distilled"
    )


def teacher_depth(model: Any) -> int:
    """How many transformer layers the model has."""
    return len(_layer_stack(model)[2])


def make_student(teacher: Any, layers: Sequence[int]) -> Any:
    """A new model: `teacher` with only the transformer layers `layers` (indices into its stack), in
    train mode; the teacher itself is left untouched."""
    student = copy.deepcopy(teacher)
    holder, list_name, stack = _layer_stack(student)
    kept = type(stack)([stack[i] for i in layers])
    setattr(holder, list_name, kept)
    for key in _DEPTH_KEYS:
        if hasattr(student.config, key):
            setattr(student.config, key, len(layers))
    return student.train()
