"""Programmatic checks of a generated conversation against the pairs it was built from.

The model is asked to turn vetted pairs into a natural exchange. It may rephrase
a question and wrap an answer in a friendly sentence, but it must not drop a
pair, invent new exchanges with unvetted content, or paste one pair's answer
into another pair's turn.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from generation_functions.output_processors import preview

_WORD = re.compile(r"\w+", re.UNICODE)
_STOPWORDS = frozenset(
    """a an the and or but if then of to in on at by for with from as is are was were be been being it its this that
    these those i you he she we they me my your our their what which who whom how why when where do does did can could
    should would will shall may might must have has had not no so than too very just about into over also there here
    any some such""".split()
)

QUESTION_RECALL = 0.3  # share of the question's content words the user turn must carry (users rephrase)
ANSWER_RECALL = 0.7  # share of the answer's content words its assistant turn must carry
QUOTE_WORDS = 12  # this many consecutive words of another pair's answer count as quoting it
SMALL_TALK_NEW_WORDS = 10  # an unmatched reply with at most this many new content words is small talk


@dataclass(frozen=True)
class Exchange:
    user: str
    assistant: str


def words(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def content_words(text: str) -> set[str]:
    return {w for w in words(text) if w not in _STOPWORDS}


def recall(reference: str, candidate: str) -> float:
    """Share of reference's content words found in candidate."""
    wanted = content_words(reference)
    if not wanted:
        return 1.0
    return len(wanted & content_words(candidate)) / len(wanted)


def shingles(text: str, size: int = QUOTE_WORDS) -> set[tuple[str, ...]]:
    tokens = words(text)
    return {tuple(tokens[i : i + size]) for i in range(len(tokens) - size + 1)}


def merge_turns(turns: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Turns as a reader (and a chat template) takes them: what the assistant says before
    the first user turn (a greeting) is dropped, and runs of one speaker are merged."""
    merged: list[tuple[str, str]] = []
    for speaker, message in turns:
        if not merged and speaker != "User":
            continue
        if merged and merged[-1][0] == speaker:
            merged[-1] = (speaker, merged[-1][1] + "\n\n" + message)
        else:
            merged.append((speaker, message))
    return merged


def exchanges_of(turns: list[tuple[str, str]]) -> list[Exchange]:
    """User turns paired with the assistant reply after them (merge_turns first)."""
    merged = merge_turns(turns)
    result = []
    for index in range(0, len(merged) - 1, 2):
        result.append(Exchange(user=merged[index][1], assistant=merged[index + 1][1]))
    return result


def check_conversation(turns: list[tuple[str, str]], pairs: list[tuple[str, str]]) -> str:
    """Empty string when the conversation is faithful to the pairs, else the reason."""
    exchanges = exchanges_of(turns)
    known = set().union(*(content_words(q) | content_words(a) for q, a in pairs)) if pairs else set()
    position = 0
    for number, (question, answer) in enumerate(pairs, start=1):
        match = _find_pair(exchanges, position, question, answer)
        if match is None:
            return f"pair {number} ({preview(question)}) is not carried by a user turn and the reply after it"
        for skipped in exchanges[position:match]:
            if not _is_small_talk(skipped.assistant, known):
                return f"an exchange that belongs to no pair adds unvetted content ({preview(skipped.user)})"
        quoted = _quotes_other_answer(exchanges[match].assistant, pairs, number - 1)
        if quoted:
            return f"the reply to pair {number} quotes the answer of pair {quoted} at length"
        position = match + 1
    for extra in exchanges[position:]:
        if not _is_small_talk(extra.assistant, known):
            return f"an exchange after the last pair adds unvetted content ({preview(extra.user)})"
    return ""


def _is_small_talk(reply: str, known: set[str]) -> bool:
    """Pleasantries are fine; a reply that brings its own facts is not."""
    return len(content_words(reply) - known) <= SMALL_TALK_NEW_WORDS


def _find_pair(exchanges: list[Exchange], start: int, question: str, answer: str) -> int | None:
    for index in range(start, len(exchanges)):
        exchange = exchanges[index]
        if recall(question, exchange.user) >= QUESTION_RECALL and recall(answer, exchange.assistant) >= ANSWER_RECALL:
            return index
    return None


def _quotes_other_answer(reply: str, pairs: list[tuple[str, str]], own: int) -> int:
    own_shingles = shingles(pairs[own][1])
    reply_shingles = shingles(reply)
    for index, (_, other_answer) in enumerate(pairs):
        if index != own and (shingles(other_answer) - own_shingles) & reply_shingles:
            return index + 1
    return 0
