"""File helpers shared by every stage: atomic directory writes, and JSON reads that fail as user errors.

A folder is built under a hidden temporary name beside its destination and renamed into place at the
end. Renames within one filesystem are atomic, so a reader (or a crash) sees the old folder or the
new one, never a mix. Only the short window between moving the old folder aside and moving the new
one in shows no folder at all.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .errors import NerExportError

__all__ = ["read_json", "staged_directory"]


def read_json(path: Path, error: type[NerExportError]) -> Any:
    """The parsed content of the JSON file `path`; `error` naming the file when it is not valid JSON."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise error(f"{path}: not valid JSON ({exc})") from exc


@contextmanager
def staged_directory(out: Path) -> Iterator[Path]:
    """Yield an empty temporary directory that replaces `out` when the block ends without error.

    On an error the temporary directory is removed and `out` is left as it was.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        yield tmp
        backup = None
        if out.exists():
            backup = out.with_name(f".{out.name}.old-{os.getpid()}")
            os.replace(out, backup)
        os.replace(tmp, out)
        if backup is not None:
            shutil.rmtree(backup, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
