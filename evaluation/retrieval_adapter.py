"""The rag condition's retriever: the search index chat.py uses (retrieval/), built or updated here.

evaluation/asking.py asks it synchronously, `retrieve(question, k) -> [(source label, chunk text)]`,
so this is the lexical search alone (RETRIEVAL.EMBEDDING_* apply to chat.py, whose search is async).
"""

from __future__ import annotations

from typing import Callable

from generation_functions.config import Config
from generation_functions.errors import InputError
from retrieval.search import update_index


def make_retriever(config: Config) -> Callable[[str, int], list[tuple[str, str]]]:
    """Open (building or updating) the index of RETRIEVAL.SOURCE; InputError when it holds nothing."""
    index, stats = update_index(config)
    if stats.chunks == 0:
        index.close()
        raise InputError(
            "the rag condition needs documents to search, but the search index is empty: "
            "check PATH.INPUT (or RETRIEVAL.SOURCE), or leave rag out of --conditions"
        )

    def retrieve(question: str, k: int) -> list[tuple[str, str]]:
        return [(hit.label, hit.text) for hit in index.search(question, k)]

    return retrieve
