"""Streaming prediction over records: what `ner-export predict` runs on its arguments and its `--input`.

Design trade-offs:
- Records come from the shared reader (`ner_export.inputs.read_records`), so predict and annotate agree on
  formats, encodings, line numbers and bad records; arguments become records too (`argument_records`).
- Reading runs in a thread that fills a bounded queue, and the records are predicted and written in
  chunks: a chunk ends after `chunk_size` records or `max_wait` seconds after its first one, whichever
  comes first. Output therefore starts before stdin closes (a producer can write a line and wait for
  its answer), memory does not grow with the input, and reading overlaps with onnxruntime (which
  releases the GIL). Chunks keep input order; a chunk is `NerModel.predict`'s unit of batching.
- A bad record never loses good ones: with `skip_bad` it is reported and skipped; without, the records
  before it are predicted and written first, and the error names where it stopped. Every output row
  carries its key (`line`, `row` or `argument`) and the input's other fields, so rows join back to the
  input even when some are skipped: rows out + records skipped = records in.
"""

from __future__ import annotations

import contextlib
import json
import queue
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from ner_export.inputs import Record
from ner_export.runtime.errors import InputError, NerExportError

from .shards import json_default

__all__ = ["ARGUMENTS", "StreamCounts", "argument_records", "error_row", "output_key", "output_row", "predict_stream"]

ARGUMENTS = "<arguments>"  # the `source` of records made from command-line arguments


@dataclass
class StreamCounts:
    """What a stream did: records read (blank lines are not records), rows written, records skipped."""

    records: int = 0
    written: int = 0
    skipped: int = 0


def _argument_problem(text: str) -> str | None:
    """Why an argument is not text, or None: bytes that were not UTF-8 arrive as surrogate escapes."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        code = ord(text[exc.start])
        if 0xDC80 <= code <= 0xDCFF:  # what errors="surrogateescape" makes of the byte code - 0xDC00
            return f"not valid UTF-8: byte 0x{code - 0xDC00:02X} at character {exc.start}"
        return f"a lone surrogate U+{code:04X} at character {exc.start}, which is not text"
    return None


def argument_records(texts: Sequence[str]) -> Iterator[Record]:
    """Command-line texts as records (`row` 0-based); one that is not text is a bad record."""
    for i, text in enumerate(texts):
        problem = _argument_problem(text)
        if problem:
            excerpt = text.encode("utf-8", "surrogateescape" if "not valid" in problem else "backslashreplace")
            yield Record(ARGUMENTS, i, None, None, {}, problem, excerpt.decode("utf-8", "backslashreplace")[:200])
        else:
            yield Record(ARGUMENTS, i, None, text, {})


def where(record: Record) -> str:
    """`file:line`, `file row N`, or `argument N` (1-based): for messages."""
    return f"argument {record.row + 1}" if record.source == ARGUMENTS else record.where


def output_key(record: Record) -> tuple[str, int]:
    """The key that joins an output row to its input: `argument` (1-based), `line` (1-based) or `row` (0-based)."""
    if record.source == ARGUMENTS:
        return "argument", record.row + 1
    if record.line is not None:
        return "line", record.line
    return "row", record.row


def output_row(record: Record, entities: list[dict[str, Any]], text_field: str = "text") -> dict[str, Any]:
    """One output row: the key, the input's other fields unchanged, the text and its entities.

    The text keeps its input field's name (`text_field`); an argument's is `text`.
    """
    key, value = output_key(record)
    name = "text" if record.source == ARGUMENTS else text_field
    return {key: value, **record.fields, name: record.text, "entities": entities}


def error_row(record: Record) -> dict[str, Any]:
    """The report of a skipped record (for `--errors FILE`)."""
    if record.source == ARGUMENTS:
        return {"argument": record.row + 1, "reason": record.error, "excerpt": record.excerpt}
    return record.error_dict()


def _refuse_fields_named_like_output_keys(record: Record) -> Record:
    """A record whose fields would overwrite the key or the entities of its output row is a bad record."""
    if not record.ok:
        return record
    key, _ = output_key(record)
    for name in (key, "entities"):
        if name in record.fields:
            return Record(
                record.source,
                record.row,
                record.line,
                None,
                {},
                f"field {name!r} clashes with the output key of that name; rename it",
                None,
            )
    return record


_END_OF_RECORDS = object()


class _ReadFailure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


def _chunks(records: Iterable[Record], size: int, max_wait: float) -> Iterator[list[Record]]:
    """Records in chunks of at most `size`, a chunk closing `max_wait` s after its first record arrived.

    A reading thread fills a queue of at most 2 x `size` records, so memory stays bounded; an error
    raised while reading comes out after the chunk of records read before it.
    """
    box: queue.Queue[Any] = queue.Queue(maxsize=2 * size)
    stop = threading.Event()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                box.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def read() -> None:
        iterator = iter(records)
        try:
            for record in iterator:
                if not put(record):
                    return
            put(_END_OF_RECORDS)
        except BaseException as exc:  # noqa: BLE001 - handed over to the consuming thread
            put(_ReadFailure(exc))
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:
                close()

    reader = threading.Thread(target=read, name="ner-export-reader", daemon=True)
    reader.start()
    chunk: list[Record] = []
    deadline = 0.0
    try:
        while True:
            try:
                item = box.get(timeout=max(0.0, deadline - time.monotonic()) if chunk else None)
            except queue.Empty:
                yield chunk
                chunk = []
                continue
            if item is _END_OF_RECORDS or isinstance(item, _ReadFailure):
                if chunk:
                    yield chunk
                if isinstance(item, _ReadFailure):
                    raise item.error
                return
            chunk.append(item)
            if len(chunk) == 1:
                deadline = time.monotonic() + max_wait
            if len(chunk) >= size:
                yield chunk
                chunk = []
    finally:
        stop.set()


def predict_stream(
    model: Any,
    records: Iterable[Record],
    write: Callable[[str], None],
    *,
    flush: Callable[[], None] = lambda: None,
    skip_bad: bool = False,
    report: Callable[[Record], None] | None = None,
    text_field: str = "text",
    batch_size: int = 32,
    chunk_size: int = 1024,
    max_wait: float = 0.1,
) -> StreamCounts:
    """Predict `records` with `model` (a `NerModel`) and `write` one JSON line per good record, in order.

    write, flush: where output lines go (each without its newline); `flush` runs after every chunk.
    skip_bad: report a bad record (`report`, which receives it) and go on; otherwise stop there with an
        `InputError` naming it, after the records before it were written.
    text_field: the key of the text in output rows (the input's own field name).
    chunk_size, max_wait: a chunk is predicted and written after this many records or seconds.
    """
    counts = StreamCounts()

    def emit(good: list[Record]) -> None:
        if not good:
            return
        try:
            results = model.predict([r.text for r in good], batch_size=batch_size)
        except NerExportError as exc:
            raise InputError(f"{exc}; stopped at {where(good[0])}, {counts.written} row(s) before it written") from exc
        for record, entities in zip(good, results, strict=True):
            row = output_row(record, [e.to_dict() for e in entities], text_field)
            write(json.dumps(row, ensure_ascii=False, default=json_default))
        counts.written += len(good)

    with contextlib.closing(_chunks(records, chunk_size, max_wait)) as chunks:  # closing stops the reader
        for chunk in chunks:
            good: list[Record] = []
            for record in chunk:
                record = _refuse_fields_named_like_output_keys(record)
                counts.records += 1
                if record.ok:
                    good.append(record)
                    continue
                emit(good)
                good = []
                if not skip_bad:
                    flush()
                    raise InputError(
                        f"{where(record)}: {record.error}; stopped there, {counts.written} row(s) before it "
                        "written (--skip-bad skips bad records)"
                    )
                counts.skipped += 1
                if report is not None:
                    report(record)
            emit(good)
            flush()
    return counts
