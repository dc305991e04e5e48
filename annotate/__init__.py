"""ner_export.annotate: bulk NER over corpora, streaming and resumable locally, scaled out on Ray Data.

    >>> from ner_export.annotate import AnnotateConfig, annotate
    >>> annotate(AnnotateConfig(bundle="bundle/", inputs=("corpus/*.jsonl",), output="annotated/"))

Records come from `ner_export.inputs`, the input reader every file-reading command shares (text,
JSONL, JSON arrays, Parquet; keyed records; bad records reported, never dropped); `ner_export.annotate.stream`
is `ner-export predict`'s streaming loop over those records. This package imports only
`ner_export.runtime` and `ner_export.inputs` from the project; pyarrow, tqdm and ray load when a run
needs them.

Modules, dependencies running one way (each imports only those after it): `job` (the `annotate`
entry point), `local_engine` and `ray_engine`, `folder` (the output folder checked and completed),
`plan` (bundle identity, scanned inputs, pinned settings), `result`, `engine_steps` (read a shard,
predict entities), `config`, `shards` (cutting, writing and committing shards). `stream`, predict's
loop, uses only `shards`' JSON encoding of pass-through values.
"""

from .config import ENGINES, AnnotateConfig
from .job import annotate
from .result import AnnotateResult
from .shards import OUTPUT_FORMATS, RESERVED
from .stream import StreamCounts, argument_records, predict_stream

__all__ = [
    "annotate",
    "AnnotateConfig",
    "AnnotateResult",
    "ENGINES",
    "OUTPUT_FORMATS",
    "RESERVED",
    "predict_stream",
    "argument_records",
    "StreamCounts",
]
