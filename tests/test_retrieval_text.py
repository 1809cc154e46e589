"""How questions become FTS5 queries, and chunks become fields: pure functions, tables of cases."""

from __future__ import annotations

import sqlite3

import pytest

from retrieval.text import fts_query, heading_trails, headings, path_words, query_phrases, query_terms


@pytest.mark.parametrize(
    "question, terms",
    [
        ("What is the purpose of the 'currencies' parameter?", ["currencies", "parameter"]),
        ("How do I stake VRSC?", ["stake", "vrsc"]),
        # Single letters name things in Verus; "i" is the pronoun far more often.
        ("Can a z-address hold tokens, and can i send from an R-address?", ["z", "address", "hold", "tokens", "send", "r"]),
        ("What are the key features of VerusID, and its main benefits?", ["features", "verusid"]),
        ("the and of", []),
        ("", []),
    ],
)
def test_query_terms_keep_the_subject_words(question, terms):
    assert query_terms(question) == terms


@pytest.mark.parametrize(
    "question, phrases",
    [
        ("What is the average block time?", ["average block", "block time"]),
        ("What is the transaction fee for sending VRSC?", ["transaction fee", "sending vrsc"]),
        ("How does it work?", []),
        ("block time and block time", ["block time"]),
    ],
)
def test_query_phrases_are_adjacent_content_words(question, phrases):
    assert query_phrases(question) == phrases


@pytest.mark.parametrize(
    "question",
    [
        'What does "definecurrency" do?',
        "What do AND, OR, NOT and NEAR mean in a query?",
        "Is * a wildcard: {col} ^start (group) - minus + plus?",
        "Quote ' and backslash \\ and émigré naïve façade 中文",
        "verus_getbalance z_sendmany",
    ],
)
def test_any_question_becomes_a_valid_fts5_query(question):
    database = sqlite3.connect(":memory:")
    database.execute("CREATE VIRTUAL TABLE t USING fts5(body, tokenize='porter unicode61')")
    database.execute("INSERT INTO t(body) VALUES ('definecurrency and wildcard group minus plus naïve z_sendmany query')")
    rows = database.execute("SELECT rowid FROM t WHERE t MATCH ?", (fts_query(question),)).fetchall()
    assert rows == [(1,)]


def test_a_question_of_function_words_gives_no_query():
    assert fts_query("What is it and how does it do that?") == ""


@pytest.mark.parametrize(
    "text, found",
    [
        ("# Coin Overview\n\ntext", [(1, "Coin Overview")]),
        ('### **"startblock"**\nUse this parameter', [(3, "startblock")]),
        ("## Solo Mining ##\n", [(2, "Solo Mining")]),
        ("#hashtag is not a heading\n    # indented code is not either", []),
        ("text\n## First\nmore\n#### Deep `code`\n", [(2, "First"), (4, "Deep code")]),
    ],
)
def test_headings_are_markdown_headings_without_markup(text, found):
    assert headings(text) == found


def test_heading_trails_follow_the_open_sections():
    chunks = [
        "# Launch\nintro",
        "## Options\nfirst part",
        "second part",
        "### Weights\nx\n## Fees\ny",
        "z",
        "# Other\n",
    ]
    assert heading_trails(chunks) == [
        "",
        "Launch",
        "Launch / Options",
        "Launch / Options",
        "Launch / Fees",
        "Launch / Fees",
    ]


@pytest.mark.parametrize(
    "path, expected",
    [
        ("raw_text_input_docs/setup-vault.md", "raw text input docs setup vault md"),
        ("wiki/faq-lin09_libgomp.so.1.md", "wiki faq lin09 libgomp so 1 md"),
    ],
)
def test_path_words(path, expected):
    assert path_words(path) == expected
