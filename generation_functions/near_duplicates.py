"""Question normalisation and near-duplicate search by word-set similarity.

Two questions count as the same when the Jaccard similarity of their
normalised word sets reaches a threshold. The indexes here find such pairs
(and questions contained in a longer text) without comparing every question
with every other, so deduplicating and holding out stay fast on large runs.
"""

from __future__ import annotations

import itertools
import math
import re
import unicodedata
import zlib
from collections import Counter, defaultdict
from typing import Any, Iterable, Optional

_NOT_WORD = re.compile(r"[^\w\s]+")
_SPACE = re.compile(r"\s+")


def normalise(text: str) -> str:
    """Lowercase, punctuation removed (apostrophes vanish, other marks become
    spaces), whitespace collapsed. Unicode is NFKC-folded first."""
    text = unicodedata.normalize("NFKC", text).lower().replace("'", "").replace("\u2019", "")
    text = _NOT_WORD.sub(" ", text).replace("_", " ")
    return _SPACE.sub(" ", text).strip()


def word_set(text: str) -> frozenset[str]:
    return frozenset(normalise(text).split())


def jaccard(a: frozenset, b: frozenset) -> float:
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


class NearDuplicateIndex:
    """Word-set similarity search without comparing everything with everything.

    Prefix filtering, in the form that asks for two shared words: the words of
    every set are put in one fixed global order (rarest first, by `frequencies`;
    a hash order among equals). If two sets share at least `a` words, then their
    first len - a + 2 words share at least two. For Jaccard similarity >= t a set
    of n words needs a >= ceil(t * n) shared words, so each set is filed under
    every pair of words from its first n - ceil(t * n) + 2 words, and a query
    only meets sets with which it has such a pair in common. Each candidate is
    then checked exactly, so the answer is the same as comparing with all.
    Rare-first ordering keeps the lists short; requiring a shared *pair* keeps
    common question words ("what", "verus") from making every question a
    candidate of every other. Sets of one word (and every set when t <= 0.5,
    where one shared word can be enough) are filed under single words instead.
    """

    def __init__(self, threshold: float, frequencies: Optional[Counter] = None):
        if not 0.0 < threshold <= 1.0:
            raise ValueError("threshold must be in (0, 1]")
        self.threshold = threshold
        self.frequencies = frequencies if frequencies is not None else Counter()
        self.sets: list[frozenset[str]] = []
        self.keys: list[Any] = []
        self._postings: dict[tuple[str, ...], list[int]] = defaultdict(list)
        self._empty: list[int] = []
        self._ranks: dict[str, tuple[int, int, str]] = {}
        self.candidates_checked = 0  # exact comparisons made, to show the index prunes

    def _rank(self, word: str) -> tuple[int, int, str]:
        rank = self._ranks.get(word)
        if rank is None:
            rank = self._ranks[word] = (self.frequencies.get(word, 0), zlib.crc32(word.encode("utf-8")), word)
        return rank

    def _signatures(self, words: frozenset[str]) -> Iterable[tuple[str, ...]]:
        size = len(words)
        need = math.ceil(self.threshold * size - 1e-9)  # shared words a match must have
        k = 2 if (self.threshold > 0.5 and size >= 2) else 1
        prefix = sorted(words, key=self._rank)[: size - need + k]
        return itertools.combinations(prefix, k)

    def add(self, words: frozenset[str], key: Any) -> None:
        slot = len(self.sets)
        self.sets.append(words)
        self.keys.append(key)
        if not words:
            self._empty.append(slot)
            return
        for signature in self._signatures(words):
            self._postings[signature].append(slot)

    def similar(self, words: frozenset[str]) -> list[Any]:
        """Keys of stored sets at least `threshold` alike `words`, in insertion order."""
        if not words:
            return [self.keys[slot] for slot in self._empty]
        size = len(words)
        low, high = self.threshold * size - 1e-9, size / self.threshold + 1e-9
        seen: set[int] = set()
        found: list[int] = []
        for signature in self._signatures(words):
            for slot in self._postings.get(signature, ()):
                if slot in seen:
                    continue
                seen.add(slot)
                self.candidates_checked += 1
                other = self.sets[slot]
                if low <= len(other) <= high and jaccard(words, other) >= self.threshold - 1e-9:
                    found.append(slot)
        return [self.keys[slot] for slot in sorted(found)]

    def first_similar(self, words: frozenset[str]) -> Any:
        matches = self.similar(words)
        return matches[0] if matches else None


class ContainmentIndex:
    """Finds stored questions whose words are (nearly) all inside a longer text.

    A stored set Q is a candidate for a text T when at least `threshold` of Q's
    words occur in T; then at least one of Q's first
    len(Q) - ceil(threshold * len(Q)) + 1 words (rarest first) is in T, so only
    those are indexed and a query looks up every word of T.
    """

    def __init__(self, threshold: float, frequencies: Counter):
        self.threshold = threshold
        self.frequencies = frequencies
        self.sets: list[frozenset[str]] = []
        self.keys: list[Any] = []
        self._postings: dict[str, list[int]] = defaultdict(list)

    def add(self, words: frozenset[str], key: Any) -> None:
        if not words:
            return
        slot = len(self.sets)
        self.sets.append(words)
        self.keys.append(key)
        ordered = sorted(words, key=lambda w: (self.frequencies.get(w, 0), zlib.crc32(w.encode("utf-8")), w))
        keep = len(words) - math.ceil(self.threshold * len(words) - 1e-9) + 1
        for word in ordered[:keep]:
            self._postings[word].append(slot)

    def candidates(self, words: frozenset[str]) -> list[Any]:
        seen: set[int] = set()
        found = []
        for word in words:
            for slot in self._postings.get(word, ()):
                if slot not in seen:
                    seen.add(slot)
                    stored = self.sets[slot]
                    if len(stored & words) >= self.threshold * len(stored) - 1e-9:
                        found.append(slot)
        return [self.keys[slot] for slot in sorted(found)]
