"""SKIP.ANSWER_CHECK and SKIP.CONTEXT_REPAIR: the step is never asked, and every pair goes on.

A model too small to judge (SmolLM2-135M tosses nearly every pair at the checks) or a
budget too small for the votes still needs the later steps; with these keys they are
reached, and the report says which stages passed pairs on unchecked.
"""

from __future__ import annotations

import asyncio
import json

import pytest

from control_flow_functions import run_pipeline
from generation_functions.config import load_config
from generation_functions.datasets import MASTER_LIST
from generation_functions.report import SKIPPED, pair_funnel, summary_text
from generation_functions.steps import active_steps
from tests.conftest import write_config
from tests.fake_llm_server import ANSWER_CHECK, CONTEXT_REPAIR, CONVERSATION, QUESTION_CHECK, QUESTION_GENERATION, FakeLLMServer


def inaccurate_every_time(request) -> str:
    return "The answer does not match the text.\nOverall, the answer is: INACCURATE"


def failing_every_time(request) -> str:
    return "The question cannot stand alone.\nFinal judgment: FAIL"


def run(tmp_path, skip: dict, responders: dict | None = None):
    with FakeLLMServer(responders=responders) as server:
        config = load_config(write_config(tmp_path / "config.yaml", server.base_url, SKIP=skip))
        report = asyncio.run(run_pipeline(config))
        return config, report, server.steps_seen()


@pytest.mark.parametrize(
    "skip, unasked",
    [
        ({"ANSWER_CHECK": True}, {ANSWER_CHECK}),
        ({"CONTEXT_REPAIR": True}, {CONTEXT_REPAIR}),
        ({"QUESTION_CHECK": True, "ANSWER_CHECK": True, "CONTEXT_REPAIR": True}, {QUESTION_CHECK, ANSWER_CHECK, CONTEXT_REPAIR}),
    ],
    ids=["answer-check", "context-repair", "all-checks"],
)
def test_a_skipped_step_is_never_asked_and_its_pairs_go_on(tmp_path, skip, unasked):
    # Were they asked, these steps would toss every pair: a kept pair proves they were not.
    responders = {ANSWER_CHECK: inaccurate_every_time, CONTEXT_REPAIR: failing_every_time}
    config, report, seen = run(tmp_path, skip, {step: responders[step] for step in unasked if step in responders})
    assert not unasked & set(seen), seen
    assert seen[QUESTION_GENERATION] and seen[CONVERSATION]
    assert {step.prompt_name for step in active_steps(config)}.isdisjoint(unasked)
    funnel = report["funnel"]
    assert funnel["conversations"] > 0
    if ANSWER_CHECK in unasked and QUESTION_CHECK in unasked:
        assert funnel["pairs_generated"] == funnel["passed_checks"]
    if CONTEXT_REPAIR in unasked:
        assert funnel["after_repair"] == funnel["passed_checks"]
        assert report["stages"]["context_repair"][SKIPPED] == funnel["passed_checks"]
    labels = dict(pair_funnel(report))
    assert ("passed answer check (skipped)" in labels) == (ANSWER_CHECK in unasked)
    assert ("kept after repair (skipped)" in labels) == (CONTEXT_REPAIR in unasked)
    assert "(skipped)" in summary_text(report)
    kept = [json.loads(line) for line in (config.output_dir / MASTER_LIST).read_text().splitlines()]
    assert kept


def test_without_skip_the_same_answers_toss_every_pair(tmp_path):
    """The control for the test above: the scripted verdicts do toss pairs when the step is asked."""
    _, report, seen = run(tmp_path, {}, {ANSWER_CHECK: inaccurate_every_time})
    assert seen[ANSWER_CHECK] and report["funnel"]["passed_checks"] == 0
    assert report["funnel"]["conversations"] == 0
