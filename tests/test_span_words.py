"""Spans to words and tags: the runtime's words, the one rule for spans that cut a word, and the way back."""

from __future__ import annotations

from pathlib import Path

import pytest

from ner_export.runtime.decoding import text_word_spans
from ner_export.runtime.span_records import Span
from ner_export.runtime.span_words import join_words, label_words, split_text_words, unsplittable_word, word_spans

TEXT = 'He met (Reuters), the Paris-based U.S. firm ... "Acme"\u00a0Corp.'


def _cores(text: str) -> list[tuple[str, str]]:
    return [(text[w.start : w.end], text[w.core_start : w.core_end]) for w in split_text_words(text)]


def test_words_are_whitespace_chunks_with_the_runtime_core() -> None:
    assert _cores(TEXT) == [
        ("He", "He"),
        ("met", "met"),
        ("(Reuters),", "Reuters"),
        ("the", "the"),
        ("Paris-based", "Paris-based"),
        ("U.S.", "U.S"),
        ("firm", "firm"),
        ("...", "..."),  # no letter or digit: all core
        ('"Acme"', "Acme"),  # a no-break space separates words, as in the runtime
        ("Corp.", "Corp"),
    ]


def test_the_cores_are_what_the_runtime_reads_of_tokenized_text(tiny_checkpoint: Path) -> None:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(tiny_checkpoint / "tokenizer.json"))
    texts = [TEXT, "Maria's (new) bank, in 2024: John-Smith's!", "  lead  and trail  ", "a\tb\nc"]
    for text in texts:
        offsets = tokenizer.encode(text, add_special_tokens=False).offsets
        runtime = [(offsets[first][0], offsets[last][1]) for first, last in text_word_spans(text, offsets)]
        ours = [(w.core_start, w.core_end) for w in split_text_words(text)]
        with_letters = [core for core in ours if any(c.isalnum() for c in text[core[0] : core[1]])]
        assert [core for core in runtime if any(c.isalnum() for c in text[core[0] : core[1]])] == with_letters


def test_aligned_spans_tag_whole_words_whatever_their_edge_punctuation() -> None:
    text = "Bank of Tokyo met (Reuters), John Smith and Maria."
    spans = [Span(0, 13, "ORG"), Span(19, 26, "ORG"), Span(29, 39, "PER"), Span(44, 50, "PER")]
    labels = label_words(text, spans)
    assert labels.words == ("Bank", "of", "Tokyo", "met", "(Reuters),", "John", "Smith", "and", "Maria.")
    assert labels.tags == ("B-ORG", "I-ORG", "I-ORG", "O", "B-ORG", "B-PER", "I-PER", "O", "B-PER")
    assert labels.used == 4 and labels.misaligned == ()


def test_adjacent_spans_of_one_type_stay_two_entities() -> None:
    labels = label_words("Paris London", [Span(0, 5, "LOC"), Span(6, 12, "LOC")])
    assert labels.tags == ("B-LOC", "B-LOC")


def test_a_span_that_starts_a_word_labels_the_whole_word_and_is_reported() -> None:
    text = "the Paris-based firm"
    labels = label_words(text, [Span(4, 9, "LOC")])
    assert labels.tags == ("O", "B-LOC", "O")
    assert labels.used == 1
    (misaligned,) = labels.misaligned
    assert (misaligned.text, misaligned.words, misaligned.labelled) == ("Paris", "Paris-based", True)
    assert misaligned.describe() == (
        "span [4, 9) LOC 'Paris' cuts 'Paris-based': the words whose first letter or digit it covers take its label"
    )


def test_a_span_inside_a_word_labels_nothing_and_is_reported() -> None:
    labels = label_words("the Paris-based firm", [Span(10, 15, "X")])
    assert labels.tags == ("O", "O", "O")
    assert labels.used == 0
    (misaligned,) = labels.misaligned
    assert (misaligned.text, misaligned.words, misaligned.labelled) == ("based", "Paris-based", False)
    assert misaligned.describe().endswith("it covers no word's first letter or digit, so it labels nothing")


def test_a_span_from_inside_one_word_into_the_next_labels_the_words_it_starts() -> None:
    labels = label_words("New York-based Acme", [Span(4, 19, "ORG")])  # "York-based Acme"
    assert labels.tags == ("O", "B-ORG", "I-ORG")
    labels = label_words("NewYork based", [Span(3, 13, "LOC")])  # "York based": starts inside "NewYork"
    assert labels.tags == ("O", "B-LOC")
    assert labels.misaligned[0].words == "NewYork based"


def test_a_span_over_spaces_or_edge_punctuation_only_is_dropped_and_reported() -> None:
    labels = label_words("Paris, France", [Span(5, 7, "X")])
    assert labels.tags == ("O", "O")
    assert labels.misaligned[0].words == "Paris," and not labels.misaligned[0].labelled


def test_word_spans_give_whole_words_back() -> None:
    text = "Bank of Tokyo met (Reuters), John Smith"
    tags = ["B-ORG", "I-ORG", "I-ORG", "O", "B-ORG", "B-PER", "I-PER"]
    assert word_spans(text, tags) == [Span(0, 13, "ORG"), Span(18, 28, "ORG"), Span(29, 39, "PER")]
    assert word_spans("a b", ["I-PER", "I-LOC"]) == [Span(0, 1, "PER"), Span(2, 3, "LOC")]  # lenient, as seqeval
    with pytest.raises(ValueError, match="1 tags for the 2 words"):
        word_spans("a b", ["O"])


def test_joined_words_split_back_into_the_same_words() -> None:
    words = ["U.S.", "(", "Reuters", ")", "..."]
    text, offsets = join_words(words)
    assert text == "U.S. ( Reuters ) ..."
    assert [text[a:b] for a, b in offsets] == words
    assert [text[w.start : w.end] for w in split_text_words(text)] == words
    assert unsplittable_word(["a", "b\u00a0c", ""]) == 1
    with pytest.raises(ValueError, match="word 2 'b\\\\xa0c' is empty or holds whitespace"):
        join_words(["a", "b\u00a0c"])
