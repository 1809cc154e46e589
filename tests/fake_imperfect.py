"""Answers of the fake model server that go wrong the way a real model's do.

A real 70B model (../shared/real_generations) rambles through long headed
reasoning before its verdict, and now and then: stops reasoning without ever
writing the verdict, writes the wrong verdict, judges REWORD and forgets the
rewording, leaves the QUESTION/ANSWER markers out, pads its questions with a
preface and an empty "None" pair, and writes a conversation that skips a
question or answers in its own words. Imperfection gives a seeded share of
answers one of those flaws.

Which answers go wrong, and how, is a function of the seed and of the request
alone (its step and its prompt), never of the order requests arrive in: a run,
its rerun and a killed-and-resumed run see the same answers, and a test can
predict every outcome from what the server recorded. The price is that an
identical request (a retry, another vote on the same pair) gets the identical
answer, as from a model sampled at temperature 0.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Callable, Optional

from generation_functions.steps import (
    ANSWER_CHECK,
    CHUNK_FILTER,
    CONTEXT_REPAIR,
    CONVERSATION,
    QUESTION_CHECK,
    QUESTION_GENERATION,
)

# A flaw: (name, how it rewrites the good answer given the request's final input).
Flaw = tuple[str, Callable[[str, str], str]]

_CHECK_REASONING = (
    "## Reasoning and thought process:\n\n"
    "### Text Analysis:\n"
    "#### Identify Key Information: The text describes part of how Verus works.\n"
    "#### Categorize Information Type: This is educational/informative content.\n\n"
    "### {what} Breakdown:\n"
    "**Dissect the {what}'s Assertions:**\n"
    "  * That the {what_lower} follows from what the text says about Verus.\n\n"
    "### Accuracy Check:\n"
    "**Direct Comparison for Factual Accuracy and Common Knowledge Check:**\n\n"
    "  * The text and the {what_lower} are compared claim by claim here.\n\n"
)


def _reasoning(what: str) -> str:
    return _CHECK_REASONING.format(what=what, what_lower=what.lower())


def _check_without_verdict(what: str) -> Callable[[str, str], str]:
    def flaw(good: str, user: str) -> str:
        return _reasoning(what) + (
            "### Final Judgment:\n#### Comprehensive Assessment: Most of the claims line up with the text, "
            "though one of them reaches a little further than the text itself goes, so it is a close call."
        )

    return flaw


def _check_with_wrong_verdict(verdict: str, what: str) -> Callable[[str, str], str]:
    def flaw(good: str, user: str) -> str:
        return _reasoning(what) + (
            "### Final Judgment:\n#### Comprehensive Assessment: The claims do not line up with the text "
            f"closely enough. The {what.lower()} is: {verdict}."
        )

    return flaw


def _filter_rambles(good: str, user: str) -> str:
    return (
        "The chunk is part of a longer document about Verus. It has a few sentences, some of them about "
        "identities and some about the network, and it would take more context to say how much a reader "
        "could learn from it on its own."
    )


def _filter_wrongly_refuses(good: str, user: str) -> str:
    return "The chunk is short and reads like part of a list.\n\nUNSUITABLE: too little content"


def _questions_without_markers(good: str, user: str) -> str:
    pairs = re.findall(r"\*\*QUESTION:\*\*\s*(.*?)\s*\*\*ANSWER:\*\*\s*(.*?)(?=\n\s*\*\*QUESTION:\*\*|\Z)", good, re.DOTALL)
    if not pairs:
        return "Here are some questions about the text:\n\n1. What is this text about?\nIt is about Verus."
    lines = ["Here are some questions based on the text:", ""]
    for number, (question, answer) in enumerate(pairs, start=1):
        lines += [f"{number}. {question.strip()}", f"   Answer: {answer.strip()}", ""]
    return "\n".join(lines).rstrip()


def _questions_with_preface_and_none(good: str, user: str) -> str:
    return (
        "Sure! Here are some questions and answers based on the provided text:\n\n"
        f"{good}\n\n**QUESTION:**\n\nNone\n\n**ANSWER:**\n\nNone"
    )


def _repair_reword_without_rewording(good: str, user: str) -> str:
    return (
        "## Reasoning and thought process:\n### Question Context Validation\n"
        "#### Special Term Context Check: The question could say more plainly which part of Verus it means.\n\n"
        "### Critical Evaluation and Final Judgment:\n"
        "#### Evaluation: The question should name the feature it asks about.\n"
        "#### Final judgment: REWORD."
    )


def _repair_fails_a_good_pair(good: str, user: str) -> str:
    return (
        "## Reasoning and thought process:\n### Question Context Validation\n"
        "#### Scope and Precision: The question is too broad to answer on its own.\n\n"
        "### Critical Evaluation and Final Judgment:\n"
        "#### Evaluation: The question does not stand on its own.\n#### Final judgment: FAIL."
    )


_TURN = re.compile(r"^\*\*(User|AI Assistant):\*\*\n", re.MULTILINE)
_FILLER = "Great question! It really depends on how you set things up, so feel free to ask me more about it."


def _turns(conversation: str) -> tuple[str, list[tuple[str, str]]]:
    """The text before the first turn, and the (speaker, body) turns."""
    matches = list(_TURN.finditer(conversation))
    if not matches:
        return conversation, []
    turns = []
    for match, following in zip(matches, matches[1:] + [None]):
        end = following.start() if following else len(conversation)
        turns.append((match.group(1), conversation[match.end():end].strip()))
    return conversation[: matches[0].start()], turns


def _joined(preamble: str, turns: list[tuple[str, str]]) -> str:
    return preamble + "\n\n".join(f"**{speaker}:**\n{body}" for speaker, body in turns)


def _conversation_skips_a_question(good: str, user: str) -> str:
    """The last exchange left out: one checked pair is missing from the conversation."""
    preamble, turns = _turns(good)
    asked = [number for number, (speaker, _) in enumerate(turns) if speaker == "User"]
    if len(asked) < 2:
        return _conversation_in_own_words(good, user)
    return _joined(preamble, turns[: asked[-1]])


def _conversation_in_own_words(good: str, user: str) -> str:
    """Every answer replaced by chatty filler that holds none of the checked facts."""
    preamble, turns = _turns(good)
    rewritten = [
        (speaker, _FILLER if speaker == "AI Assistant" and number and turns[number - 1][0] == "User" else body)
        for number, (speaker, body) in enumerate(turns)
    ]
    return _joined(preamble, rewritten)


def _conversation_without_markers(good: str, user: str) -> str:
    return good.replace("**User:**", "User:").replace("**AI Assistant:**", "Assistant:")


FLAWS: dict[str, tuple[Flaw, ...]] = {
    CHUNK_FILTER: (("no verdict", _filter_rambles), ("wrong verdict", _filter_wrongly_refuses)),
    QUESTION_GENERATION: (
        ("no markers", _questions_without_markers),
        ("preface and an empty pair", _questions_with_preface_and_none),
    ),
    QUESTION_CHECK: (
        ("no verdict", _check_without_verdict("Question")),
        ("wrong verdict", _check_with_wrong_verdict("IRRELEVANT", "Question")),
    ),
    ANSWER_CHECK: (
        ("no verdict", _check_without_verdict("Answer")),
        ("wrong verdict", _check_with_wrong_verdict("INACCURATE", "Answer")),
    ),
    CONTEXT_REPAIR: (
        ("reword without a rewording", _repair_reword_without_rewording),
        ("wrong verdict", _repair_fails_a_good_pair),
    ),
    CONVERSATION: (
        ("skips a question", _conversation_skips_a_question),
        ("answers in its own words", _conversation_in_own_words),
        ("no speaker markers", _conversation_without_markers),
    ),
}


@dataclass(frozen=True)
class Imperfection:
    """A share `rate` (0 to 1) of pipeline answers gets one of its step's flaws, chosen by `seed`."""

    rate: float = 0.0
    seed: int = 0

    def flaw_for(self, step: str, prompt: str) -> Optional[Flaw]:
        """The flaw this request's answer gets, or None for a good answer."""
        flaws = FLAWS.get(step)
        if not flaws or self.rate <= 0:
            return None
        digest = hashlib.sha256(f"{self.seed}\x00{step}\x00{prompt}".encode("utf-8", "replace")).digest()
        share = int.from_bytes(digest[:8], "big") / 2**64
        if share >= self.rate:
            return None
        return flaws[int.from_bytes(digest[8:12], "big") % len(flaws)]
