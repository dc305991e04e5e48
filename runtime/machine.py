"""Facts about the machine and the installed libraries: CPUs usable, CPU model and flags, versions.

One copy of each, because several stages need them: the runtime sizes its thread pool by the CPUs
this process may use (affinity mask and cgroup quota, not the host's core count, which overstates
what a container gets); the exporter picks int8 settings from the CPU flags; bundles and benchmark
results record the CPU and the library versions they were made with. Everything degrades to a
neutral answer off Linux (no /proc, no cgroups) instead of failing.
"""

from __future__ import annotations

import math
import os
import platform
from pathlib import Path

__all__ = ["available_cpus", "cpu_flags", "cpu_model", "library_versions", "VERSIONED_LIBRARIES"]

VERSIONED_LIBRARIES = (
    "ner-export",
    "onnxruntime",
    "onnx",
    "optimum",
    "optimum-onnx",
    "torch",
    "transformers",
    "tokenizers",
    "numpy",
)
"""The libraries whose versions shape a bundle or a measurement."""


def _cgroup_cpu_limit() -> float | None:
    """CPUs allowed by a cgroup quota (v2 `cpu.max` or v1 `cfs_quota_us`), or None when unlimited."""
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota_us = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us").read_text())
        period_us = int(Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us").read_text())
        return quota_us / period_us if quota_us > 0 and period_us > 0 else None
    except (OSError, ValueError):
        return None


def available_cpus() -> int:
    """CPUs this process may actually use: its affinity mask, capped by a cgroup CPU quota."""
    try:
        count = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        count = os.cpu_count() or 1
    limit = _cgroup_cpu_limit()
    if limit is not None:
        count = min(count, max(1, math.ceil(limit)))
    return max(1, count)


def _cpuinfo_field(field: str) -> str | None:
    """The value of the first `field` line of /proc/cpuinfo, or None (no such file or field)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith(field):
            return line.split(":", 1)[1].strip()
    return None


def cpu_flags() -> set[str]:
    """The instruction-set flags of this CPU (`avx2`, `avx512_vnni`, ...); empty when unknown."""
    return set((_cpuinfo_field("flags") or "").split())


def cpu_model() -> str:
    """A readable name of this CPU (its /proc/cpuinfo model name, else what `platform` knows)."""
    return _cpuinfo_field("model name") or platform.processor()


def library_versions() -> dict[str, str]:
    """Installed versions of `VERSIONED_LIBRARIES` (absent ones left out)."""
    from importlib.metadata import PackageNotFoundError, version  # slow to import; needed here only

    out = {}
    for name in VERSIONED_LIBRARIES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    return out
