"""Which pairs and conversations go to the evaluation split.

A pair and every conversation that asks its question (or a near-duplicate of
it) are linked; linked pairs and conversations form a group, and whole groups
are drawn at random until about the wanted share of pairs is held out, so no
held-out question stays behind in training through a conversation. A last
guard then catches training conversations that ask a held-out question in a
way the links missed (inside a longer human turn, for one).
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from typing import Callable, Sequence

from dataset_assembly.output_folders import Conversation
from generation_functions.near_duplicates import ContainmentIndex, NearDuplicateIndex, normalise, word_set


def _union_find(size: int) -> tuple[Callable[[int], int], Callable[[int, int], None]]:
    parent = list(range(size))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(a: int, b: int) -> None:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)

    return find, union


def linked_groups(n_pairs: int, conversation_words: Sequence[Sequence[frozenset[str]]],
                  question_index: NearDuplicateIndex) -> list[list[int]]:
    """Groups of nodes (pair i is node i, conversation j is node n_pairs + j)
    linked by a shared question; only groups that hold at least one pair, in
    the order of their smallest node."""
    find, union = _union_find(n_pairs + len(conversation_words))
    for c_index, sets in enumerate(conversation_words):
        for words in sets:
            for p_index in question_index.similar(words):
                union(n_pairs + c_index, p_index)
    groups: dict[int, list[int]] = defaultdict(list)
    for node in range(n_pairs + len(conversation_words)):
        groups[find(node)].append(node)
    return [nodes for _, nodes in sorted(groups.items()) if any(n < n_pairs for n in nodes)]


def eval_target(eval_fraction: float, n_pairs: int) -> int:
    """How many pairs to hold out: the share, at least one when asked for any,
    and never every pair (training keeps at least one)."""
    target = round(eval_fraction * n_pairs)
    if eval_fraction > 0 and n_pairs >= 2:
        target = max(target, 1)
    return min(target, max(n_pairs - 1, 0))


def draw_held_out(groups: list[list[int]], n_pairs: int, target: int, rng: random.Random) -> set[int]:
    """The nodes of the groups drawn for evaluation, about `target` pairs in all."""
    order = list(range(len(groups)))
    rng.shuffle(order)
    held_nodes: set[int] = set()
    held_pair_count = 0
    sizes = [sum(1 for n in nodes if n < n_pairs) for nodes in groups]
    skipped: list[int] = []
    for g in order:
        if held_pair_count >= target:
            break
        # A group much larger than what is still missing would overshoot: later.
        if held_pair_count + sizes[g] > max(target * 1.5, target + 1) and sizes[g] > 1:
            skipped.append(g)
            continue
        held_nodes.update(groups[g])
        held_pair_count += sizes[g]
    for g in sorted(skipped, key=lambda g: sizes[g]):  # still short: smallest groups first
        if held_pair_count >= target or held_pair_count + sizes[g] > n_pairs - 1:
            break
        held_nodes.update(groups[g])
        held_pair_count += sizes[g]
    return held_nodes


class HeldOutGuard:
    """Answers "does this conversation ask a held-out question?": a source
    question or human turn that is a near-duplicate of one, or a human turn that
    literally contains one (after normalisation)."""

    def __init__(self, held_out: Sequence[tuple[frozenset[str], str]], similarity: float, frequencies: Counter):
        self._any = bool(held_out)
        self._similar = NearDuplicateIndex(similarity, frequencies)
        self._contained = ContainmentIndex(similarity, frequencies)
        self._normalised: list[str] = []
        for index, (words, question) in enumerate(held_out):
            self._similar.add(words, index)
            self._contained.add(words, index)
            self._normalised.append(" " + normalise(question) + " ")

    def asks_held_out(self, conversation: Conversation, question_words: Sequence[frozenset[str]]) -> bool:
        if not self._any:
            return False
        if any(self._similar.first_similar(words) is not None for words in question_words):
            return True
        return any(self._turn_asks_held_out(turn) for turn in conversation.human_turns())

    def _turn_asks_held_out(self, turn: str) -> bool:
        words = word_set(turn)
        if self._similar.first_similar(words) is not None:
            return True
        text = " " + normalise(turn) + " "
        return any(self._normalised[index] in text for index in self._contained.candidates(words))
