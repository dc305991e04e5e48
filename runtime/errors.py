"""Errors raised by ner-export.

Every error a user can cause is a subclass of `NerExportError`, so a service can catch one type and the
CLI can turn any of them into a one-line message. Wrong argument *types* passed to the Python API stay
plain `TypeError`/`ValueError`, as Python users expect.

    NerExportError
    ├── InputError (ValueError)  a text or input record cannot be processed (names index / line and position)
    │   └── DataFormatError      a data file is malformed (names file, line and content)
    ├── DataNotFoundError (FileNotFoundError)  an input or data file does not exist (names the path)
    ├── OutputExistsError      the output path exists and --force was not given (names the path)
    ├── BundleError            a bundle cannot be loaded (names the file and the problem)
    ├── ExportError            the checkpoint cannot be exported
    │   └── ValidationError    the exported graph disagrees with the PyTorch model
    ├── CheckpointError        a checkpoint or base model folder is unusable
    ├── DeviceError            the requested device (CUDA) is not available
    └── MissingDependencyError an optional dependency is not installed (names the extra)

    NerExportWarning (UserWarning)  something was repaired or assumed, and the user should know
    └── TagRepairWarning            finetune.conll: an IOB2 file had I- tags read as B-
"""

from __future__ import annotations

__all__ = [
    "NerExportError",
    "InputError",
    "DataFormatError",
    "DataNotFoundError",
    "OutputExistsError",
    "BundleError",
    "ExportError",
    "ValidationError",
    "CheckpointError",
    "DeviceError",
    "MissingDependencyError",
    "NerExportWarning",
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


class BundleError(NerExportError):
    """A bundle directory is missing, incomplete, corrupted or of an unknown format."""


class ExportError(NerExportError):
    """A checkpoint could not be turned into a bundle."""


class ValidationError(ExportError):
    """The exported graph does not reproduce the PyTorch model within tolerance."""


class CheckpointError(NerExportError):
    """A checkpoint or base-model folder is missing pieces (config, weights, tokenizer)."""


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
