"""One target's verdict as a report row: its value, its limit, whether it holds and by how much it misses.

Shared by the benchmarks that check targets (the serve load run, the frontier), so every report states
a missed target's distance the same way rather than only that it missed.
"""

from __future__ import annotations

from typing import Any

__all__ = ["target_row"]


def target_row(name: str, value: float | None, limit: float, kind: str, why: str = "") -> dict[str, Any]:
    """The row of target `name`: `kind` "min" holds at value >= limit, "max" at value <= limit."""
    holds = value is not None and (value >= limit if kind == "min" else value <= limit)
    miss = None if holds or value is None else (limit - value if kind == "min" else value - limit)
    return {"target": name, "value": value, "limit": limit, "kind": kind, "holds": holds, "miss_by": miss, "note": why}
