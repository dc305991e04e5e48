"""Which files to read and in which format: input names, globs and directories, extensions, stdin.

Design trade-offs:
- The format comes from `--format` or the file's extension, never from its content: a text line that
  starts with `{` is text. An unknown extension is read as text, with a warning that says so.
- A directory contributes only files with a known extension and skips names that start with `.` or `_`,
  so an annotate output folder (`_manifest.json`, `_errors.jsonl`) can sit beside its inputs.
- Every listing is sorted and deduplicated, so the same arguments give the same file order (and so the
  same shard names) on every run.
"""

from __future__ import annotations

import glob
import os
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from ner_export.runtime.errors import DataNotFoundError, InputError, NerExportWarning

__all__ = ["FORMATS", "EXTENSIONS", "STDIN", "resolve_format", "expand_inputs", "open_input"]

FORMATS = ("auto", "text", "jsonl", "json", "parquet")
EXTENSIONS = {
    ".txt": "text",
    ".text": "text",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "json",
    ".parquet": "parquet",
    ".pq": "parquet",
}
STDIN = "-"


def resolve_format(path: str, fmt: str = "auto") -> str:
    """The format to read `path` with: `fmt` itself, or for "auto" the one its extension names.

    An unknown extension (and stdin) is read as text, one text a line, with a `NerExportWarning` that
    says so. The content is never used to guess: a text line starting with `{` stays text.
    """
    if fmt not in FORMATS:
        raise ValueError(f"format={fmt!r} is not one of {', '.join(FORMATS)}")
    if fmt != "auto":
        return fmt
    if path == STDIN:
        warnings.warn(
            "reading stdin as text, one text a line; pass --format jsonl or json for JSON input",
            NerExportWarning,
            stacklevel=2,
        )
        return "text"
    suffix = Path(path).suffix.lower()
    if suffix in EXTENSIONS:
        return EXTENSIONS[suffix]
    warnings.warn(
        f"{path}: extension {suffix or '(none)'!r} not known; read as text, one text a line "
        f"(known: {', '.join(EXTENSIONS)}; pass --format to choose)",
        NerExportWarning,
        stacklevel=2,
    )
    return "text"


def _is_glob_pattern(text: str) -> bool:
    return any(c in text for c in "*?[")


def _directory_files(folder: str) -> list[str]:
    """A directory's input files, recursively, sorted: known extensions, no `.` or `_` names on the way."""
    found = sorted(
        str(p)
        for p in Path(folder).rglob("*")
        if p.is_file()
        and p.suffix.lower() in EXTENSIONS
        and not any(part[:1] in "._" for part in p.relative_to(folder).parts)
    )
    if not found:
        known = ", ".join(EXTENSIONS)
        raise DataNotFoundError(f"{folder}: the directory holds no input file (known extensions: {known})")
    return found


def expand_inputs(patterns: Sequence[str]) -> list[str]:
    """Input files named by paths, directories or glob patterns, each listed once, in a stable order.

    A glob's matches and a directory's files are sorted by name; a directory contributes its files with
    a known extension (recursively), skipping names that start with `.` or `_` (hidden files and the
    `_manifest.json` / `_errors.jsonl` of an output folder). A name that matches nothing is an error.
    """
    if isinstance(patterns, (str, os.PathLike)):
        patterns = [str(patterns)]
    files: list[str] = []
    for pattern in map(str, patterns):
        if pattern == STDIN:
            found = [STDIN]
        elif os.path.isdir(pattern):
            found = _directory_files(pattern)
        elif os.path.isfile(pattern):
            found = [pattern]
        elif _is_glob_pattern(pattern):
            found = sorted(p for p in glob.glob(pattern, recursive=True) if os.path.isfile(p))
            if not found:
                raise DataNotFoundError(f"{pattern}: no file matches this pattern")
        else:
            raise DataNotFoundError(f"{pattern}: no such file or directory")
        files.extend(found)
    return list(dict.fromkeys(files))


def open_input(path: str) -> IO[bytes]:
    """`path` opened for reading bytes (`-` is stdin), with a missing file or a directory as a clear error."""
    if path == STDIN:
        return sys.stdin.buffer
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise DataNotFoundError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, not an input file") from None
