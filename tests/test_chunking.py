"""Chunking keeps every word, respects the size limit and keeps code and tables whole."""

from __future__ import annotations

import random
import re
import time
from pathlib import Path
from typing import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from generation_functions.chunking import Chunk, chunk_document, chunk_documents, normalize_whitespace, split_text
from generation_functions.documents import Document, read_documents

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "verus_corpus"
WORDS = "verus staking identity currency block reward miner notary bridge the a of to and is".split()


def _paragraph(rng: random.Random, sentences: int) -> str:
    parts = []
    for _ in range(sentences):
        words = [rng.choice(WORDS) for _ in range(rng.randint(3, 20))]
        parts.append(" ".join(words).capitalize() + rng.choice([".", "!", "?", ";"]))
    return " ".join(parts)


def _document(rng: random.Random, paragraphs: int = 30) -> str:
    return "\n\n".join(_paragraph(rng, rng.randint(1, 12)) for _ in range(paragraphs))


def _assert_chunk_properties(text: str, chunks: list[str], size: int) -> None:
    assert all(chunk.strip() == chunk and chunk for chunk in chunks)
    assert all(len(chunk) <= size for chunk in chunks)
    words = text.split()
    if all(len(word) <= size for word in words):
        assert " ".join(chunks).split() == words  # every word, in order, none split
    assert "".join("".join(chunks).split()) == "".join(words)  # no character lost even with hard cuts


# ----------------------------------------------------------------------------- basic rules


def test_short_text_is_one_chunk() -> None:
    assert split_text("Hello   world.\n\n\n\nSecond  paragraph.  ", 1000) == ["Hello world.\n\nSecond paragraph."]


def test_empty_and_whitespace_text_give_no_chunks() -> None:
    assert split_text("", 100) == []
    assert split_text(" \n\n\t \n ", 100) == []


def test_invalid_chunk_size_is_refused() -> None:
    with pytest.raises(ValueError):
        split_text("text", 0)


def test_paragraphs_are_packed_whole_and_greedily() -> None:
    paragraphs = [f"Paragraph {n} " + "word " * 10 for n in range(10)]
    text = "\n\n".join(p.strip() for p in paragraphs)
    chunks = split_text(text, 130)
    # Each paragraph is 63-64 chars: two fit with the blank line between them, three do not.
    assert len(chunks) == 5
    for chunk in chunks:
        assert chunk.count("Paragraph") == 2
        assert all(piece.startswith("Paragraph") for piece in chunk.split("\n\n"))


def test_long_paragraph_is_split_at_sentences() -> None:
    sentences = [f"Sentence number {n} says something about staking." for n in range(20)]
    chunks = split_text(" ".join(sentences), 120)
    for chunk in chunks:
        assert chunk.endswith(".")
        assert chunk.startswith("Sentence")
    _assert_chunk_properties(" ".join(sentences), chunks, 120)


def test_long_sentence_is_split_at_words_never_mid_word() -> None:
    text = " ".join(f"word{n}" for n in range(500))
    chunks = split_text(text, 47)
    _assert_chunk_properties(text, chunks, 47)
    assert all(re.fullmatch(r"(word\d+ ?)+", chunk) for chunk in chunks)


def test_only_a_word_longer_than_the_limit_is_hard_split() -> None:
    long_word = "x" * 25
    text = f"short {long_word} tail"
    chunks = split_text(text, 10)
    assert chunks == ["short", "x" * 10, "x" * 10, "xxxxx tail"]


def test_whitespace_is_normalised_outside_code_fences() -> None:
    text = "Some \t  words   here.   \n\n\n\n\nNext\tline  \n```\ncode    with   spaces\t\n\n\n\nmore\n```\n"
    normalised = normalize_whitespace(text)
    assert "Some words here.\n\nNext line" in normalised
    assert "code    with   spaces\n\n\n\nmore" in normalised
    assert not re.search(r"[ \t]\n", normalised)


def test_space_runs_collapse_but_indentation_stays() -> None:
    text = "a  b   \n    indented  item  \n  \nlast\u00a0\u00a0word \t end  "
    assert normalize_whitespace(text) == "a b\n    indented item\n\nlast word end"


@settings(max_examples=300, deadline=None, database=None)
@given(text=st.text(alphabet=st.sampled_from(list("ab. \n\t\r\f\u00a0\u3000é")), max_size=300))
def test_normalised_prose_lines_are_tidy(text: str) -> None:
    normalised = normalize_whitespace(text)
    assert normalised.split() == text.split()
    assert "\n\n\n" not in normalised
    for line in normalised.split("\n"):
        assert line == line.rstrip()
        body = line.lstrip()
        assert "  " not in body and "\t" not in body and "\u00a0" not in body


def test_windows_line_endings_are_normalised() -> None:
    assert split_text("one\r\ntwo\r\n\r\n\r\nthree", 100) == ["one\ntwo\n\nthree"]


def test_code_fence_is_kept_whole_when_it_fits() -> None:
    code = "```python\n" + "\n".join(f"def f{n}(x):\n    return x + {n}" for n in range(8)) + "\n```"
    before = _paragraph(random.Random(1), 6)
    after = _paragraph(random.Random(2), 6)
    text = f"{before}\n\n{code}\n\n{after}"
    size = len(code) + 20
    chunks = split_text(text, size)
    assert any(code in chunk for chunk in chunks)
    _assert_chunk_properties(text, chunks, size)


def test_code_fence_with_blank_lines_is_not_split_at_them() -> None:
    code = "```\nfirst()\n\n\nsecond()\n```"
    chunks = split_text(f"Intro text.\n\n{code}\n\nOutro.", len(code) + 2)
    assert code in chunks


def test_unclosed_fence_is_plain_text() -> None:
    text = "Intro   text.\n\n```\nstray    fence\n\nNext   paragraph."
    assert normalize_whitespace(text) == "Intro text.\n\n```\nstray fence\n\nNext paragraph."
    assert split_text(text, 20) == ["Intro text.", "```\nstray fence", "Next paragraph."]


def test_tilde_fence_and_longer_closing_fence() -> None:
    text = "~~~~\na    b\n\n~~~~~\n\ntail   end"
    assert normalize_whitespace(text) == "~~~~\na    b\n\n~~~~~\n\ntail end"


def test_oversize_code_fence_is_split_at_lines() -> None:
    lines = [f"    line_{n} = compute({n})" for n in range(40)]
    code = "```\n" + "\n".join(lines) + "\n```"
    chunks = split_text(code, 120)
    _assert_chunk_properties(code, chunks, 120)
    for chunk in chunks:
        for line in chunk.split("\n"):
            assert line.strip() in {"```"} or re.fullmatch(r"line_\d+ = compute\(\d+\)", line.strip())


def test_markdown_table_is_kept_whole_when_it_fits() -> None:
    table = "\n".join(["| key | value |", "|-----|-------|"] + [f"| k{n} | v{n} |" for n in range(10)])
    intro = "The table below lists " + "many " * 20 + "values:"
    text = f"{intro}\n{table}\nAfter the table comes more text that is fairly long too."
    size = len(table) + 5
    chunks = split_text(text, size)
    assert table in chunks
    _assert_chunk_properties(text, chunks, size)


def test_oversize_table_is_split_between_rows() -> None:
    table = "\n".join(["| key | value |"] + [f"| k{n} | v{n} |" for n in range(50)])
    chunks = split_text(table, 100)
    for chunk in chunks:
        assert all(re.fullmatch(r"\| k(ey|\d+) \| v(alue|\d+) \|", line) for line in chunk.split("\n"))


def test_list_items_are_split_between_items() -> None:
    items = "\n".join(f"- item {n} has a few words" for n in range(30))
    chunks = split_text(items, 100)
    for chunk in chunks:
        assert all(line.startswith("- item") for line in chunk.split("\n"))


# ----------------------------------------------------------------------------- properties


@pytest.mark.parametrize("size", [1, 7, 40, 200, 1000, 5000])
@pytest.mark.parametrize("seed", range(5))
def test_random_documents_keep_properties(size: int, seed: int) -> None:
    rng = random.Random(seed)
    text = _document(rng)
    if seed % 2:
        text = text.replace(". ", ".   \t ").replace("\n\n", "\n\n\n\n")
    _assert_chunk_properties(text, split_text(text, size), size)


@settings(max_examples=300, deadline=None, database=None)
@given(
    text=st.text(alphabet=st.sampled_from(list("ab .!?\n\t|`#-*~")) | st.characters(), max_size=400),
    size=st.integers(min_value=1, max_value=120),
)
def test_any_text_keeps_properties(text: str, size: int) -> None:
    _assert_chunk_properties(text, split_text(text, size), size)


# ----------------------------------------------------------------------------- documents


def test_chunk_document_numbers_chunks_and_carries_source() -> None:
    doc = Document(path="wiki/staking.md", title="Staking", text=_document(random.Random(3)))
    chunks = chunk_document(doc, 300)
    assert [chunk.index for chunk in chunks] == list(range(len(chunks)))
    assert all(chunk.source == "wiki/staking.md" for chunk in chunks)
    assert all(chunk.textdetails == "Staking (wiki/staking.md)" for chunk in chunks)


def test_chunk_key_is_sha256_of_text() -> None:
    chunk = Chunk(text="abc", source="a.txt", textdetails="a.txt", index=0)
    assert chunk.key == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_chunk_documents_yields_duplicate_texts_once() -> None:
    boilerplate = "Join us on Discord for support."
    first = Document(path="a.md", title="a", text=f"Alpha text.\n\n{boilerplate}")
    copy = Document(path="b.md", title="b", text=f"Alpha text.\n\n{boilerplate}")
    third = Document(path="c.md", title="c", text=f"Gamma text.\n\n{boilerplate}")
    chunks = list(chunk_documents([first, copy, third], 20))
    assert [(chunk.source, chunk.text) for chunk in chunks] == [
        ("a.md", "Alpha text."),
        ("a.md", "Join us on Discord"),
        ("a.md", "for support."),
        ("c.md", "Gamma text."),
    ]


def test_chunk_documents_streams() -> None:
    def endless() -> Iterator[Document]:
        n = 0
        while True:
            yield Document(path=f"{n}.txt", title=str(n), text=f"Document number {n}.")
            n += 1

    stream = chunk_documents(endless(), 100)
    assert [next(stream).source for _ in range(3)] == ["0.txt", "1.txt", "2.txt"]


def test_plain_text_chunking_is_fast() -> None:
    text = _document(random.Random(4), paragraphs=4000)
    while len(text) < 4_000_000:
        text += "\n\n" + text
    started = time.process_time()  # CPU time: a busy test machine must not make this flaky
    chunks = split_text(text, 2000)
    elapsed = time.process_time() - started
    assert chunks
    megabytes_per_second = len(text) / 1e6 / elapsed
    assert megabytes_per_second >= 20, f"{megabytes_per_second:.1f} MB/s"


# ----------------------------------------------------------------------------- real corpus


def test_verus_corpus_chunks_respect_size() -> None:
    if not CORPUS.is_dir():
        pytest.skip(f"{CORPUS} not present")
    documents, skipped = read_documents(CORPUS)
    assert not skipped
    for size in (300, 2000):
        for doc in documents:
            _assert_chunk_properties(doc.text, split_text(doc.text, size), size)


def test_each_skipped_duplicate_is_reported() -> None:
    text = "A paragraph about VerusID that appears in two files. " * 3
    duplicates: list = []
    docs = [Document(path="a.md", title="a", text=text), Document(path="b.md", title="b", text=text)]
    chunks = list(chunk_documents(docs, 1000, on_duplicate=duplicates.append))
    assert [chunk.source for chunk in chunks] == ["a.md"]
    assert [chunk.source for chunk in duplicates] == ["b.md"]
