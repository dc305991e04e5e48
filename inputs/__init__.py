"""ner_export.inputs: the input reader every file-reading command shares.

Text, JSONL, JSON arrays and Parquet as a stream of keyed records, with bad records reported, never
dropped. `ner-export predict` and `ner-export annotate` both read through it. It imports only
`ner_export.runtime` from the project; pyarrow loads when a Parquet file is read.
"""

from .sources import (
    EXTENSIONS,
    FORMATS,
    STDIN,
    Position,
    Record,
    SourceScan,
    check_encoding,
    expand_inputs,
    parquet_passthrough_schema,
    read_records,
    resolve_format,
    scan_source,
)

__all__ = [
    "FORMATS",
    "EXTENSIONS",
    "STDIN",
    "Record",
    "Position",
    "SourceScan",
    "resolve_format",
    "expand_inputs",
    "read_records",
    "scan_source",
    "parquet_passthrough_schema",
    "check_encoding",
]
