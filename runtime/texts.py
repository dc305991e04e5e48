"""What makes an input text unusable, described once for every entry point (API, CLI, HTTP, corpus reader).

A Python `str` can hold lone surrogates (U+D800-U+DFFF), which are not characters: they come from bytes
that were not valid UTF-8 decoded with `errors="surrogateescape"` (command-line arguments) or from
`\\ud800` escapes in JSON. No tokenizer can encode them, so each entry point rejects them as bad input,
naming the position. JSON inputs are described by their JSON type names ("an array", "null"), the
words a user who wrote the JSON recognises, rather than Python's.
"""

from __future__ import annotations

from typing import Any

__all__ = ["json_type", "lone_surrogate"]


def lone_surrogate(text: str) -> int | None:
    """Character position of the first lone surrogate in `text`, or None when it encodes as UTF-8."""
    if text.isascii():
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return int(exc.start)
    return None


_JSON_TYPES: dict[type, str] = {
    dict: "an object",
    list: "an array",
    str: "a string",
    bool: "a boolean",
    int: "a number",
    float: "a number",
    type(None): "null",
}


def json_type(value: Any) -> str:
    """The JSON name of a parsed JSON value's type ("an object", "a number", "null", ...)."""
    return _JSON_TYPES.get(type(value), type(value).__name__)
