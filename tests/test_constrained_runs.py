"""SYSTEM.CONSTRAINED_OUTPUT end to end, over real HTTP to the fake server.

The fake checks that every constraint it is sent is well-formed (a bad grammar or
schema gets HTTP 400) and, for the kinds it honours, answers within it. With an
imperfect model (most answers flawed) and constraints on, every step's outputs
parse; the probe picks the field the server honours; a server that honours none,
or refuses the field, leaves the run unconstrained with one warning.
"""

from __future__ import annotations

import asyncio
import json
import logging

import httpx
import pytest

from control_flow_functions import run_pipeline
from engine_wrapper_class import EngineWrapper, OpenAIChatBackend, RequestStats, RetryPolicy
from generation_functions.concurrency import RequestLimiter
from generation_functions.config import load_config
from generation_functions.constraint_probe import RECORD
from generation_functions.constraints import constraint_for
from generation_functions.preflight import run_check
from generation_functions.steps import BY_KEY, STEPS, Sampling
from tests.conftest import write_config
from tests.fake_imperfect import Imperfection
from tests.fake_llm_server import FakeLLMServer

PIPELINE_STEPS = {step.prompt_name for step in STEPS}


def run(tmp_path, server, setting, **system):
    tmp_path.mkdir(parents=True, exist_ok=True)
    config = load_config(
        write_config(tmp_path / "config.yaml", server.base_url, SYSTEM={"CONSTRAINED_OUTPUT": setting, "MAX_RETRY_SECONDS": 5, **system})
    )
    return config, asyncio.run(run_pipeline(config))


def all_outputs_parsed(report) -> dict:
    return {key: (f["parsed"], f["outputs"]) for key, f in report["format"].items() if f["outputs"]}


def test_with_a_grammar_every_step_of_an_imperfect_model_parses(tmp_path):
    with FakeLLMServer(imperfect=Imperfection(rate=0.5, seed=3), honours=("grammar",)) as server:
        config, report = run(tmp_path, server, "auto")
    assert report["constrained_output"] == {"setting": "auto", "models": {"small-model": "grammar", "large-model": "grammar"}}
    assert json.loads((config.output_dir / RECORD).read_text())["models"]["small-model"] == "grammar"
    step_requests = [r for r in server.requests if r.step in PIPELINE_STEPS]
    assert step_requests and all(r.constraint is not None and r.constraint.field == "grammar" for r in step_requests)
    assert any(r.flaw for r in step_requests), "the imperfect model flawed answers; the grammar kept them in format"
    figures = all_outputs_parsed(report)
    assert figures and all(parsed == outputs for parsed, outputs in figures.values()), figures
    assert report["funnel"]["pairs_generated"] > 0  # what the checks then keep is the flawed model's content


def test_the_same_imperfect_model_without_constraints_loses_outputs(tmp_path):
    with FakeLLMServer(imperfect=Imperfection(rate=0.5, seed=3), honours=("grammar",)) as server:
        _, report = run(tmp_path, server, "off")
    assert all(r.constraint is None for r in server.requests)
    figures = all_outputs_parsed(report)
    assert any(parsed < outputs for parsed, outputs in figures.values()), figures


def test_a_json_only_server_gets_schemas_and_its_json_answers_become_the_same_values(tmp_path):
    with FakeLLMServer(honours=("json_schema",), refuse_unknown=True) as server:
        config, report = run(tmp_path, server, "auto")
    assert report["constrained_output"]["models"]["small-model"] == "response_format"
    step_requests = [r for r in server.requests if r.step in PIPELINE_STEPS]
    assert all(r.body["response_format"]["type"] == "json_schema" for r in step_requests)
    assert all(r.response.startswith("{") for r in step_requests if r.response)
    assert all(parsed == outputs for parsed, outputs in all_outputs_parsed(report).values())
    assert report["funnel"]["conversations"] > 0
    rows = (config.output_dir / "plain_qa_list.jsonl").read_text().splitlines()
    assert rows and not any('"reasoning"' in row for row in rows), "datasets hold the pairs, not the JSON"


def test_llama_cpp_pythons_own_json_form_is_used_where_the_standard_one_fails(tmp_path):
    """llama-cpp-python answers response_format type json_schema with HTTP 500 and takes the schema
    beside the type json_object instead: with json_schema asked for, the probe finds that form."""
    with FakeLLMServer(honours=("grammar", "json_object"), fails=("response_format",)) as server:
        config, report = run(tmp_path, server, "json_schema")
    probe = json.loads((config.output_dir / RECORD).read_text())
    assert probe["models"] == {"small-model": "json_object", "large-model": "json_object"}
    step_requests = [r for r in server.requests if r.step in PIPELINE_STEPS]
    assert step_requests and all(r.body["response_format"]["type"] == "json_object" for r in step_requests)
    assert all("schema" in r.body["response_format"] for r in step_requests)
    assert all(r.response.startswith("{") for r in step_requests if r.response)
    # Its schemas carry the grammar's bounds: lists of pairs, and reasoning as a list of lines.
    questions = next(r for r in step_requests if r.step == "qatuples_gen_no_filenames")
    assert questions.body["response_format"]["schema"]["properties"]["pairs"]["maxItems"] == 12
    check = next(r for r in step_requests if r.step == "check_question" and r.response)
    assert check.body["response_format"]["schema"]["properties"]["reasoning"]["maxItems"] == 20
    assert isinstance(json.loads(check.response, strict=False)["reasoning"], list)
    assert all(parsed == outputs for parsed, outputs in all_outputs_parsed(report).values())
    assert report["funnel"]["conversations"] > 0


def test_the_same_job_with_and_without_json_constraints_makes_the_same_datasets(tmp_path):
    with FakeLLMServer(honours=("json_schema",)) as server:
        plain_config, _ = run(tmp_path / "off", server, "off")
        json_config, _ = run(tmp_path / "json", server, "json_schema")
    for name in ("plain_qa_list.jsonl", "simplified_data_no_rag.jsonl"):
        assert (plain_config.output_dir / name).read_text() == (json_config.output_dir / name).read_text()


@pytest.mark.parametrize("refuse_unknown", [False, True], ids=["ignores the field", "refuses the field"])
def test_a_server_that_honours_no_field_leaves_the_run_unconstrained_with_one_warning(tmp_path, caplog, refuse_unknown):
    with FakeLLMServer(refuse_unknown=refuse_unknown) as server:
        with caplog.at_level(logging.WARNING, logger="verustoolkit"):
            _, report = run(tmp_path, server, "auto")
    warnings = [r.getMessage() for r in caplog.records if "CONSTRAINED_OUTPUT" in r.getMessage()]
    assert len(warnings) == 2 and "small-model" in warnings[0] and "large-model" in warnings[1]  # one per model
    assert "grammar: " in warnings[0] and "response_format: " in warnings[0]
    assert report["constrained_output"]["models"] == {"small-model": None, "large-model": None}
    assert all(r.constraint is None for r in server.requests if r.step in PIPELINE_STEPS)
    assert report["funnel"]["conversations"] > 0


def test_a_refusal_mid_run_turns_constraints_off_with_one_warning(caplog):
    async def scenario(url):
        engine = EngineWrapper([OpenAIChatBackend(url, "", "small-model", 10)], RequestLimiter(2), RetryPolicy(5), RequestStats(), "small-model")
        step = BY_KEY["question_check"]
        constrained = Sampling(max_tokens=200, constraint=constraint_for("grammar", step.key, step.output_format.grammar, {}))
        messages = [{"role": "user", "content": "Is it RELEVANT or IRRELEVANT?"}]
        try:
            first = await engine.generate(messages, constrained)
            second = await engine.generate(messages, constrained)
        finally:
            await engine.close()
        return engine, first, second

    with FakeLLMServer(refuse_unknown=True) as server, caplog.at_level(logging.WARNING, logger="verustoolkit"):
        engine, first, second = asyncio.run(scenario(server.base_url))
    assert first.text and second.text
    # The refused request never reached the model; then the same one plain, then the next plain.
    assert [r.constraint is not None for r in server.requests] == [False, False]
    assert "Unrecognized request argument" in engine.constraints_refused
    assert sum("refused constrained output" in r.getMessage() for r in caplog.records) == 1


@pytest.mark.parametrize(
    "body, message",
    [
        ({"grammar": 'root ::= ("a"'}, "failed to parse grammar"),
        ({"grammar": 'root ::= other'}, "failed to parse grammar"),
        ({"structured_outputs": {"grammar": "item ::= [a-z]"}}, "failed to parse grammar"),
        ({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object", "properties": {"a": {"type": "string"}}}}}}, "additionalProperties"),
        ({"response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object", "properties": {"a": {"type": "string"}}, "required": [], "additionalProperties": False}}}}, "every property must be required"),
        ({"response_format": {"type": "json_object", "schema": {"type": "object", "properties": {}}}}, "additionalProperties"),
    ],
)
def test_the_fake_refuses_a_malformed_constraint_whether_or_not_it_honours_it(body, message):
    with FakeLLMServer() as server:
        response = httpx.post(
            f"{server.base_url}/chat/completions",
            json={"model": "m", "messages": [{"role": "user", "content": "hi"}], **body},
        )
    assert response.status_code == 400 and message in response.json()["error"]["message"]


@pytest.mark.parametrize("honours, expected", [(("grammar",), "uses 'grammar'"), (("json_schema",), "uses 'response_format'"), ((), "no constrained output")])
def test_check_reports_which_field_each_model_honours(tmp_path, honours, expected):
    with FakeLLMServer(honours=honours) as server:
        config = load_config(write_config(tmp_path / "config.yaml", server.base_url, SYSTEM={"CONSTRAINED_OUTPUT": "auto"}))
        from control_flow_functions import load_prompts

        result = asyncio.run(run_check(config, load_prompts(config)))
    text = "\n".join(result.lines)
    assert "Constrained output (SYSTEM.CONSTRAINED_OUTPUT: auto):" in text
    assert f"small-model: {expected}" in text


def test_a_grammar_gets_max_tokens_enough_for_its_longest_text(tmp_path):
    with FakeLLMServer(honours=("grammar",)) as server:
        run(tmp_path / "grammar", server, "grammar")
        checks = [r.body["max_tokens"] for r in server.requests if r.step == BY_KEY["question_check"].prompt_name]
        filters = [r.body["max_tokens"] for r in server.requests if r.step == BY_KEY["chunk_filter"].prompt_name]
        server.requests.clear()
        run(tmp_path / "off", server, "off")
        plain = [r.body["max_tokens"] for r in server.requests if r.step == BY_KEY["question_check"].prompt_name]
    longest = BY_KEY["question_check"].output_format.longest_chars
    assert checks and set(checks) == {-(-longest // 3)} and set(plain) == {1500}
    assert filters and set(filters) == {800}  # the filter's grammar fits its default already


def test_llama_cpp_pythons_bounded_json_gets_the_same_room_and_the_standard_form_none(tmp_path):
    """The json_object form holds reasoning to the grammar's lines, so it gets the grammar's room;
    the standard form bounds nothing, so max_tokens stays as configured."""
    longest = BY_KEY["question_check"].output_format.longest_chars
    cases = ((("json_object",), ("response_format",), {-(-longest // 3)}), (("json_schema",), (), {1500}))
    for honours, fails, expected in cases:
        with FakeLLMServer(honours=honours, fails=fails) as server:
            run(tmp_path / honours[0], server, "json_schema")
            checks = [r.body["max_tokens"] for r in server.requests if r.step == BY_KEY["question_check"].prompt_name]
        assert checks and set(checks) == expected, honours
