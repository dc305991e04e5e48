"""NER_EXPORT_REQUIRE_EXTRAS=1: a skip for a missing optional package becomes a failure that names it.

CI's full job installs every extra, so a test that skips there for want of a package means a broken
wheel or a changed install, not a lighter install: with the variable set, `pytest.importorskip` fails
instead of skipping (naming the module and the import error), and any other skip fails too unless its
reason is one of the few that are about the machine or the data, never a package (ALLOWED_SKIPS).
Without the variable nothing changes, so a lighter install still skips, saying why.
"""

from __future__ import annotations

import importlib
import os
import re
from typing import Any

import pytest

VARIABLE = "NER_EXPORT_REQUIRE_EXTRAS"

# Skips that stay skips under the guard: data that is not redistributable, the runtime-only job's own
# tests, and hardware the machine has or lacks. Each is a fact about the machine, not about an install.
ALLOWED_SKIPS = (
    re.compile(r"CoNLL-2003 is not at"),
    re.compile(r"runs in the runtime-only CI job"),
    re.compile(r"this machine has CUDA"),
)


def active() -> bool:
    return os.environ.get(VARIABLE) == "1"


def _required_import(modname: str, minversion: str | None = None, reason: str | None = None, **_: Any) -> Any:
    try:
        module = importlib.import_module(modname)
    except ImportError as exc:
        pytest.fail(
            f"{VARIABLE}=1: the optional package {modname!r} does not import ({exc}); "
            f"this job installs every extra, so the test that needs it fails instead of skipping",
            pytrace=False,
        )
    if minversion is not None:
        version = getattr(module, "__version__", None)
        if version is None or _older(version, minversion):
            pytest.fail(f"{VARIABLE}=1: {modname} {version} is older than {minversion}", pytrace=False)
    return module


def _older(version: str, minimum: str) -> bool:
    def parts(text: str) -> tuple[int, ...]:
        return tuple(int(p) for p in re.findall(r"\d+", text)[:3])

    return parts(version) < parts(minimum)


def install() -> None:
    """Replace pytest.importorskip for this run when the variable is set."""
    if active():
        pytest.importorskip = _required_import  # type: ignore[assignment]


def _skip_reason(report: Any) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2]).removeprefix("Skipped: ")
    return str(longrepr)


def forbidden_skip(report: Any) -> str | None:
    """The reason of a skip the guard turns into a failure, or None."""
    if not active() or not report.skipped or hasattr(report, "wasxfail"):
        return None
    reason = _skip_reason(report)
    if any(pattern.search(reason) for pattern in ALLOWED_SKIPS):
        return None
    return reason


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: Any, call: Any) -> Any:
    outcome = yield
    report = outcome.get_result()
    reason = forbidden_skip(report)
    if reason is not None:
        report.outcome = "failed"
        report.longrepr = f"{VARIABLE}=1 turns this skip into a failure: {reason}"


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: Any) -> Any:
    outcome = yield
    report = outcome.get_result()
    reason = forbidden_skip(report)
    if reason is not None:
        report.outcome = "failed"
        report.longrepr = f"{VARIABLE}=1 turns this module's skip into a failure: {reason}"
