"""The parsers and the conversation check against real model outputs.

../shared/real_generations holds outputs recorded from a Llama-3-70B run of the
seed pipeline. They are not ours to commit, so this test reads them where they
are and is skipped where they are absent; the table tests in
test_output_processors.py carry our own fixtures.
"""

from __future__ import annotations

import json

import pytest

from generation_functions.conversation_check import check_conversation
from generation_functions.errors import ParseError
from generation_functions.output_processors import (
    parse_answer_check,
    parse_context_repair,
    parse_conversation,
    parse_question_check,
    parse_question_generation,
    whole_pairs_of_cut_output,
)
from tests.conftest import SHARED

FOLDER = SHARED / "real_generations"

pytestmark = pytest.mark.skipif(not FOLDER.is_dir(), reason="../shared/real_generations is not here")


def rows(step: str) -> list[dict]:
    return [json.loads(line) for line in (FOLDER / f"{step}.jsonl").read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize(
    "step,parser",
    [
        ("question_generation", parse_question_generation),
        ("check_question", parse_question_check),
        ("check_answer", parse_answer_check),
        ("context_repair", parse_context_repair),
        ("conversation", parse_conversation),
    ],
)
def test_every_real_output_parses(step, parser):
    for row in rows(step):
        parser(row["response"])


def test_real_verdicts_are_read_as_the_model_meant_them():
    for step, parser, negative in (
        ("check_question", parse_question_check, "IRRELEVANT"),
        ("check_answer", parse_answer_check, "INACCURATE"),
    ):
        for row in rows(step):
            last_word = row["response"].rstrip(". \n").split()[-1].strip("*:.")
            assert parser(row["response"]) is (last_word != negative), row["response"][-200:]


def test_real_context_repairs_of_empty_pairs_fail():
    for row in rows("context_repair"):
        verdict, _ = parse_context_repair(row["response"])
        if "\nNone\n" in row["last_user_message"]:
            assert verdict == "fail"


def test_real_conversations_mostly_pass_the_check():
    results = []
    for row in rows("conversation"):
        pairs = parse_question_generation(row["last_user_message"])
        results.append(check_conversation(parse_conversation(row["response"]), pairs) == "")
    assert sum(results) >= 0.9 * len(results)


def test_real_question_generations_cut_anywhere_keep_only_pairs_the_whole_output_has():
    """A real output cut at max_tokens, at any point: the pairs kept are the whole output's first ones,
    never the one being written when it was cut."""
    for row in rows("question_generation"):
        text = row["response"]
        full = parse_question_generation(text)
        for cut_at in range(0, len(text), 37):
            try:
                kept = parse_question_generation(whole_pairs_of_cut_output(text[:cut_at]))
            except ParseError:
                continue
            assert kept == full[: len(kept)] and len(kept) < len(full), (cut_at, kept[-1:])
