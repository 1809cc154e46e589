"""How text becomes index fields, and how a question becomes a query.

The index itself is SQLite FTS5 with its porter stemmer (retrieval/index.py);
this module decides what goes into it and what is asked of it:

- a chunk's *headings* (the markdown headings inside it) get their own field,
  because questions name the section that answers them far more often than
  its body words;
- a chunk's *trail* (the headings still in force where the chunk starts,
  from earlier chunks of its document) says what a mid-document chunk is about;
- a question keeps its content words, joined by OR (a question never uses
  every word of its answer), plus its adjacent word pairs as phrases, so
  "transaction fee" outranks a chunk that says "fee" and "transaction" apart.
"""

from __future__ import annotations

import re
from typing import Iterable

_WORD = re.compile(r"\w+")
# ATX headings: "# Title", "### **"startblock"**". Setext and bold-only lines
# are left to the body: in this corpus they are rarely section titles.
_HEADING = re.compile(r"^[ \t]{0,3}(#{1,6})[ \t]+(.+?)[ \t#]*$", re.MULTILINE)
_HEADING_MARKUP = re.compile(r"[*_`\"“”]+")
_PATH_SEPARATORS = re.compile(r"[\\/_.\-]+")

# Function words: they say nothing about what a question is about.
STOPWORDS = frozenset(
    """
    a about above after again against all also am an and any are as at be because been before being below between
    both but by can could did do does doing done down during each either else ever every few for from further had has
    have having he her here hers him his how however i if in into is it its itself just least less let like many may
    me might more most much must my neither no nor not now of off on once only or other others otherwise our ours out
    over own per rather same she should since so some such than that the their theirs them then there these they this
    those through thus to too under until up upon us very via was we were what whatever when where whether which while
    who whom whose why will with within without would yet you your yours
    """.split()
)
# Words that describe the question rather than its subject ("What is the purpose
# of X?"). Dropped from the query only; an answer may well use them.
QUESTION_WORDS = frozenset(
    """
    purpose benefit benefits significance role explain describe mean means meaning tell exactly specific
    specifically main key various different type types kind kinds way ways possible provided shown mentioned
    according context
    """.split()
)


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def headings(text: str) -> list[tuple[int, str]]:
    """The markdown headings inside a text, as (level, plain title)."""
    found = []
    for match in _HEADING.finditer(text):
        title = _HEADING_MARKUP.sub("", match.group(2)).strip()
        if title:
            found.append((len(match.group(1)), title))
    return found


def heading_trails(texts: Iterable[str]) -> list[str]:
    """For each chunk of one document, in order: the headings in force where it starts."""
    trails = []
    open_headings: list[tuple[int, str]] = []
    for text in texts:
        trails.append(" / ".join(title for _, title in open_headings))
        for level, title in headings(text):
            open_headings = [(lvl, t) for lvl, t in open_headings if lvl < level] + [(level, title)]
    return trails


def path_words(path: str) -> str:
    """"raw_text_input_docs/setup-vault.md" -> "raw text input docs setup vault md"."""
    return _PATH_SEPARATORS.sub(" ", path).strip()


def query_terms(question: str) -> list[str]:
    """The question's content words, once each, in order.

    Single letters stay: "z" (of "z-address") and "r" name things in Verus."""
    stop = STOPWORDS | QUESTION_WORDS
    return list(dict.fromkeys(word for word in words(question) if word not in stop))


def query_phrases(question: str) -> list[str]:
    """Adjacent pairs of non-function words, once each, e.g. "block time"."""
    tokens = words(question)
    pairs = (
        f"{first} {second}"
        for first, second in zip(tokens, tokens[1:])
        if first not in STOPWORDS and second not in STOPWORDS
    )
    return list(dict.fromkeys(pairs))


def fts_query(question: str) -> str:
    """An FTS5 MATCH expression: any term or phrase (OR). Empty when nothing is left to search for.

    Every term is quoted, so words such as AND, NOT or NEAR and characters such
    as '*' or ':' in a question are searched for, never read as query syntax.
    """
    parts = [f'"{term}"' for term in query_terms(question)] + [f'"{phrase}"' for phrase in query_phrases(question)]
    return " OR ".join(parts)
