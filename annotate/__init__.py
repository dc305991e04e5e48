"""ner_export.annotate: bulk NER over corpora, streaming and resumable locally, scaled out on Ray Data.

    >>> from ner_export.annotate import AnnotateConfig, annotate
    >>> annotate(AnnotateConfig(bundle="bundle/", inputs=("corpus/*.jsonl",), output="annotated/"))

Records come from `ner_export.inputs`, the input reader every file-reading command shares (text,
JSONL, JSON arrays, Parquet; keyed records; bad records reported, never dropped); `ner_export.annotate.stream`
is `ner-export predict`'s streaming loop over those records. This package imports only
`ner_export.runtime` from the project; pyarrow, tqdm and ray load when a run needs them.
"""

from ner_export.inputs import (
    FORMATS,
    Position,
    Record,
    SourceScan,
    expand_inputs,
    read_records,
    resolve_format,
    scan_source,
)

from .job import ENGINES, AnnotateConfig, AnnotateResult, annotate
from .shards import OUTPUT_FORMATS, RESERVED
from .stream import StreamCounts, argument_records, predict_stream

__all__ = [
    "annotate",
    "AnnotateConfig",
    "AnnotateResult",
    "ENGINES",
    "OUTPUT_FORMATS",
    "RESERVED",
    "FORMATS",
    "Record",
    "Position",
    "SourceScan",
    "read_records",
    "resolve_format",
    "expand_inputs",
    "scan_source",
    "predict_stream",
    "argument_records",
    "StreamCounts",
]
