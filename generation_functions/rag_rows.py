"""RAG training rows that look like real retrieval: the source chunk among retrieved neighbours,
in varied order, and a share of rows whose context does not hold the answer.

A model trained only on rows whose context is exactly the right chunk learns to trust whatever
it is given. Real retrieval returns a few chunks, the right one somewhere among them, and
sometimes misses it altogether. So each RAG row gets the chunk plus SYSTEM.RAG_NEIGHBOURS chunks
that a search for the conversation's first question returns, the chunk at a position chosen by
the conversation's content; and a share (SYSTEM.RAG_DISTRACTOR_SHARE) of rows get the neighbours
alone. In those, the assistant says the information does not cover the question
(RAG_DISTRACTOR_ANSWER: decline) or answers as in the no-RAG data (knowledge). Every choice is a
function of the content, so a rerun writes the same rows.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Callable, Optional, Sequence

# (question, k, chunk keys to leave out) -> chunk texts, best first.
Search = Callable[[str, int, Sequence[str]], list[str]]


@dataclass(frozen=True)
class RagRowSettings:
    neighbours: int = 2
    distractor_share: float = 0.1
    distractor_answer: str = "decline"  # or "knowledge"
    decline_text: str = ""

    @classmethod
    def from_config(cls, system) -> "RagRowSettings":
        return cls(system.RAG_NEIGHBOURS, system.RAG_DISTRACTOR_SHARE, system.RAG_DISTRACTOR_ANSWER, system.RAG_DECLINE_ANSWER)

    @property
    def searches(self) -> bool:
        return self.neighbours > 0 or self.distractor_share > 0


@dataclass(frozen=True)
class RagRow:
    context: list[str]  # the chunks of {data}, in order
    turns: list[dict[str, str]]
    holds_answer: bool


def _fraction(*parts: str) -> float:
    """A number in [0, 1) fixed by the content: the same conversation always draws the same."""
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


class RagRows:
    def __init__(self, settings: RagRowSettings, search: Optional[Search]):
        self.settings = settings
        self.search = search if settings.searches else None

    def build(self, chunk_key: str, chunk: str, turns: list[dict[str, str]]) -> RagRow:
        if self.search is None:
            return RagRow([chunk], turns, True)
        question = turns[0]["value"]
        wanted = self.settings.neighbours + 1
        neighbours = [text for text in self.search(question, wanted, [chunk_key]) if text.strip() != chunk.strip()]
        if neighbours and _fraction("distractor", chunk_key, question) < self.settings.distractor_share:
            return RagRow(neighbours[:wanted], self._without_answer(turns), False)
        neighbours = neighbours[: self.settings.neighbours]
        position = int(_fraction("position", chunk_key, question) * (len(neighbours) + 1))
        return RagRow([*neighbours[:position], chunk, *neighbours[position:]], turns, True)

    def _without_answer(self, turns: list[dict[str, str]]) -> list[dict[str, str]]:
        if self.settings.distractor_answer == "knowledge":
            return turns
        return [turn if turn["from"] == "human" else {"from": "gpt", "value": self.settings.decline_text} for turn in turns]
