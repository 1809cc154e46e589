"""The majority vote of DOUBLE_CHECK_COUNTER checks: majorities, ties, early stop."""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections import defaultdict

import pytest

from control_flow_functions import run_pipeline
from generation_functions.config import config_from_dict
from tests.conftest import REPO
from tests.fake_llm_server import ANSWER_CHECK, QUESTION_CHECK, FakeLLMServer, fenced_blocks

_SCRIPT = re.compile(r"VOTES-([RI]+)")


class ScriptedVerdicts:
    """check_question answers follow a script written into the sentence itself:
    'VOTES-RIR ...' answers RELEVANT, IRRELEVANT, RELEVANT to successive calls."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = defaultdict(int)
        self.lock = threading.Lock()

    def __call__(self, request) -> str:
        question = fenced_blocks(request.user)[1]
        script = _SCRIPT.search(question).group(1)
        with self.lock:
            position = self.calls[script]
            self.calls[script] += 1
        verdict = "RELEVANT" if script[min(position, len(script) - 1)] == "R" else "IRRELEVANT"
        return f"Reasoning about the question.\n\n{verdict}"


def run_with_sentences(tmp_path, sentences, counter, **system):
    (tmp_path / "in").mkdir()
    text = "# Votes\n\n" + "\n\n".join(sentences) + "\n"
    (tmp_path / "in" / "votes.md").write_text(text, encoding="utf-8")
    server = FakeLLMServer(responders={QUESTION_CHECK: ScriptedVerdicts()})
    with server:
        config = config_from_dict(
            {
                "API": {"BASE_URL": server.base_url, "LOGICAL_MODEL": "s", "LARGE_LOGICAL_MODEL": "l"},
                "PATH": {"INPUT": "in", "OUTPUT": "out", "DEFAULT_PROMPTS": str(REPO / "prompts"), "PROMPTS": str(REPO / "prompts")},
                "SYSTEM": {"CHUNK_SIZE": 5000, "DOUBLE_CHECK_COUNTER": counter, "CONCURRENCY_LIMIT": 4, **system},
            },
            base_dir=tmp_path,
        )
        report = asyncio.run(run_pipeline(config))
    return server, report, tmp_path / "out"


def question_check_calls(server, script):
    return sum(1 for r in server.requests if r.step == QUESTION_CHECK and f"VOTES-{script}" in r.user)


def kept_questions(out):
    return [json.loads(line)["question"] for line in (out / "plain_qa_list.jsonl").read_text().splitlines()]


@pytest.mark.parametrize(
    "counter,script,kept,calls",
    [
        (3, "RR", True, 2),  # two agreeing votes decide: no third vote is asked
        (3, "II", False, 2),
        (3, "RIR", True, 3),  # split after two: the third decides
        (3, "RII", False, 3),
        (1, "R", True, 1),
        (1, "I", False, 1),
        (2, "RI", False, 2),  # a tie is tossed
        (4, "RRIR", True, 4),  # 3 needed of 4: 2-1 after three, the fourth decides
        (4, "RRII", False, 4),  # 2-2 tie
        (5, "RRR", True, 3),
    ],
)
def test_majority_decides_and_stops_early(tmp_path, counter, script, kept, calls):
    sentence = f"VOTES-{script} Verus identities can be revoked and recovered by their owners."
    server, report, out = run_with_sentences(tmp_path, [sentence], counter)
    assert question_check_calls(server, script) == calls
    assert any(f"VOTES-{script}" in q for q in kept_questions(out)) is kept
    stage = report["stages"]["question_check"]
    if kept:
        assert stage["kept"] == 1
    else:
        reason = "tie" if counter % 2 == 0 and script.count("R") == script.count("I") else "voted irrelevant"
        assert stage["tossed_reasons"] == {reason: 1}
        # a tossed pair never reaches the answer check
        assert not any(r.step == ANSWER_CHECK for r in server.requests)


def test_skip_question_check_asks_no_question_check(tmp_path):
    sentence = "VOTES-I Verus identities can be revoked and recovered by their owners."
    server = None
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.md").write_text(sentence + "\n", encoding="utf-8")
    with FakeLLMServer() as server:
        config = config_from_dict(
            {
                "API": {"BASE_URL": server.base_url, "LOGICAL_MODEL": "s", "LARGE_LOGICAL_MODEL": "l"},
                "PATH": {"INPUT": "in", "OUTPUT": "out", "DEFAULT_PROMPTS": str(REPO / "prompts"), "PROMPTS": str(REPO / "prompts")},
                "SKIP": {"QUESTION_CHECK": True},
            },
            base_dir=tmp_path,
        )
        asyncio.run(run_pipeline(config))
        assert server.count(QUESTION_CHECK) == 0
        assert server.count(ANSWER_CHECK) == 2
    assert len(kept_questions(tmp_path / "out")) == 1
