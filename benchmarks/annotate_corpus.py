"""The annotate benchmark's corpus: a CoNLL file's sentences repeated to any size, as Parquet and JSONL.

Real sentence lengths at any corpus size, written to a temporary folder: nothing is copied into the
repository, and the same rows feed both input formats, so their runs compare reading alone.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

__all__ = ["build_corpus"]


def build_corpus(data: Path, rows: int, folder: Path) -> dict[str, Any]:
    """Write `rows` sentences (the file's, repeated) as corpus.parquet and corpus.jsonl in `folder`."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from ner_export.runtime.conll import read_conll

    sentences = [" ".join(s.words) for s in read_conll(data) if s.words]
    if not sentences:
        raise SystemExit(f"{data}: no sentences")
    texts = [sentences[i % len(sentences)] for i in range(rows)]
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(
        pa.table({"id": pa.array(range(rows), pa.int64()), "text": texts}),
        folder / "corpus.parquet",
        row_group_size=16_384,
    )
    with open(folder / "corpus.jsonl", "w", encoding="utf-8") as handle:
        for i, text in enumerate(texts):
            handle.write(json.dumps({"id": i, "text": text}, ensure_ascii=False) + "\n")
    words = [len(t.split()) for t in sentences]
    return {
        "source": str(data),
        "distinct_sentences": len(sentences),
        "rows": rows,
        "mean_words": round(statistics.fmean(words), 2),
        "mean_chars": round(statistics.fmean(len(t) for t in sentences), 1),
        "files": {
            "parquet": (folder / "corpus.parquet").stat().st_size,
            "jsonl": (folder / "corpus.jsonl").stat().st_size,
        },
    }
