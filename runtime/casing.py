"""Word casing as a model input, for uncased base models.

An uncased tokenizer lowercases before it splits, so "Apple" and "apple" reach the model as the same
ids and capitalisation, the strongest surface cue for names, is lost. BERT-style models have a second
per-token input that single-sentence tagging leaves at zero: token_type_ids, an embedding added to
every token. A model trained with casing (`finetune --casing`, the default) widens that table to
CASE_CLASSES rows and is fed each token's casing class there. The ONNX graph keeps its inputs; what
changes is that every place that builds inputs (training, PyTorch tagging, export validation, the
runtime, the benchmark's pipelines) must fill token_type_ids with `case_ids`, which is why it lives
here, in the base layer.

Design choices:
- The class is taken from the token's own characters in the original text (through the tokenizer's
  offsets), not from its word: raw text and pre-split words then give the same classes without
  agreeing on what a word is. A continuation piece of "SCHWARZ" is still all capitals; a one-letter
  piece counts as an initial capital.
- Three classes (no capital, initial capital, all capitals): headlines and sports tables in news are
  all capitals, and a title-case word there carries no signal. Mixed case ("iPhone") falls into the
  class of its pieces.
- Special tokens and padding get class 0, the pretrained row, which every new row starts from.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

__all__ = ["CASE_CLASSES", "case_class", "case_ids"]

CASE_CLASSES = 3  # 0: no capital, 1: initial capital, 2: all capitals (two or more letters)


@lru_cache(maxsize=1 << 16)  # runs for every token, and tokens repeat: a hit skips the character scan
def case_class(piece: str) -> int:
    """Casing class of one token's characters in the original text."""
    letters = [c for c in piece if c.isalpha()]
    if not letters:
        return 0
    if len(letters) >= 2 and all(c.isupper() for c in letters):
        return 2
    return 1 if letters[0].isupper() else 0


def case_ids(
    source: str | Sequence[str], offsets: Sequence[tuple[int, int]], word_ids: Sequence[int | None] | None = None
) -> list[int]:
    """Casing class of every token of one encoding.

    `source` is the encoded text with `offsets` into it, or, for pre-split input, the list of words
    with `word_ids` saying which word each token's offsets are relative to. Tokens without a word
    (special tokens) get 0.
    """
    if word_ids is None:
        if not isinstance(source, str):
            raise TypeError("case_ids: pre-split words need their word_ids")
        return [case_class(source[start:end]) for start, end in offsets]
    return [
        0 if word is None else case_class(source[word][start:end])
        for word, (start, end) in zip(word_ids, offsets, strict=True)
    ]
