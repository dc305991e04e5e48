"""Argument checks that every config object shares, so each limit is refused with the same words.

Configs validate themselves in `__post_init__`; these helpers raise `ValueError` (the type a bad
argument raises in Python) with the field's name and the value given.
"""

from __future__ import annotations

from typing import Any

__all__ = ["require_positive_int"]


def require_positive_int(name: str, value: Any, *, optional: bool = False) -> None:
    """Refuse `value` unless it is an int >= 1 (or None when `optional`); bools are not integers here."""
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        suffix = " or None" if optional else ""
        raise ValueError(f"{name}={value!r} must be a positive integer{suffix}")
