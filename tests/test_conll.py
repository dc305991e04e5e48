"""CoNLL reader: formats accepted, schemes normalised, every error names file and line."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from ner_export.runtime import DataFormatError, InvisibleLineWarning
from ner_export.runtime.conll import Sentence, TagRepairWarning, read_conll, write_conll


def _write(tmp_path: Path, text: str | bytes, name: str = "data.conll") -> Path:
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode("utf-8"))
    return path


def test_reads_sentences_documents_and_columns(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "-DOCSTART- -X- O O\n\nJohn NNP B-NP B-PER\nlives VBZ B-VP O\n\nParis NNP B-NP B-LOC\n\n"
        "-DOCSTART- -X- O O\n\nBerlin NNP B-NP B-LOC\n",
    )
    sentences = read_conll(path)
    assert sentences == [
        Sentence(("John", "lives"), ("B-PER", "O"), 0, 3),
        Sentence(("Paris",), ("B-LOC",), 0, 6),
        Sentence(("Berlin",), ("B-LOC",), 1, 10),
    ]


def test_crlf_bom_and_tabs_are_accepted(tmp_path: Path) -> None:
    path = _write(tmp_path, "\ufeffJohn\tB-PER\r\nSmith\tI-PER\r\n\r\nok O\r\n")
    assert [s.tags for s in read_conll(path)] == [("B-PER", "I-PER"), ("O",)]


def test_iob1_is_converted_to_iob2(tmp_path: Path) -> None:
    path = _write(tmp_path, "John I-PER\nSmith I-PER\nand O\nBob I-PER\nAnn B-PER\n\nParis I-LOC\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # IOB1 is a scheme, not a mistake: no repair warning
        sentences = read_conll(path)
    assert [s.tags for s in sentences] == [("B-PER", "I-PER", "O", "B-PER", "B-PER"), ("B-LOC",)]


def test_bioes_is_converted_to_iob2(tmp_path: Path) -> None:
    path = _write(tmp_path, "New B-LOC\nYork E-LOC\nand O\nBob S-PER\n\nBank B-ORG\nof I-ORG\nX E-ORG\n")
    assert [s.tags for s in read_conll(path)] == [("B-LOC", "I-LOC", "O", "B-PER"), ("B-ORG", "I-ORG", "I-ORG")]


def test_mixed_schemes_are_rejected_with_the_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "Bob S-PER\n\nNew B-LOC\nYork I-LOC\nsaid O\n")
    with pytest.raises(DataFormatError, match=r"data\.conll:5: tags mix schemes"):
        read_conll(path)


def test_i_after_o_in_iob2_is_repaired_with_a_warning(tmp_path: Path) -> None:
    lines = ["A B-PER", "b O", ""] * 30 + ["the O", "Paris I-LOC", ""]
    path = _write(tmp_path, "\n".join(lines) + "\n")
    with pytest.warns(TagRepairWarning, match=r"data\.conll:92: an I- tag"):
        sentences = read_conll(path)
    assert sentences[-1].tags == ("O", "B-LOC")


@pytest.mark.parametrize(
    "content, line, problem",
    [
        ("John B-PER\nlonely\n", 2, "expected a word and a tag"),
        ("John B-PER\nParis X-LOC\n", 2, "neither 'O' nor"),
        ("John B-PER\nParis LOC\n", 2, "neither 'O' nor"),
        ("John B-\n", 1, "neither 'O' nor"),
        ("", 1, "holds no sentence"),
        ("\n\n-DOCSTART- O\n\n", 1, "holds no sentence"),
    ],
)
def test_malformed_files_name_file_and_line(tmp_path: Path, content: str, line: int, problem: str) -> None:
    path = _write(tmp_path, content)
    with pytest.raises(DataFormatError, match=problem) as info:
        read_conll(path)
    assert info.value.line_number == line
    assert str(info.value).startswith(f"{path}:{line}:")


def test_invalid_utf8_names_the_line(tmp_path: Path) -> None:
    path = _write(tmp_path, b"John B-PER\n\nPar\xffis B-LOC\n")
    with pytest.raises(DataFormatError, match=r":3: not valid utf-8") as info:
        read_conll(path)
    assert info.value.line_number == 3


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such file"):
        read_conll(tmp_path / "absent.txt")


def test_write_then_read_round_trips(tmp_path: Path) -> None:
    sentences = [Sentence(("Zoë", "Müller"), ("B-PER", "I-PER")), Sentence(("x",), ("O",))]
    write_conll(tmp_path / "out.conll", sentences)
    assert [(s.words, s.tags) for s in read_conll(tmp_path / "out.conll")] == [(s.words, s.tags) for s in sentences]


def test_shipped_sample_is_valid_iob2_with_all_types() -> None:
    from ner_export.demo import sample_path

    counts = {}
    for split, minimum in (("train", 400), ("dev", 100), ("test", 100)):
        sentences = read_conll(sample_path(split))
        assert len(sentences) >= minimum
        counts[split] = {t[2:] for s in sentences for t in s.tags if t != "O"}
    assert counts["train"] == {"PER", "ORG", "LOC", "MISC"}


def test_unicode_separators_and_spaces_stay_inside_tokens(tmp_path: Path) -> None:
    path = _write(tmp_path, "a\u2028b O\nParis\u0085 B-LOC\n10\u00a0000 O\n")
    assert read_conll(path)[0].words == ("a\u2028b", "Paris\u0085", "10\u00a0000")


INVISIBLE_LINES = [
    "\ufeff",  # a BOM left in the middle by concatenating files
    "\u200b",  # zero-width space
    "\u200c",  # zero-width non-joiner
    "\u200d",  # zero-width joiner
    "\u2060",  # word joiner
    "\ufe0f",  # variation selector-16
    "\U000e0100",  # variation selector-17 (supplementary)
    "\u00ad",  # soft hyphen, another format character
    " \u200b\t\ufeff ",  # several, with blanks around
]


@pytest.mark.parametrize("invisible", INVISIBLE_LINES)
def test_a_line_of_invisible_characters_is_a_blank_line_with_a_warning(tmp_path: Path, invisible: str) -> None:
    path = _write(tmp_path, f"John B-PER\nSmith I-PER\n{invisible}\nParis B-LOC\nsaid O\n")
    blank = read_conll(_write(tmp_path, "John B-PER\nSmith I-PER\n\nParis B-LOC\nsaid O\n", "blank.conll"))
    with pytest.warns(InvisibleLineWarning) as caught:
        sentences = read_conll(path)
    assert [(s.words, s.tags, s.document) for s in sentences] == [(s.words, s.tags, s.document) for s in blank]
    assert [s.line for s in sentences] == [1, 4]
    (warning,) = caught
    message = str(warning.message)
    assert message.startswith(f"{path}:3: a line holding only invisible characters (U+")
    assert "read as a blank line" in message and "\n" not in message


def test_invisible_lines_give_one_warning_for_the_file(tmp_path: Path) -> None:
    path = _write(tmp_path, "John B-PER\n\u200b\n\nParis B-LOC\n\ufeff\nBerlin B-LOC\n\ufe0f\n")
    with pytest.warns(InvisibleLineWarning, match=r"data\.conll:2: .*\(3 such line\(s\) in the file\)") as caught:
        sentences = read_conll(path)
    assert len(caught) == 1
    assert [s.words for s in sentences] == [("John",), ("Paris",), ("Berlin",)]


def test_concatenated_files_keep_their_documents(tmp_path: Path) -> None:
    """`cat a.conll b.conll` where b starts with a BOM: its -DOCSTART- still starts a document."""
    first = "\ufeff-DOCSTART- -X- O O\n\nJohn B-PER\n\n"
    second = "\ufeff-DOCSTART- -X- O O\n\nParis B-LOC\n\n"
    path = _write(tmp_path, first + second + "\ufeff\n" + second)
    with pytest.warns(InvisibleLineWarning, match=r"data\.conll:9: "):  # the lone BOM line
        sentences = read_conll(path)
    assert [(s.words, s.document) for s in sentences] == [(("John",), 0), (("Paris",), 1), (("Paris",), 2)]


def test_a_word_of_invisible_characters_keeps_its_slot(tmp_path: Path) -> None:
    """A line with a tag is a word, whatever its characters: dropping it would shift the labels after it."""
    path = _write(tmp_path, "John B-PER\n\u200b O\n\ufe0f O\nParis B-LOC\n")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        (sentence,) = read_conll(path)
    assert sentence.words == ("John", "\u200b", "\ufe0f", "Paris")
    assert sentence.tags == ("B-PER", "O", "O", "B-LOC")


def test_visible_lines_without_a_tag_are_still_rejected(tmp_path: Path) -> None:
    path = _write(tmp_path, "John B-PER\n\u200bx\n")
    with pytest.raises(DataFormatError, match="expected a word and a tag") as info:
        read_conll(path)
    assert info.value.line_number == 2
