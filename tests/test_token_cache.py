"""runtime/token_cache.py: cached chunk tokens equal the tokenizer's own, where the tokenizer allows the cache."""

from __future__ import annotations

import string
from pathlib import Path

import pytest
from conftest import _vocab
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tokenizers import AddedToken, Tokenizer, models, normalizers, pre_tokenizers

from ner_export.runtime import BundleManifest, NerModel
from ner_export.runtime.casing import case_ids
from ner_export.runtime.decoding import text_word_spans
from ner_export.runtime.session import load_tokenizer
from ner_export.runtime.token_cache import (
    COUNT_LEARNS_CHARS,
    FEW_UNSEEN,
    MAX_CHUNK_CHARS,
    ChunkTokenizer,
    chunk_local,
)


def bert_tokenizer() -> Tokenizer:
    """A BERT WordPiece tokenizer built in place (uncased, accents kept: BertNormalizer's defaults)."""
    vocab = {token: i for i, token in enumerate(_vocab())}
    tokenizer = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]", max_input_chars_per_word=100))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.add_special_tokens(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
    return tokenizer


def metaspace_tokenizer() -> Tokenizer:
    """A SentencePiece-style tokenizer: the space becomes part of the next piece, and only the first
    word gets a "▁" of its own, so a chunk's offsets depend on where the chunk stands."""
    pieces = ["<unk>", "▁", "▁a", "▁b", "a", "b", "ab", "▁ab"]
    tokenizer = Tokenizer(models.WordLevel({p: i for i, p in enumerate(pieces)}, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme="first")
    return tokenizer


def plain(tokenizer: Tokenizer, text: str, casing: bool = True) -> tuple:
    encoding = tokenizer.encode(text, add_special_tokens=False)
    classes = case_ids(text, encoding.offsets) if casing else None
    return encoding.ids, encoding.offsets, classes, text_word_spans(text, encoding.offsets)


ALPHABET = (
    string.ascii_letters + string.digits + string.punctuation + "   \t\n\r"
    "\u00a0\u2009\u3000\u200b\u0085\u001f\x00\x07\ufffd"  # unicode spaces, zero width, controls
    "éÉüßİıΣσς\u0301\u0308ﬁ"  # accents, combining marks, case changes that alter length
    "東京中文한국어"  # CJK: BertNormalizer puts spaces around Chinese characters
)
WORDS = st.sampled_from(
    ["Paris", "paris", "PARIS", "U.S.", "(Reuters),", "--", "[CLS]", "[MASK]x", "x[SEP]", "São", "x" * 120, "ab" * 40]
)
TEXTS = st.lists(st.one_of(st.text(ALPHABET, max_size=12), WORDS), max_size=12).map(" ".join)


def test_bert_tokenizers_are_chunk_local(tiny_bundle: Path) -> None:
    manifest = BundleManifest.read(tiny_bundle)
    assert chunk_local(load_tokenizer(tiny_bundle / manifest.tokenizer_file))
    assert chunk_local(bert_tokenizer())


@pytest.mark.parametrize(
    "change",
    [
        lambda t: setattr(t, "pre_tokenizer", pre_tokenizers.Metaspace()),
        lambda t: setattr(t, "pre_tokenizer", pre_tokenizers.ByteLevel()),
        lambda t: setattr(t, "pre_tokenizer", pre_tokenizers.Punctuation()),  # splits no whitespace
        lambda t: setattr(t, "pre_tokenizer", None),
        lambda t: setattr(t, "normalizer", normalizers.Strip()),
        lambda t: setattr(t, "normalizer", normalizers.Sequence([normalizers.NFD(), normalizers.Replace(" ", "_")])),
        lambda t: t.add_tokens([AddedToken("<ent>", lstrip=True)]),
        lambda t: t.add_tokens(["new york"]),
    ],
    ids=["metaspace", "bytelevel", "no-whitespace-split", "no-pre-tokenizer", "strip", "replace", "lstrip", "space"],
)
def test_tokenizers_that_see_across_spaces_are_not(change) -> None:
    tokenizer = bert_tokenizer()
    change(tokenizer)
    assert not chunk_local(tokenizer)
    assert ChunkTokenizer(tokenizer, casing=True).capacity == 0


def test_sequences_of_local_parts_are_chunk_local() -> None:
    tokenizer = bert_tokenizer()
    parts = [normalizers.NFD(), normalizers.StripAccents(), normalizers.Lowercase()]
    tokenizer.normalizer = normalizers.Sequence(parts)
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    assert chunk_local(tokenizer)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seen=st.lists(TEXTS, max_size=6), text=TEXTS, casing=st.booleans())
def test_cached_chunks_give_the_tokenizers_answer(seen: list[str], text: str, casing: bool) -> None:
    tokenizer = bert_tokenizer()
    chunks = ChunkTokenizer(tokenizer, casing=casing, capacity=64)
    for earlier in seen:  # fills the cache (and empties it when full)
        assert tuple(chunks(earlier)) == plain(tokenizer, earlier, casing), earlier
    reordered = " ".join(reversed(" ".join(seen).split(" ")))  # seen chunks in new places: the hit path
    for probe in (text, text, reordered):
        assert tuple(chunks(probe)) == plain(tokenizer, probe, casing), probe
        assert len(chunks) <= 64


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seen=st.lists(TEXTS, max_size=4), text=TEXTS, capacity=st.sampled_from([0, 8, 64]))
def test_count_is_the_tokenizers_count(seen: list[str], text: str, capacity: int) -> None:
    tokenizer = bert_tokenizer()
    chunks = ChunkTokenizer(tokenizer, casing=True, capacity=capacity)
    for earlier in seen:
        chunks(earlier)
    for probe in (text, text):  # the second time from what the first one cached
        assert chunks.count(probe) == len(tokenizer.encode(probe, add_special_tokens=False).ids), probe


def test_a_counted_text_is_then_assembled_not_encoded() -> None:
    """count() learns unseen chunks as a call would, so the call that follows on the same text is a hit;
    a long text of many unseen chunks is counted by one plain encode and the cache learns nothing."""
    tokenizer = bert_tokenizer()
    chunks = ChunkTokenizer(tokenizer, casing=True)
    calls: list[str] = []

    class Spy:
        def encode(self, text: str, **kwargs: bool):
            calls.append(text)
            return tokenizer.encode(text, **kwargs)

    chunks._tokenizer = Spy()
    chunks("John Smith lives in Paris")
    few = "John Smith (Reuters) lives in Berlin"
    calls.clear()
    assert chunks.count(few) == len(tokenizer.encode(few, add_special_tokens=False).ids)
    assert calls == ["(Reuters)", "Berlin"], "each unseen chunk alone"
    calls.clear()
    assert tuple(chunks(few)) == plain(tokenizer, few)
    assert chunks.count(few) == len(chunks(few).ids)
    assert calls == []
    many = "Maria Lopez works for the Bank of France"
    assert chunks.count(many) == len(tokenizer.encode(many, add_special_tokens=False).ids)
    assert calls == [many], "many unseen chunks: the whole text once, its chunks learned"
    calls.clear()
    assert tuple(chunks(many)) == plain(tokenizer, many) and calls == []
    long_text = " ".join(f"word{i}" for i in range(COUNT_LEARNS_CHARS // 4))
    known = len(chunks)
    assert chunks.count(long_text) == len(tokenizer.encode(long_text, add_special_tokens=False).ids)
    assert calls == [long_text] and len(chunks) == known, "a long text is counted, not learned"


def test_a_text_of_known_chunks_is_assembled_not_encoded() -> None:
    tokenizer = bert_tokenizer()
    chunks = ChunkTokenizer(tokenizer, casing=True)
    chunks("John Smith lives in Paris, (Reuters) said.")
    assert len(chunks) == 7  # each distinct chunk once
    calls: list[str] = []
    assert FEW_UNSEEN == 2  # the counts below

    class Spy:
        def encode(self, text: str, **kwargs: bool):
            calls.append(text)
            return tokenizer.encode(text, **kwargs)

    chunks._tokenizer = Spy()
    text = "Paris,  said.  John   Smith (Reuters)"
    assert tuple(chunks(text)) == plain(tokenizer, text)
    assert calls == []
    assert tuple(chunks(text + " lives in London")) == plain(tokenizer, text + " lives in London")
    assert calls == ["London"]  # a few unseen chunks: each alone
    many = f"Berlin Tokyo {text} Bank of France"
    assert tuple(chunks(many)) == plain(tokenizer, many)
    assert calls == ["London", many]  # more: the whole text once
    assert {"Berlin", "Tokyo", "Bank", "of", "France"} <= set(chunks._chunks)


def test_long_chunks_are_not_kept_and_the_cache_stays_bounded() -> None:
    tokenizer = bert_tokenizer()
    chunks = ChunkTokenizer(tokenizer, casing=True, capacity=10)
    long_word = "y" * (MAX_CHUNK_CHARS + 1)
    chunks(f"{long_word} paris")
    assert long_word not in chunks._chunks and "paris" in chunks._chunks
    for i in range(50):
        text = f"w{i} x{i} z{i}"
        assert tuple(chunks(text)) == plain(tokenizer, text)
        assert len(chunks) <= 10
    assert ChunkTokenizer(tokenizer, casing=True, capacity=0)("a b") == plain(tokenizer, "a b")
    with pytest.raises(ValueError, match="capacity"):
        ChunkTokenizer(tokenizer, casing=True, capacity=-1)


def test_the_check_matters_a_forced_cache_breaks_a_metaspace_tokenizer() -> None:
    """What `chunk_local` guards against: forced on, the cache answers a Metaspace tokenizer wrongly."""
    tokenizer = metaspace_tokenizer()
    chunks = ChunkTokenizer(tokenizer, casing=False)
    assert chunks.capacity == 0
    chunks.capacity = 100
    chunks("ab b")  # learns "b" from a piece that starts at the space before it
    encoding = tokenizer.encode("b ab", add_special_tokens=False)
    assert chunks("b ab")[:2] != (encoding.ids, encoding.offsets)  # "▁b" began at the space before it


def test_model_answers_do_not_depend_on_the_cache(tiny_bundle: Path, casing_bundle: Path) -> None:
    texts = ["John Smith lives in Paris.", "Paris, said John Smith", "(Reuters) Maria Lopez -- U.S. bank", "  a\tb  "]
    for bundle in (tiny_bundle, casing_bundle):
        cached, uncached = NerModel.load(bundle), NerModel.load(bundle, token_cache=0)
        assert cached._chunk_tokens.capacity > 0 and uncached._chunk_tokens.capacity == 0
        for text in texts + texts:
            alone = cached(text)
            assert alone == uncached(text), text
            together = cached.predict([text, "a neighbour to pad the batch"])[0]
            assert [(e.label, e.start, e.end) for e in alone] == [(e.label, e.start, e.end) for e in together]
        assert len(cached._chunk_tokens) > 0
