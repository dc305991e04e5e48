"""Labelled data from CoNLL or span files, as the sentences training and scoring read, with a report.

`read_labeled` is the one entry point: a CoNLL file goes to `runtime.conll.read_conll`; a span file
(`.jsonl`, `.ndjson`, `.json`, or any file with `data_format="spans"`) is read by
`runtime.span_files`, and each record becomes one `Sentence` through `runtime.span_words`, so both
formats give the same training examples. The format follows the extension unless named; content is
never sniffed, since a guess that is wrong for one file in a thousand fails far from its cause.

Documents: a record may name its document (`doc_id`, `document` or `meta.doc_id`). The records of one
document, in file order, are its sentences, read together under document context as a CoNLL file's
`-DOCSTART-` sections are. Documents are numbered by first appearance; a document whose records are
spread over the file is gathered at its first record (its records keep their order), since sentences
of one document must be neighbours for context to read them together. Records that name no document
form one unnamed document, as a CoNLL file without `-DOCSTART-` forms one.

The report says what was used (records, spans), what was skipped (bad records, with `skip_bad`) and
which spans did not align with words (`runtime.span_words` describes the rule). Skipped records and
misaligned spans are also announced as one warning each per file, naming the first case and the
count, as `read_conll` announces repaired tags: a training run then shows them without asking.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .conll import Sentence, read_conll
from .errors import MisalignedSpansWarning, SkippedRecordsWarning
from .labels import entity_chunks
from .span_files import BadRecord, SpanFile, is_span_file, read_span_file
from .span_records import OFFSET_UNITS
from .span_words import MisalignedSpan, label_words

__all__ = [
    "DATA_FORMATS",
    "LabeledData",
    "DataReport",
    "MisalignedSpanReport",
    "SkippedRecordsWarning",
    "MisalignedSpansWarning",
    "data_format_of",
    "report_summary",
    "read_labeled",
    "span_file_sentences",
]

DATA_FORMATS = ("auto", "conll", "spans")
"""What `read_labeled` accepts: "auto" picks "spans" for .jsonl, .ndjson and .json files, else "conll"."""


@dataclass(frozen=True)
class MisalignedSpanReport:
    """A misaligned span and where it is: the file, the record's row (0-based) and line (1-based)."""

    source: str
    row: int
    line: int
    misaligned: MisalignedSpan

    def describe(self) -> str:
        return f"{self.source}:{self.line}: {self.misaligned.describe()}"

    def to_dict(self) -> dict[str, Any]:
        span = self.misaligned.span
        return {
            "source": self.source,
            "row": self.row,
            "line": self.line,
            "start": span.start,
            "end": span.end,
            "label": span.label,
            "text": self.misaligned.text,
            "words": self.misaligned.words,
            "labelled": self.misaligned.labelled,
        }


@dataclass(frozen=True)
class DataReport:
    """What reading one data file used and set aside.

    `records`: sentences (CoNLL) or records (span file) used; `spans`: entities they hold, as tagged
    words (a dropped misaligned span is not counted); `shape`: the span records' shape, "" for CoNLL.
    """

    path: str
    data_format: str
    shape: str
    records: int
    spans: int
    documents: int
    bad: tuple[BadRecord, ...] = ()
    misaligned: tuple[MisalignedSpanReport, ...] = ()

    def summary(self) -> str:
        """One line for logs: what was used, skipped and misaligned (`report_summary`)."""
        return report_summary(self.counts())

    def counts(self) -> dict[str, Any]:
        """The report with counts in place of the lists of bad records and misaligned spans (metrics.json)."""
        return {**self.to_dict(), "bad_records": len(self.bad), "misaligned_spans": len(self.misaligned)}

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data (for metrics files and `--errors` style reports)."""
        return {
            "path": self.path,
            "data_format": self.data_format,
            "shape": self.shape,
            "records": self.records,
            "spans": self.spans,
            "documents": self.documents,
            "bad_records": [b.error_dict() for b in self.bad],
            "misaligned_spans": [m.to_dict() for m in self.misaligned],
        }


@dataclass(frozen=True)
class LabeledData:
    """The sentences of a data file (what `read_conll` returns, for either format) and its report."""

    sentences: list[Sentence]
    report: DataReport


def report_summary(counts: Mapping[str, Any]) -> str:
    """The one log line of a report's `counts()` (as metrics.json keeps them): what was used, skipped and
    misaligned, e.g. `dev.jsonl: spans (entities), 250 records, 610 entities, 1 document(s)`."""
    spans = counts.get("data_format") == "spans"
    kind = f"spans ({counts.get('shape')})" if spans else counts.get("data_format")
    unit = "records" if spans else "sentences"
    used = f"{counts.get('records')} {unit}, {counts.get('spans')} entities, {counts.get('documents')} document(s)"
    parts = [f"{counts.get('path')}: {kind}, {used}"]
    if counts.get("bad_records"):
        parts.append(f"{counts['bad_records']} bad record(s) skipped")
    if counts.get("misaligned_spans"):
        parts.append(f"{counts['misaligned_spans']} span(s) not aligned with words")
    return "; ".join(parts)


def data_format_of(path: str | Path, data_format: str = "auto") -> str:
    """ "conll" or "spans": `data_format` unless it is "auto", then what the file's extension says."""
    if data_format not in DATA_FORMATS:
        raise ValueError(f"data_format must be one of {', '.join(DATA_FORMATS)}, got {data_format!r}")
    if data_format != "auto":
        return data_format
    return "spans" if is_span_file(path) else "conll"


def read_labeled(
    path: str | Path, data_format: str = "auto", offsets: str = "codepoints", skip_bad: bool = False
) -> LabeledData:
    """Read a CoNLL or span file into sentences with IOB2 tags, and report what was used.

    `data_format`: "auto" (by extension: .jsonl/.ndjson/.json are span files), "conll" or "spans".
    `offsets`: what span offsets count, "codepoints" or "utf16" (ignored for CoNLL).
    `skip_bad`: skip and report bad span records instead of stopping at the first (a CoNLL file has no
    records to skip: `read_conll` stops at its first bad line either way).
    Raises DataNotFoundError for a missing file, DataFormatError naming the file and line otherwise.
    """
    if offsets not in OFFSET_UNITS:
        raise ValueError(f"offsets must be one of {', '.join(OFFSET_UNITS)}, got {offsets!r}")
    if data_format_of(path, data_format) == "conll":
        sentences = read_conll(path)
        entities = sum(len(entity_chunks(s.tags)) for s in sentences)
        documents = len({s.document for s in sentences})
        return LabeledData(sentences, DataReport(str(path), "conll", "", len(sentences), entities, documents))
    return span_file_sentences(read_span_file(path, offsets=offsets, skip_bad=skip_bad))


def span_file_sentences(span_file: SpanFile) -> LabeledData:
    """The sentences of a read span file, one per good record, grouped into documents (module docstring)."""
    numbers: dict[str | int | None, int] = {}
    grouped: dict[int, list[Sentence]] = {}
    misaligned: list[MisalignedSpanReport] = []
    used = 0
    for record in span_file.records:
        # a name is keyed with its type: doc_id 1 and doc_id "1" are two documents, as in the file
        document = numbers.setdefault(_document_key(record.document), len(numbers))
        labels = label_words(record.text, record.spans)
        used += labels.used
        misaligned.extend(MisalignedSpanReport(record.source, record.row, record.line, m) for m in labels.misaligned)
        grouped.setdefault(document, []).append(Sentence(labels.words, labels.tags, document, record.line))
    sentences = [sentence for document in sorted(grouped) for sentence in grouped[document]]
    report = DataReport(
        span_file.path,
        "spans",
        span_file.shape,
        len(span_file.records),
        used,
        len(grouped),
        span_file.bad,
        tuple(misaligned),
    )
    _warn(report)
    return LabeledData(sentences, report)


def _document_key(name: str | int | None) -> Any:
    return name if name is None else (type(name).__name__, name)


def _warn(report: DataReport) -> None:
    if report.bad:
        first = report.bad[0]
        message = f"{first.message} (skipped; {len(report.bad)} bad record(s) skipped in the file)"
        warnings.warn(SkippedRecordsWarning(message, [b.message for b in report.bad]), stacklevel=3)
    if report.misaligned:
        warnings.warn(
            f"{report.misaligned[0].describe()} ({len(report.misaligned)} such span(s) in the file)",
            MisalignedSpansWarning,
            stacklevel=3,
        )
