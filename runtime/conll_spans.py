"""CoNLL <-> span files: turn word-and-tag sentences into text-and-span records and back.

A sentence becomes one record: its words joined by single spaces are the text, each entity is a span
from its first word's first character to its last word's last character, in ner-export's own
`entities` shape (`predict`'s output: `start`, `end`, `label` and the span's `text`, which reading
checks). When the sentences belong to more than one document, each record names its document
(`doc_id`, the document's number); reading groups records by that name, as `-DOCSTART-` lines do.

Back to CoNLL, each record's words and tags (`runtime.span_words`) are written as `word TAG` lines, a
blank line between sentences, the file ending with one newline (the layout of the shipped sample and
of `finetune/sample/generate.py`), and `-DOCSTART- O` before every document when there are several
(CoNLL-2003's layout). A CoNLL file in that layout round-trips byte for byte; any CoNLL file
round-trips to the same sentences, tags and documents.

`convert_file` picks the direction from the source's format (by extension unless named, as
`runtime.labeled_data` reads files): CoNLL to a span file, a span file to CoNLL.

Design trade-offs:
- A CoNLL word that holds a Unicode space (a no-break space: CoNLL columns split on ASCII blanks
  only) cannot be joined into a text that splits back into it; converting it is an error naming the
  line, never a silent change of the words.
- Tags are read by conlleval's rule (`runtime.labels.entity_chunks`), so what becomes a span is what
  scoring counts as an entity.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .conll import Sentence, read_conll
from .errors import DataFormatError
from .labeled_data import DataReport, data_format_of, read_labeled
from .labels import entity_chunks
from .span_files import SPAN_SUFFIXES, is_span_file
from .span_words import join_words, unsplittable_word

__all__ = [
    "sentence_records",
    "conll_text",
    "write_span_records",
    "conll_to_spans",
    "spans_to_conll",
    "conversion_target",
    "convert_file",
]

_DOCUMENT_MARK = "-DOCSTART- O"


def sentence_records(sentences: Sequence[Sentence], source: str = "<sentences>") -> list[dict[str, Any]]:
    """One `entities`-shape record per sentence (module docstring); `doc_id` when there are several documents.

    Raises DataFormatError (`source` and the word's line) for a word that holds whitespace.
    """
    named = len({s.document for s in sentences}) > 1
    records: list[dict[str, Any]] = []
    for sentence in sentences:
        bad = unsplittable_word(sentence.words)
        if bad is not None:
            word = sentence.words[bad]
            spaces = " ".join(f"U+{ord(c):04X}" for c in word if c.isspace())
            problem = f"the word holds a space character ({spaces}), so a text of the words would split it"
            raise DataFormatError(source, sentence.line + bad, word, problem)
        text, offsets = join_words(sentence.words)
        entities = []
        for kind, first, end in entity_chunks(sentence.tags):
            start, stop = offsets[first][0], offsets[end - 1][1]
            entities.append({"start": start, "end": stop, "label": kind, "text": text[start:stop]})
        record: dict[str, Any] = {"text": text, "entities": entities}
        if named:
            record["doc_id"] = sentence.document
        records.append(record)
    return records


def conll_text(sentences: Sequence[Sentence]) -> str:
    """Sentences as CoNLL text: `word TAG` lines, a blank line between sentences, one final newline, and
    `-DOCSTART- O` before every document when there are several."""
    marked = len({s.document for s in sentences}) > 1
    blocks: list[str] = []
    for i, sentence in enumerate(sentences):
        if marked and (i == 0 or sentence.document != sentences[i - 1].document):
            blocks.append(_DOCUMENT_MARK)
        blocks.append("\n".join(f"{w} {t}" for w, t in zip(sentence.words, sentence.tags, strict=True)))
    return "\n\n".join(blocks) + "\n"


def write_span_records(path: str | Path, records: Sequence[dict[str, Any]]) -> None:
    """Write records as a span file: a JSON array (one record a line) for `.json`, else JSON Lines."""
    lines = [json.dumps(record, ensure_ascii=False) for record in records]
    if Path(path).suffix.lower() == ".json":
        text = "[\n" + ",\n".join(lines) + "\n]\n"
    else:
        text = "".join(line + "\n" for line in lines)
    Path(path).write_text(text, encoding="utf-8")


def conll_to_spans(conll: str | Path, out: str | Path) -> int:
    """Convert the CoNLL file `conll` to the span file `out` (`.json`: an array; else JSON Lines).

    Returns the number of records written. Raises what `read_conll` raises, and DataFormatError for a
    word that holds whitespace.
    """
    sentences = read_conll(conll)
    records = sentence_records(sentences, str(conll))
    write_span_records(out, records)
    return len(records)


def spans_to_conll(
    spans: str | Path, out: str | Path, offsets: str = "codepoints", skip_bad: bool = False
) -> DataReport:
    """Convert the span file `spans` (read as `read_labeled` reads it) to the CoNLL file `out`.

    Returns the reading's report (records used, bad records skipped, misaligned spans).
    """
    data = read_labeled(spans, "spans", offsets, skip_bad)
    Path(out).write_text(conll_text(data.sentences), encoding="utf-8")
    return data.report


def conversion_target(source: str | Path, out: str | Path, data_format: str = "auto") -> str:
    """The format `source` converts to, "spans" or "conll": the other one than its own (`data_format_of`).

    Raises ValueError when `out`'s extension does not fit: a CoNLL file converts to a span file (`.jsonl`,
    `.ndjson`, `.json`), a span file to a CoNLL file (any other extension).
    """
    if data_format_of(source, data_format) == "conll":
        if not is_span_file(out):
            raise ValueError(f"{out}: a CoNLL file converts to a span file, named {', '.join(SPAN_SUFFIXES)}")
        return "spans"
    if is_span_file(out):
        raise ValueError(
            f"{out}: a span file converts to a CoNLL file, whose name does not end {', '.join(SPAN_SUFFIXES)}"
        )
    return "conll"


def convert_file(
    source: str | Path, out: str | Path, data_format: str = "auto", offsets: str = "codepoints", skip_bad: bool = False
) -> DataReport:
    """Convert `source` to `out`, CoNLL to span file or span file to CoNLL (`conversion_target`), and
    return the reading's report. `offsets` and `skip_bad` apply to a span file being read."""
    if conversion_target(source, out, data_format) == "conll":
        return spans_to_conll(source, out, offsets, skip_bad)
    data = read_labeled(source, "conll")
    write_span_records(out, sentence_records(data.sentences, str(source)))
    return data.report
