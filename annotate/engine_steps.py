"""The two steps every engine runs on a shard: read its records, predict their entities.

Design trade-offs:
- Both engines read and predict through these functions, so a record that would overwrite an output
  key column (source, row, line, entities) becomes the same error record in both, and a file that
  changed after the scan fails the same way.
- Entities leave the model as plain dicts (text, label, start, end, score): the shape both shard
  writers and Ray's Arrow batches take, with no runtime types crossing process boundaries.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ner_export.inputs import Record, read_records
from ner_export.runtime.errors import InputError

from .shards import RESERVED, Shard

__all__ = ["shard_records", "predict_entities"]


def shard_records(shard: Shard, text_field: str) -> Iterator[Record]:
    """The records of a shard, with a field that would overwrite an output key column made an error."""
    count = 0
    for record in read_records(shard.source, shard.format, text_field, start=shard.start, limit=shard.rows):
        reserved = [name for name in RESERVED if name in record.fields] if record.ok else []
        if reserved:
            record = Record(
                record.source,
                record.row,
                record.line,
                None,
                {},
                f"field {reserved[0]!r} clashes with the output column of that name "
                f"({', '.join(RESERVED)} are reserved); rename it",
                None,
            )
        count += 1
        yield record
    if count != shard.rows:
        raise InputError(
            f"{shard.source}: changed while being read "
            f"({count} records where the scan counted {shard.rows} from row {shard.first_row})"
        )


def predict_entities(model: Any, texts: list[str], batch_size: int) -> list[list[dict[str, Any]]]:
    """Entities of each text as plain dicts (text, label, start, end, score), in input order."""
    if not texts:
        return []
    return [[e.to_dict() for e in entities] for entities in model.predict(texts, batch_size=batch_size)]
