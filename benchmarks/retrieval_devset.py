"""The retrieval development set: real questions, and the index chunk each was written from.

../shared/real_generations holds real model calls of three steps that show a chunk
and a question about it:
- question_generation: the chunk (first fenced block) and the pairs the model wrote;
- check_question: the chunk and one question (second block);
- check_answer: the chunk, one question and its answer (second and third blocks).

Those chunks were cut by an older chunker, so they do not line up with the index's
chunks. The gold chunk of a question is found by word overlap:
1. candidates: index chunks that lie mostly inside the source text (>= 60 % of the
   chunk's words are in it) and cover a fair part of it (>= 20 %), or else the one
   chunk that covers the most of it, if that is at least half;
2. of those, the one sharing the most content words with the answer (the question,
   when there is no answer): the part of the source the question is about;
3. copies of that chunk elsewhere (>= 90 % of words shared both ways) count too.

Questions whose source maps to no chunk (a heading alone, say) are left out and counted.
The split into tuning and held-out questions is by source text, so two questions
about one chunk never sit on both sides.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional, Sequence

from generation_functions.errors import ParseError
from generation_functions.output_processors import parse_question_generation

_FENCE = re.compile(r'"""\n?(.*?)\n?"""', re.DOTALL)
_WORD = re.compile(r"\w+")
_FUNCTION_WORDS = frozenset(
    "the a an of to and or is are was were in on for with by from that this it as be can will not what how why which "
    "who when where does do i my you your if at into its their there these those".split()
)
MIN_SOURCE_WORDS = 20
HELD_OUT_SHARE = 2  # of 5 source buckets


@dataclass(frozen=True)
class DevQuestion:
    question: str
    answer: str  # "" when the step shows none
    source_text: str
    step: str

    @property
    def split(self) -> str:
        """"tune" or "held-out", decided by the source text's hash (stable across runs)."""
        bucket = int(hashlib.sha256(self.source_text.encode("utf-8")).hexdigest(), 16) % 5
        return "held-out" if bucket < HELD_OUT_SHARE else "tune"


def questions_from_row(row: dict) -> list[DevQuestion]:
    """The questions one recorded call shows, with the chunk it showed them with."""
    step = row.get("step", "")
    blocks = [block.strip() for block in _FENCE.findall(row.get("last_user_message", ""))]
    if not blocks:
        return []
    source = blocks[0]
    if step == "question_generation":
        try:
            pairs = parse_question_generation(row.get("response", ""))
        except ParseError:
            return []
        return [DevQuestion(question, answer, source, step) for question, answer in pairs]
    if step in ("check_question", "check_answer") and len(blocks) > 1:
        answer = blocks[2] if step == "check_answer" and len(blocks) > 2 else ""
        return [DevQuestion(blocks[1], answer, source, step)]
    return []


def load_questions(folder: Path) -> list[DevQuestion]:
    """Every distinct question of the three steps' files, first occurrence kept."""
    questions: list[DevQuestion] = []
    seen: set[str] = set()
    for step in ("question_generation", "check_question", "check_answer"):
        path = Path(folder) / f"{step}.jsonl"
        if not path.exists():
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            for item in questions_from_row(json.loads(line)):
                if item.question not in seen:
                    seen.add(item.question)
                    questions.append(item)
    return questions


def _bag(text: str) -> Counter:
    return Counter(_WORD.findall(text.lower()))


def _content(text: str) -> Counter:
    return Counter(word for word in _WORD.findall(text.lower()) if word not in _FUNCTION_WORDS)


def _shared(a: Counter, b: Counter) -> int:
    return sum((a & b).values())


class GoldFinder:
    """Maps a question's source text to the index chunk(s) it was written from."""

    def __init__(self, chunk_texts: Sequence[str]):
        self.bags = [_bag(text) for text in chunk_texts]
        self.sizes = [sum(bag.values()) for bag in self.bags]
        self.contents = [_content(text) for text in chunk_texts]
        self._candidates: dict[str, list[int]] = {}
        self._copies: dict[int, list[int]] = {}

    def gold(self, item: DevQuestion) -> Optional[frozenset[int]]:
        candidates = self.candidates(item.source_text)
        if not candidates:
            return None
        target = _content(item.answer or item.question)
        source = _bag(item.source_text)
        primary = max(candidates, key=lambda i: (_shared(target, self.contents[i]), _shared(source, self.bags[i]), -i))
        return frozenset([primary, *self.copies(primary)])

    def candidates(self, source_text: str) -> list[int]:
        if source_text not in self._candidates:
            self._candidates[source_text] = self._find_candidates(_bag(source_text))
        return self._candidates[source_text]

    def _find_candidates(self, source: Counter) -> list[int]:
        total = sum(source.values())
        if total < MIN_SOURCE_WORDS:
            return []
        inside, best, best_cover = [], None, 0.0
        for i, bag in enumerate(self.bags):
            shared = _shared(source, bag)
            cover = shared / total
            if cover > best_cover:
                best, best_cover = i, cover
            if cover >= 0.2 and shared / max(1, self.sizes[i]) >= 0.6:
                inside.append(i)
        if inside:
            return inside
        return [best] if best is not None and best_cover >= 0.5 else []

    def copies(self, index: int) -> list[int]:
        if index not in self._copies:
            self._copies[index] = self._find_copies(index)
        return self._copies[index]

    def _find_copies(self, index: int) -> list[int]:
        bag, size = self.bags[index], self.sizes[index]
        return [
            other
            for other, other_bag in enumerate(self.bags)
            if other != index and _shared(bag, other_bag) >= 0.9 * max(size, self.sizes[other])
        ]


def labelled(questions: Iterable[DevQuestion], chunk_texts: Sequence[str]) -> tuple[list[tuple[DevQuestion, frozenset[int]]], int]:
    """(question, gold chunk positions) for every question that maps; and how many did not."""
    finder = GoldFinder(chunk_texts)
    mapped, unmapped = [], 0
    for item in questions:
        gold = finder.gold(item)
        if gold is None:
            unmapped += 1
        else:
            mapped.append((item, gold))
    return mapped, unmapped
