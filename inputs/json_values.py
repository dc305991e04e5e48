"""One parsed JSON value as a record: a string is the text, an object holds it in the text field.

Design trade-offs:
- JSONL lines and JSON array elements become records here, so both formats refuse the same values
  with the same words (JSON type names, the object's keys when the text field is missing).
- `json` accepts `\\ud800`-style escapes that leave a lone surrogate in a string, which no tokenizer can
  encode and UTF-8 output cannot hold. Such a record is bad, and the message says which field holds it.
  Searching a parsed value costs a walk over it, so only raw text with a surrogate escape is searched.
"""

from __future__ import annotations

import re
from typing import Any

from ner_export.runtime.texts import json_type, lone_surrogate

from .records import Record, excerpt

__all__ = ["find_lone_surrogate", "record_from_json"]

# a JSON \u escape of a UTF-16 surrogate: only these can put a lone surrogate into a parsed string
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def find_lone_surrogate(value: Any, where: str) -> str | None:
    """Where a lone surrogate sits in a parsed JSON value (it cannot be encoded to UTF-8), or None."""
    if isinstance(value, str):
        at = lone_surrogate(value)
        if at is None:
            return None
        return f"{where} holds a lone surrogate U+{ord(value[at]):04X} at character {at}, which is not text"
    if isinstance(value, dict):
        for key, item in value.items():
            found = find_lone_surrogate(key, f"a key of {where}") or find_lone_surrogate(
                item, f"field {key!r}" if where == "the record" else f"{where}.{key}"
            )
            if found:
                return found
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found = find_lone_surrogate(item, f"{where}[{i}]")
            if found:
                return found
    return None


def record_from_json(name: str, row: int, line: int | None, value: Any, text_field: str, raw: str) -> Record:
    """A record from one parsed JSON value: a string is the text, an object holds it in `text_field`."""

    def bad(reason: str) -> Record:
        return Record(name, row, line, None, {}, reason, excerpt(raw))

    if isinstance(value, str):
        text, fields = value, {}
    elif isinstance(value, dict):
        if text_field not in value:
            keys = ", ".join(repr(k) for k in list(value)[:10]) or "none"
            return bad(f"no {text_field!r} field (the object has: {keys})")
        text = value[text_field]
        if not isinstance(text, str):
            return bad(f"{text_field!r} is {json_type(text)}, expected a string")
        fields = {k: v for k, v in value.items() if k != text_field}
    else:
        return bad(f"expected a JSON object or string, found {json_type(value)}")
    if _SURROGATE_ESCAPE.search(raw):
        problem = find_lone_surrogate(text, repr(text_field)) or find_lone_surrogate(fields, "the record")
        if problem:
            return bad(problem)
    return Record(name, row, line, text, fields)
