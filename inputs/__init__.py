"""ner_export.inputs: the input reader every file-reading command shares.

Text, JSONL, JSON arrays and Parquet as a stream of keyed records, with bad records reported, never
dropped. `ner-export predict` and `ner-export annotate` both read through it. It imports only
`ner_export.runtime` from the project; pyarrow loads when a Parquet file is read.

Modules, each one job: `records` (what the reader yields), `paths` (which files, which format),
`encoding` (a file's first bytes: UTF-16/32 refused), `json_values` (a parsed JSON value as a record),
`lines` (text and JSONL), `json_array` (a streamed top-level array), `parquet`, and `read` (the entry
points `read_records` and `scan_source`).
"""

from .encoding import check_encoding
from .parquet import parquet_passthrough_schema
from .paths import EXTENSIONS, FORMATS, STDIN, expand_inputs, resolve_format
from .read import read_records, scan_source
from .records import Position, Record, SourceScan

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
