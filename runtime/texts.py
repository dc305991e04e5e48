"""What makes an input text unusable, described once for every entry point (API, CLI, HTTP, corpus reader).

A Python `str` can hold lone surrogates (U+D800-U+DFFF), which are not characters: they come from bytes
that were not valid UTF-8 decoded with `errors="surrogateescape"` (command-line arguments) or from
`\\ud800` escapes in JSON. No tokenizer can encode them, so each entry point rejects them as bad input,
naming the position. JSON inputs are described by their JSON type names ("an array", "null"), the
words a user who wrote the JSON recognises, rather than Python's. `check_texts` and `check_word_lists`
are `NerModel`'s checks of its arguments: a wrong type is a `TypeError`, a text no tokenizer can
encode an `InputError`, each naming the item.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .errors import InputError

__all__ = ["check_texts", "check_word_lists", "json_type", "lone_surrogate", "unencodable"]


def lone_surrogate(text: str) -> int | None:
    """Character position of the first lone surrogate in `text`, or None when it encodes as UTF-8."""
    if text.isascii():
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return int(exc.start)
    return None


def unencodable(text: str) -> str | None:
    """What makes `text` impossible to tokenize (a lone surrogate), or None when it is fine."""
    at = lone_surrogate(text)
    if at is None:
        return None
    return (
        f"a lone surrogate U+{ord(text[at]):04X} at character {at}, which is not text and cannot "
        "be encoded (bytes that were not valid UTF-8, decoded with errors='surrogateescape', look like this)"
    )


def check_texts(texts: Any, what: str) -> None:
    """Refuse anything but a sequence of encodable `str` as the texts of the call named `what`."""
    if isinstance(texts, (str, bytes)) or not isinstance(texts, Sequence):
        raise TypeError(f"{what} takes a list of texts, got {type(texts).__name__}; for a single text call model(text)")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"{what}: item {i} is {type(text).__name__}, expected str")
        problem = unencodable(text)
        if problem:
            raise InputError(f"{what}: text {i} has {problem}")


def check_word_lists(word_lists: Any) -> None:
    """Refuse anything but a sequence of sequences of encodable `str` as `predict_words`' sentences."""
    if isinstance(word_lists, (str, bytes)) or not isinstance(word_lists, Sequence):
        raise TypeError(f"predict_words takes a list of word lists, got {type(word_lists).__name__}")
    for i, words in enumerate(word_lists):
        if isinstance(words, (str, bytes)) or not isinstance(words, Sequence):
            raise TypeError(f"predict_words: item {i} is {type(words).__name__}, expected a list of str")
        for j, word in enumerate(words):
            if not isinstance(word, str):
                raise TypeError(f"predict_words: item {i}, word {j} is {type(word).__name__}, expected str")
            problem = unencodable(word)
            if problem:
                raise InputError(f"predict_words: item {i}, word {j} has {problem}")


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
