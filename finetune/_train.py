"""Fine-tune a BERT-like encoder for token classification on CoNLL-style or span (annotation tool) files.

The recipe is the standard one, kept small and explicit rather than hidden behind `Trainer`: the
first sub-word of each word carries the word's label (the others are ignored by the loss), batches are
padded to their own longest sentence, AdamW with linear warmup and decay, gradient clipping, and a
seeded shuffle. Dev F1 (seqeval, entity level) is measured after every epoch and the best epoch's
weights are kept in memory, then written once, atomically, as a standard Hugging Face folder that
`transformers.pipeline("token-classification", model=DIR)` loads as it is.

Two inputs go beyond the standard recipe, both stored in the checkpoint's config so that every later
stage reads the model the way it was trained: document context (`ner_export.runtime.context`) and
casing classes in token_type_ids for uncased bases (`ner_export.runtime.casing`). Context is chosen
from the data by default ("auto"): neighbouring sentences help when they belong to one document (news
split into sentences) and are noise when they are unrelated texts. A file that marks its documents
says which it holds; for one that does not, the cheap test of `neighbour_relatedness` (do neighbours
share content words far more often than random pairs?) tells a document stream from a pile of
independent texts. The choice and its reason are returned, printed and recorded, since a wrong guess
costs accuracy silently.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from ner_export.runtime.conll import Sentence
from ner_export.runtime.context import CONTEXT_MODES
from ner_export.runtime.errors import LabelMismatchError, MissingDependencyError, OutputExistsError
from ner_export.runtime.labeled_data import DATA_FORMATS, DataReport, read_labeled
from ner_export.runtime.labels import sorted_labels
from ner_export.runtime.span_records import OFFSET_UNITS

from ._batching import collate, shuffled_batches
from ._checkpoint import default_base_model, import_torch, load_base_model, load_tokenizer, save_checkpoint
from ._encoding import Feature, training_features
from ._tagging import tag_words

_NO_DECAY = ("bias", "LayerNorm.weight", "layer_norm", "norm.weight")  # parameters AdamW does not decay
_EVAL_BATCH = 64
_LOSS_WINDOW = 50  # batches the progress bar's running loss averages over
_DEV_SAMPLE_SENTENCES = 1000  # dev sentences kept in the checkpoint for export validation

TRAIN_CONTEXTS = ("auto", *CONTEXT_MODES)
"""What `TrainConfig.context` accepts: "auto" resolves to one of the runtime's CONTEXT_MODES, which is
what the checkpoint and the bundle record; "auto" itself is never stored."""


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
    context: str = "auto"  # "auto": "document" when the training file marks documents, else "none"
    casing: bool = True
    target_tokens: int = 0
    group_by_length: bool = False
    max_train_sentences: int | None = None
    force: bool = False
    progress: bool = True
    data_format: str = "auto"  # "conll", "spans", or "auto": span files by extension (runtime.labeled_data)
    offsets: str = "codepoints"  # what span offsets count: "codepoints" or "utf16"
    skip_bad: bool = False  # skip (and report) bad span records instead of stopping at the first

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
        if self.context not in TRAIN_CONTEXTS:
            raise ValueError(f"context must be one of {', '.join(TRAIN_CONTEXTS)}, got {self.context!r}")
        if self.data_format not in DATA_FORMATS:
            raise ValueError(f"data_format must be one of {', '.join(DATA_FORMATS)}, got {self.data_format!r}")
        if self.offsets not in OFFSET_UNITS:
            raise ValueError(f"offsets must be one of {', '.join(OFFSET_UNITS)}, got {self.offsets!r}")
        if self.target_tokens < 0 or self.target_tokens >= self.max_length:
            raise ValueError(
                "target_tokens must be 0 (one sentence per window) or below "
                f"max_length={self.max_length}, got {self.target_tokens}"
            )
        if self.target_tokens and self.context != "document":
            raise ValueError(
                "target_tokens packs consecutive sentences of a document into one window; it needs context='document'"
            )


@dataclass(frozen=True)
class TrainResult:
    """Where the checkpoint went and how good it is."""

    out: str
    best_epoch: int
    best_dev_f1: float
    train_seconds: float
    test_f1: float | None = None
    epochs: list[dict[str, Any]] = field(default_factory=list)
    context: str = "none"  # the mode trained with, "auto" resolved
    context_reason: str = ""  # why that mode, one line


@dataclass(frozen=True)
class _RunSentences:
    """The sentences of one run and the label list training defines."""

    train: list[Sentence]
    dev: list[Sentence]
    test: list[Sentence] | None
    labels: list[str]
    train_documents: int  # documents the whole training file marks (1 without -DOCSTART- lines)
    relatedness: Relatedness | None  # of the whole training file, when it marks no documents
    reports: dict[str, DataReport] = field(default_factory=dict)  # what reading each file used and set aside


@dataclass(frozen=True)
class Relatedness:
    """How often neighbouring sentences share a content word, against random pairs of the same file."""

    adjacent: float  # share of consecutive sentence pairs (within a document) with a common content word
    random: float  # the same share over random pairs: what unrelated sentences of this file share
    pairs: int

    @property
    def related(self) -> bool:
        """Neighbours clearly related: twice random pairs' rate and 5 points above it, on enough pairs."""
        return self.pairs >= _MIN_PAIRS and self.adjacent >= 2 * self.random and self.adjacent - self.random >= 0.05

    def describe(self) -> str:
        return (
            f"{100 * self.adjacent:.1f}% of neighbouring sentence pairs share a content word, "
            f"against {100 * self.random:.1f}% of random pairs ({self.pairs} pairs)"
        )


_MIN_PAIRS = 50


def neighbour_relatedness(sentences: Sequence[Sentence], seed: int = 0) -> Relatedness:
    """`Relatedness` of a file's sentences: content words are alphabetic words of four letters or more,
    compared case-insensitively. News split into sentences shares many (names, topics); a shuffled
    corpus or a file of independent texts shares about what random pairs share."""
    words = [{w.lower() for w in s.words if len(w) > 3 and w.isalpha()} for s in sentences]
    adjacent = [
        bool(words[i] & words[i + 1])
        for i in range(len(sentences) - 1)
        if sentences[i].document == sentences[i + 1].document
    ]
    order = list(range(len(sentences)))
    random.Random(seed).shuffle(order)
    unrelated = [bool(words[i] & words[j]) for i, j in zip(range(len(order)), order, strict=True) if abs(i - j) > 1]
    return Relatedness(
        sum(adjacent) / len(adjacent) if adjacent else 0.0,
        sum(unrelated) / len(unrelated) if unrelated else 0.0,
        len(adjacent),
    )


def choose_context(
    requested: str, documents: int, relatedness: Relatedness | None = None, data_format: str = "conll"
) -> tuple[str, str]:
    """(context mode, why) for a training file that marks `documents` documents (1 when nothing divides
    it: no `-DOCSTART-` line between sentences of a CoNLL file, no two `doc_id`s among a span file's
    records): `requested` unless it is "auto", which picks "document" when there are at least two
    documents, or when the unmarked file's neighbouring sentences are clearly related (`relatedness`:
    news split into sentences), and "none" otherwise. `data_format` ("conll" or "spans") names what
    marks documents in the reason."""
    if requested not in TRAIN_CONTEXTS:
        raise ValueError(f"context must be one of {', '.join(TRAIN_CONTEXTS)}, got {requested!r}")
    marked = documents > 1
    if data_format == "spans":
        found = f"the training file's records name {documents} documents (doc_id)"
        unmarked = unseparated = "no doc_id divides the training file's records into documents"
    else:
        found = f"the training file marks {documents} documents with -DOCSTART- lines"
        unmarked = "no -DOCSTART- line marks documents"
        unseparated = "no -DOCSTART- line separates documents in the training file"
    if requested == "auto":
        if marked:
            return "document", f"chosen automatically: {found}, so each sentence is read with its document's neighbours"
        if relatedness is not None and relatedness.related:
            return "document", (
                f"chosen automatically: {unmarked}, but consecutive sentences are related "
                f"({relatedness.describe()}), so each sentence is read with its neighbours"
            )
        measured = f" and consecutive sentences look unrelated ({relatedness.describe()})" if relatedness else ""
        return "none", f"chosen automatically: {unseparated}{measured}, so each sentence is read alone"
    if requested == "document" and not marked:
        return requested, "as asked; the training file marks no documents, so context comes from consecutive sentences"
    return requested, f"as asked; {found}" if marked else "as asked"


def finetune(config: TrainConfig) -> TrainResult:
    """Fine-tune, keep the best-on-dev epoch and write the checkpoint folder `config.out`.

    `config.context="auto"` is resolved first (`choose_context`); the result says which mode was used
    and why, and metrics.json and training_args.json record it.
    """
    torch = import_torch()
    out = Path(config.out)
    _prepare_out(out, config.force)
    data = _read_data(config)
    train_format = data.reports["train"].data_format
    context, reason = choose_context(config.context, data.train_documents, data.relatedness, train_format)
    asked = config
    config = replace(config, context=context)  # from here on the resolved mode, never "auto"
    base = config.base_model or default_base_model()
    random.seed(config.seed)
    torch.manual_seed(config.seed)
    tokenizer = load_tokenizer(base)
    model = load_base_model(base, data.labels, config.casing)
    label2id = {label: i for i, label in enumerate(data.labels)}
    features = training_features(
        tokenizer, data.train, label2id, config.max_length, config.context, config.target_tokens, config.casing
    )
    history, seconds = _train_epochs(torch, model, tokenizer, features, data.dev, config)
    best = max(history, key=lambda row: row["dev_f1"]) if history else None
    metrics: dict[str, Any] = {
        "best_epoch": best["epoch"] if best else 0,
        "best_dev_f1": best["dev_f1"] if best else -1.0,
        "context": context,
        "context_reason": reason,
        "train_seconds": round(seconds, 2),
        "train_sentences": len(data.train),
        "dev_sentences": len(data.dev),
        "labels": data.labels,
        "epochs": history,
        "data": {name: report.counts() for name, report in data.reports.items()},
    }
    test_f1 = None
    if data.test is not None:
        test_scores = _model_scores(model, tokenizer, data.test, config)
        test_f1 = test_scores["f1"]
        metrics["test"] = {**test_scores, "sentences": len(data.test)}
    save_checkpoint(
        out,
        model,
        tokenizer,
        max_length=config.max_length,
        context=config.context,
        dev_sample=data.dev[:_DEV_SAMPLE_SENTENCES],
        metrics=metrics,
        args={**asdict(asked), "base_model": base, "context_chosen": context, "context_reason": reason},
        model_card=True,
    )
    return TrainResult(
        str(out),
        metrics["best_epoch"],
        metrics["best_dev_f1"],
        round(seconds, 2),
        test_f1,
        history,
        context=context,
        context_reason=reason,
    )


def _prepare_out(out: Path, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"{out}: exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise OutputExistsError(f"{out}: directory exists and is not empty; pass --force to replace it")


def _read_data(config: TrainConfig) -> _RunSentences:
    """The run's sentences (CoNLL or span files, `runtime.labeled_data`); LabelMismatchError when dev or
    test has labels training never saw."""
    files = [("train", config.train), ("dev", config.dev), ("test", config.test)]
    read = {
        name: read_labeled(path, config.data_format, config.offsets, config.skip_bad) for name, path in files if path
    }
    train = read["train"].sentences
    documents = len({s.document for s in train})
    relatedness = neighbour_relatedness(train) if documents < 2 else None
    if config.max_train_sentences:
        train = train[: config.max_train_sentences]
    dev = read["dev"].sentences
    test = read["test"].sentences if "test" in read else None
    labels = sorted_labels(t for s in train for t in s.tags)
    for name, sentences in (("dev", dev), ("test", test or [])):
        unknown = sorted({t for s in sentences for t in s.tags} - set(labels))
        if unknown:
            raise LabelMismatchError(f"the {name} file has labels never seen in training: {', '.join(unknown)}")
    reports = {name: data.report for name, data in read.items()}
    return _RunSentences(train, dev, test, labels, documents, relatedness, reports)


def optimizer_step(torch: Any, model: Any, loss: Any, stepping: tuple[Any, Any], max_grad_norm: float) -> None:
    """Backpropagate `loss`, clip the gradients' norm, step the optimizer and its schedule, clear the gradients."""
    optimizer, scheduler = stepping
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)


def show_running_loss(bar: Any, losses: list[float]) -> None:
    """The progress bar's loss: the mean over the last _LOSS_WINDOW batches."""
    recent = losses[-_LOSS_WINDOW:]
    bar.set_postfix(loss=f"{sum(recent) / len(recent):.4f}")


def _train_epochs(
    torch: Any, model: Any, tokenizer: Any, features: list[Feature], dev: list[Sentence], config: TrainConfig
) -> tuple[list[dict[str, Any]], float]:
    """Train for `config.epochs`, scoring dev after each; leaves `model` at its best epoch, in eval mode.

    Returns the per-epoch history and the total seconds.
    """
    from tqdm.auto import tqdm
    from transformers import get_linear_schedule_with_warmup

    lengths = [len(ids) for ids, _, _ in features]
    pad_id = tokenizer.pad_token_id or 0
    steps_per_epoch = (len(features) + config.batch_size - 1) // config.batch_size
    total_steps = steps_per_epoch * config.epochs
    groups = [
        {
            "params": [p for n, p in model.named_parameters() if not any(k in n for k in _NO_DECAY)],
            "weight_decay": config.weight_decay,
        },
        {"params": [p for n, p in model.named_parameters() if any(k in n for k in _NO_DECAY)], "weight_decay": 0.0},
    ]
    optimizer = torch.optim.AdamW(groups, lr=config.learning_rate)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(config.warmup_ratio * total_steps), total_steps)
    shuffler = random.Random(config.seed)

    history: list[dict[str, Any]] = []
    best_f1, best_state = -1.0, None
    started = time.perf_counter()
    for epoch in range(1, config.epochs + 1):
        epoch_start = time.perf_counter()
        model.train()
        losses = []
        batches = shuffled_batches(lengths, config.batch_size, shuffler, config.group_by_length)
        bar = tqdm(batches, desc=f"epoch {epoch}/{config.epochs}", disable=not config.progress, unit="batch")
        for rows in bar:
            loss = model(**collate(torch, [features[i] for i in rows], pad_id)).loss
            optimizer_step(torch, model, loss, (optimizer, scheduler), config.max_grad_norm)
            losses.append(loss.item())
            show_running_loss(bar, losses)
        train_seconds = time.perf_counter() - epoch_start
        model.eval()
        scores = _model_scores(model, tokenizer, dev, config)
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
            best_f1 = scores["f1"]
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    seconds = time.perf_counter() - started
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return history, seconds


def _model_scores(model: Any, tokenizer: Any, sentences: list[Sentence], config: TrainConfig) -> dict[str, float]:
    """seqeval's entity-level F1, precision and recall of the model's tags on `sentences`."""
    words = [list(s.words) for s in sentences]
    documents = [s.document for s in sentences]
    predicted = tag_words(model, tokenizer, words, _EVAL_BATCH, config.max_length, config.context, documents)
    return _seqeval_scores([list(s.tags) for s in sentences], predicted)


def _seqeval_scores(gold: list[list[str]], predicted: list[list[str]]) -> dict[str, float]:
    try:
        from seqeval.metrics import f1_score, precision_score, recall_score
    except ImportError as exc:
        raise MissingDependencyError("seqeval", "train", "Dev evaluation") from exc
    return {
        "f1": float(f1_score(gold, predicted, zero_division=0)),
        "precision": float(precision_score(gold, predicted, zero_division=0)),
        "recall": float(recall_score(gold, predicted, zero_division=0)),
    }
