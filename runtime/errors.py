"""Errors and warnings raised by ner-export, as one tree rooted in `NerExportError`.

Every error a user can cause is a subclass of `NerExportError`, so a service can catch one type and the
CLI can turn any of them into a one-line message; each condition has its own class, so a caller can
tell them apart without reading messages. Classes that mean what a builtin means also derive from it
(`DataNotFoundError` is a `FileNotFoundError`), so code written against the builtins keeps working.
Wrong argument *types* or values passed to the Python API stay plain `TypeError`/`ValueError`, as
Python users expect; the CLI validates its options before they reach the library.

    NerExportError
    ├── InputError (ValueError)        a text, input record or data value cannot be processed (names where)
    │   ├── DataFormatError            a data file is malformed (names file, line and content)
    │   └── LabelMismatchError         a data file has labels the model or the training data lacks
    ├── DataNotFoundError (FileNotFoundError)  an input or data file does not exist (names the path)
    ├── OutputExistsError (FileExistsError)    the output path exists and --force was not given
    ├── NotAModelError                 a directory is neither a bundle nor a checkpoint
    ├── BundleError                    a bundle cannot be loaded (names the file and the problem)
    ├── CheckpointError                a checkpoint or base model folder is unusable
    ├── ExportError                    the checkpoint cannot be exported
    │   └── ValidationError            the exported graph disagrees with the PyTorch model
    ├── BenchError                     a benchmark cannot be run
    │   ├── BenchMismatchError         the checkpoint and the bundle are not the same model
    │   └── ColdStartError             a system failed in its fresh cold-start process
    ├── DeviceError                    the requested device (CUDA) is not available
    └── MissingDependencyError (ImportError)  an optional dependency is not installed (names the extra)

    NerExportWarning (UserWarning)     something was repaired or assumed, and the user should know
    ├── TagRepairWarning               an IOB2 file had I- tags read as B- (`runtime.conll`)
    ├── InvisibleLineWarning           a data line of invisible characters only was read as blank (`runtime.conll`)
    ├── SkippedRecordsWarning          bad records of a span file were skipped (`runtime.labeled_data`)
    └── MisalignedSpansWarning         spans of a span file start or end inside a word (`runtime.labeled_data`)
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = [
    "NerExportError",
    "InputError",
    "DataFormatError",
    "LabelMismatchError",
    "DataNotFoundError",
    "OutputExistsError",
    "NotAModelError",
    "BundleError",
    "CheckpointError",
    "ExportError",
    "ValidationError",
    "BenchError",
    "BenchMismatchError",
    "ColdStartError",
    "DeviceError",
    "MissingDependencyError",
    "NerExportWarning",
    "TagRepairWarning",
    "InvisibleLineWarning",
    "SkippedRecordsWarning",
    "MisalignedSpansWarning",
]


class NerExportError(Exception):
    """Root of every error that ner-export raises for a user mistake or an unusable input."""


class InputError(NerExportError, ValueError):
    """A text or input record cannot be processed; the message names where (index or file:line) and why."""


class DataNotFoundError(NerExportError, FileNotFoundError):
    """An input or data file does not exist; the message names the path."""


class OutputExistsError(NerExportError, FileExistsError):
    """The output path exists and replacing it was not asked for (`--force`)."""


class DataFormatError(InputError):
    """A data file is malformed; the message names the file, the line number and the line."""

    def __init__(self, path: str, line_number: int, line: str, problem: str) -> None:
        self.path = path
        self.line_number = line_number
        self.line = line
        self.problem = problem
        super().__init__(f"{path}:{line_number}: {problem}: {line!r}")


class LabelMismatchError(InputError):
    """A data file holds labels that the model (or the training data) does not have; names them."""


class NotAModelError(NerExportError):
    """A directory is neither a bundle (bundle.json) nor a checkpoint (config.json)."""


class BundleError(NerExportError):
    """A bundle directory is missing, incomplete, corrupted or of an unknown format."""


class ExportError(NerExportError):
    """A checkpoint could not be turned into a bundle."""


class ValidationError(ExportError):
    """The exported graph does not reproduce the PyTorch model within tolerance."""


class CheckpointError(NerExportError):
    """A checkpoint or base-model folder is missing pieces (config, weights, tokenizer)."""


class BenchError(NerExportError):
    """A benchmark cannot be run as asked."""


class BenchMismatchError(BenchError):
    """The checkpoint and the bundle of a benchmark are not the same model (labels, casing, context)."""


class ColdStartError(BenchError):
    """A system failed in the fresh process that measures its cold start."""


class DeviceError(NerExportError):
    """The requested execution device cannot be used here."""


class MissingDependencyError(NerExportError, ImportError):
    """An optional dependency is missing; the message says which extra installs it."""

    def __init__(self, module: str, extra: str, purpose: str) -> None:
        self.module = module
        self.extra = extra
        super().__init__(
            f"{purpose} needs the Python package {module!r}, which is not installed; "
            f"install it with: pip install 'ner-export[{extra}]'"
        )


class NerExportWarning(UserWarning):
    """Something in the input was repaired or assumed; the CLI prints these as one-line warnings."""


class TagRepairWarning(NerExportWarning):
    """An IOB2 file had an `I-X` tag that does not continue an `X` entity; it was read as `B-X`."""


class InvisibleLineWarning(NerExportWarning):
    """A data line held only invisible characters (a stray BOM or zero-width character, as left by
    concatenating files); it was read as the blank line it looks like, ending the sentence."""


class SkippedRecordsWarning(NerExportWarning):
    """Bad records of a span file were skipped (`skip_bad`). The message names the first and the count;
    `records` holds every skipped record's one-line message (`file:line: reason: 'excerpt'`), which the
    CLI lists on stderr one per line."""

    def __init__(self, message: str, records: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.records = tuple(records)


class MisalignedSpansWarning(NerExportWarning):
    """Spans of a span file start or end inside a word; the warning names the first and the count."""
