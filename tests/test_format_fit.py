"""A custom prompt set's few-shot examples against the format a constrained run holds each step to.

An example that parses but that the step's grammar refuses (reasoning longer than the
grammar's bound, a preamble before the first question) is one a constrained model cannot
follow: `--check` and the WebUI's estimate warn about it, naming the example and what the
grammar allows, and a constrained run warns once per step. The default prompt sets fit.
"""

from __future__ import annotations

import asyncio
import logging

import pytest
import yaml

from control_flow_functions import load_prompts, run_pipeline
from generation_functions.config import load_config
from generation_functions.constraints import GRAMMAR, JSON_SCHEMA
from generation_functions.format_fit import grammar_misfit, misfits, run_warnings, schema_misfit, step_misfits
from generation_functions.preflight import CheckResult, plan_check, run_check
from generation_functions.prompts import few_shot_outputs, load_prompt
from generation_functions.step_formats import QUESTION_CHECK as CHECK_FORMAT
from generation_functions.steps import BY_KEY, STEPS
from tests.conftest import REPO, write_config
from tests.fake_llm_server import FakeLLMServer

CHECK = BY_KEY["question_check"]
GENERATION = BY_KEY["question_generation"]
LONG_REASONING = "".join(f"Point {n}: the chunk says something about this part of the question.\n" for n in range(25))
PREAMBLE = "Here are the questions I wrote from the chunk.\n\n"


def default_examples() -> dict[str, list[str]]:
    return {step.prompt_name: few_shot_outputs(load_prompt(step.prompt_name, False, [REPO / "prompts"])) for step in STEPS}


def test_the_default_prompt_sets_examples_fit_both_kinds():
    examples = default_examples()
    assert misfits(STEPS, examples, {step.prompt_name: {GRAMMAR, JSON_SCHEMA} for step in STEPS}) == []


@pytest.mark.parametrize(
    "step, change, fits, json_bound",
    [
        (CHECK, lambda example: example, True, ""),
        # 25 more reasoning lines than 20 allowed: llama-cpp-python's JSON form holds to that bound too
        (CHECK, lambda example: LONG_REASONING + example, False, "the bounded schema allows 20"),
        (CHECK, lambda example: "> The chunk, quoted.\n" + example, False, ""),  # a reasoning line opens a quote
        (GENERATION, lambda example: example, True, ""),
        (GENERATION, lambda example: PREAMBLE + example, False, ""),  # text before the first QUESTION
    ],
    ids=["check", "check-long-reasoning", "check-quote", "generation", "generation-preamble"],
)
def test_an_example_that_parses_but_leaves_the_grammar_is_named(step, change, fits, json_bound):
    example = change(default_examples()[step.prompt_name][0])
    step.processor(example)  # it still parses: only the grammar tells
    reason = grammar_misfit(step, example)
    assert (reason == "") == fits
    if not fits:
        assert reason == f"the grammar allows {step.output_format.shape}"
    # Its content has a JSON form all the same, within the bounded schema's bounds or not.
    bound = schema_misfit(step, example)
    assert bound == "" if not json_bound else json_bound in bound and "llama-cpp-python" in bound


def test_an_example_that_does_not_parse_is_left_to_the_parse_check():
    assert step_misfits(CHECK, ["no verdict at all"], [GRAMMAR, JSON_SCHEMA]) == []


def test_the_run_warning_names_the_examples_and_the_fix():
    examples = {CHECK.prompt_name: ["x", LONG_REASONING + "So it is RELEVANT", LONG_REASONING + "IRRELEVANT"]}
    found = misfits(STEPS, examples, {CHECK.prompt_name: {GRAMMAR}})
    assert [(m.number, m.kind) for m in found] == [(2, GRAMMAR), (3, GRAMMAR)]
    (line,) = run_warnings(found, examples)
    assert line.startswith("check_question: example output 2, 3 of 3 is outside the step's grammar")
    assert CHECK_FORMAT.shape in line and "SYSTEM.CONSTRAINED_OUTPUT: off" in line


# ---------------------------------------------------------------- a custom prompt set, end to end


@pytest.fixture
def long_winded_prompts(tmp_path):
    """An override folder whose question check shows one example with 25 more lines of reasoning."""
    folder = tmp_path / "my_prompts"
    folder.mkdir()
    messages = yaml.safe_load((REPO / "prompts" / "check_question.yaml").read_text(encoding="utf-8"))
    first = next(m for m in messages if m["role"] == "assistant")
    first["content"] = LONG_REASONING + first["content"]
    (folder / "check_question.yaml").write_text(yaml.safe_dump(messages, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return folder


def config_for(tmp_path, server, prompts_folder, setting):
    return load_config(
        write_config(
            tmp_path / "config.yaml",
            server.base_url,
            PATH={"PROMPTS": str(prompts_folder)},
            SYSTEM={"CONSTRAINED_OUTPUT": setting, "MAX_RETRY_SECONDS": 5},
        )
    )


@pytest.mark.parametrize("setting", ["grammar", "auto", "off"])
def test_check_warns_of_the_example_and_still_passes(tmp_path, long_winded_prompts, setting):
    with FakeLLMServer(honours=("grammar",)) as server:
        config = config_for(tmp_path, server, long_winded_prompts, setting)
        result = asyncio.run(run_check(config, load_prompts(config)))
    text = "\n".join(result.lines)
    assert not result.problems, text
    warned = "WARNING: check_question: example output 1 is outside the step's grammar" in text
    assert warned == (setting != "off"), text
    if warned:
        assert "set SYSTEM.CONSTRAINED_OUTPUT: off for this prompt set" in text
        assert "check_answer: example output" not in text  # the default files of the other steps fit


def test_the_webui_estimate_warns_too(tmp_path, long_winded_prompts):
    with FakeLLMServer() as server:
        config = config_for(tmp_path, server, long_winded_prompts, "grammar")
    result = CheckResult()
    asyncio.run(plan_check(config, load_prompts(config), result))
    assert any(line.startswith("  WARNING: check_question: example output 1") for line in result.lines)


def test_a_constrained_run_warns_once_for_the_step(tmp_path, long_winded_prompts, caplog):
    with FakeLLMServer(honours=("grammar",)) as server, caplog.at_level(logging.WARNING, logger="verustoolkit"):
        config = config_for(tmp_path, server, long_winded_prompts, "auto")
        report = asyncio.run(run_pipeline(config))
    warnings = [r.getMessage() for r in caplog.records if "is outside the step's" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].startswith("check_question: example output 1 of "), warnings
    assert report["funnel"]["conversations"] > 0  # a warning, not a stop


def test_an_unconstrained_run_does_not_warn(tmp_path, long_winded_prompts, caplog):
    with FakeLLMServer(honours=("grammar",)) as server, caplog.at_level(logging.WARNING, logger="verustoolkit"):
        asyncio.run(run_pipeline(config_for(tmp_path, server, long_winded_prompts, "off")))
    assert not [r for r in caplog.records if "is outside the step's" in r.getMessage()]
