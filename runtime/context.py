"""Document context: a sentence is encoded together with its neighbours.

A sentence alone is often ambiguous ("Jordan" the person, the country or the river); the sentences
around it in its document usually settle it. A context example holds the target sentence's tokens with
tokens of the preceding and following sentences of the same document on either side, up to the model's
window; only the target's tokens are labelled (training) or read (inference). This is the scheme of
FLERT (Schweter & Akbik, 2020), chosen over whole-sentence context because it fills every window:

- Context is cut at token level, not at sentence boundaries, and split evenly between both sides; a
  side that runs out (start or end of a document) gives its share to the other. The target therefore
  sits as near the middle of the window as its document allows.
- No separator marks where the context ends: neighbouring text looks exactly as it does inside a long
  raw text, so the runtime's long-text windows (which also give every token context on both sides)
  serve a context-trained model the same way it was trained.
- A target longer than the window is cut to it, with no context, like a sentence-level model would.

The cost is compute: an example costs a whole window instead of the sentence's own length (several
times the tokens on news text; benchmarks/PERFORMANCE.md has the CoNLL-2003 figures). Training can cut it by packing
several consecutive sentences of a document into one target (`finetune --target-tokens`), all of
whose words are labelled; the packing goes through this same function, the packed run of sentences
standing in for one sentence. Inference always reads one sentence per window.

Documents are runs of equal `documents` ids; a file without document marks is one document, so
context then comes from consecutive sentences.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["CONTEXT_MODES", "ContextWindow", "default_stride", "pack_with_context", "plan_windows"]

CONTEXT_MODES = ("none", "document")


@dataclass(frozen=True)
class ContextWindow:
    """Token ids of one example (no special tokens) and where its target sentence lies in them."""

    ids: tuple[int, ...]
    target_start: int
    target_end: int  # exclusive; target_end - target_start <= the target's token count


def pack_with_context(
    sentence_ids: Sequence[Sequence[int]], documents: Sequence[int], budget: int
) -> list[ContextWindow]:
    """One window per sentence: its tokens plus up to `budget` tokens in all from its document's neighbours.

    `sentence_ids[i]` are sentence i's token ids without special tokens, `documents[i]` its document id;
    sentences of a document must be consecutive. `budget` is the window size without special tokens.
    """
    if len(sentence_ids) != len(documents):
        raise ValueError(f"got {len(sentence_ids)} sentences but {len(documents)} document ids")
    if budget < 1:
        raise ValueError(f"budget must be at least 1 token, got {budget}")
    windows: list[ContextWindow] = []
    start = 0
    while start < len(sentence_ids):
        end = start
        while end < len(sentence_ids) and documents[end] == documents[start]:
            end += 1
        flat: list[int] = []
        spans = []
        for ids in sentence_ids[start:end]:
            spans.append((len(flat), len(flat) + len(ids)))
            flat.extend(ids)
        for s, e in spans:
            if e - s >= budget:
                windows.append(ContextWindow(tuple(flat[s : s + budget]), 0, budget))
                continue
            room = budget - (e - s)
            left_available, right_available = s, len(flat) - e
            left = min(left_available, max(room // 2, room - right_available))
            right = min(right_available, room - left)
            windows.append(ContextWindow(tuple(flat[s - left : e + right]), left, left + e - s))
        start = end
    return windows


def plan_windows(n_tokens: int, size: int, stride: int) -> list[tuple[int, int, int, int]]:
    """Overlapping windows over n_tokens as (start, end, owned_start, owned_end).

    Consecutive windows overlap by at least `stride` tokens; each token is owned by exactly one
    window, the one in which it is furthest from an edge (split at the middle of each overlap).
    """
    if n_tokens <= size:
        return [(0, n_tokens, 0, n_tokens)] if n_tokens else []
    step = size - stride
    starts = list(range(0, n_tokens - size, step)) + [n_tokens - size]
    ends = [s + size for s in starts]
    cuts = [0] + [(starts[k + 1] + ends[k]) // 2 for k in range(len(starts) - 1)] + [n_tokens]
    return [(starts[k], ends[k], cuts[k], cuts[k + 1]) for k in range(len(starts))]


def default_stride(window: int, context: str) -> int:
    """Tokens shared by neighbouring windows of a long text: half a window for a model trained with
    document context (every token then keeps a quarter window of context on each side, as in training),
    a quarter window otherwise."""
    return window // 2 if context == "document" else window // 4
