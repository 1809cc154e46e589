"""The table of steps: every row is consistent with the prompts, the parsers and the fake server,
and the config's SAMPLING section reaches the requests and the call keys."""

from __future__ import annotations

from pathlib import Path

import pytest

from generation_functions.config import config_from_dict
from generation_functions.errors import ConfigError
from generation_functions.prompts import PLACEHOLDERS, load_prompt, placeholders_in
from generation_functions.steps import (
    BY_KEY,
    CHUNK_FILTER,
    CONVERSATION,
    QUESTION_GENERATION,
    STEPS,
    ModelRole,
    Scope,
    active_steps,
    classify_by_marker,
)
from tests.conftest import REPO, run_processing, write_config
from tests.fake_llm_server import FakeLLMServer


def test_rows_have_unique_names_and_keys():
    assert len({step.prompt_name for step in STEPS}) == len(STEPS)
    assert len({step.key for step in STEPS}) == len(STEPS)
    assert all(step.key == step.key.lower() and step.key.isidentifier() for step in STEPS)


@pytest.mark.parametrize("step", STEPS, ids=lambda step: step.key)
def test_each_default_prompt_fits_its_row(step):
    prompt = load_prompt(step.prompt_name, False, [REPO / "prompts"])
    assert step.provides <= set(PLACEHOLDERS)
    assert placeholders_in(prompt) <= step.provides
    instructions = "\n".join(message["content"] for message in prompt if message["role"] == "system")
    assert classify_by_marker(instructions) == step.prompt_name, "the fake server would mistake this step"


def test_only_the_conversation_is_served_by_the_large_model_and_checked_in_code():
    assert [step.prompt_name for step in STEPS if step.model is ModelRole.LARGE] == [CONVERSATION]
    assert [step.prompt_name for step in STEPS if step.check_retries] == [CONVERSATION]
    order = [step.prompt_name for step in STEPS]
    assert order.index(CHUNK_FILTER) < order.index(QUESTION_GENERATION) < order.index(CONVERSATION) == len(order) - 1
    assert all(step.scope is Scope.PAIR for step in STEPS[order.index(QUESTION_GENERATION) + 1 : -1])


def _config(**sections):
    data = {"API": {"LOGICAL_MODEL": "small", "LARGE_LOGICAL_MODEL": "large"}, "PATH": {"INPUT": str(REPO / "raw_text_input")}}
    data.update(sections)
    return config_from_dict(data, Path("."))


@pytest.mark.parametrize("key", ["CHUNK_FILTER", "QUESTION_CHECK", "ANSWER_CHECK", "CONTEXT_REPAIR"])
def test_a_skip_key_leaves_its_row_out_of_the_chain(key):
    assert [s.key for s in active_steps(_config())] == [s.key for s in STEPS]
    skipped = active_steps(_config(SKIP={key: True}))
    assert key.lower() not in [s.key for s in skipped] and len(skipped) == len(STEPS) - 1


def test_sampling_overrides_keep_the_other_defaults():
    config = _config(SAMPLING={"CONVERSATION": {"TEMPERATURE": 0.1, "MAX_TOKENS": 1234}})
    step = BY_KEY["conversation"]
    sampling = step.sampling_for(config.sampling_overrides("conversation"), ("STOP",))
    assert (sampling.temperature, sampling.top_p, sampling.max_tokens, sampling.stop) == (0.1, step.sampling.top_p, 1234, ("STOP",))
    untouched = BY_KEY["answer_check"]
    assert untouched.sampling_for(config.sampling_overrides("answer_check"), ()) == untouched.sampling


@pytest.mark.parametrize(
    ("sampling", "message"),
    [
        ({"CONVERSATON": {}}, "SAMPLING.CONVERSATON is not a known key (did you mean CONVERSATION?)"),
        ({"CONVERSATION": {"TEMPRATURE": 0.1}}, "SAMPLING.CONVERSATION.TEMPRATURE is not a known key (did you mean TEMPERATURE?)"),
        ({"ANSWER_CHECK": {"TOP_P": 0}}, "SAMPLING.ANSWER_CHECK.TOP_P = 0"),
        ({"ANSWER_CHECK": {"TEMPERATURE": "0.2"}}, "SAMPLING.ANSWER_CHECK.TEMPERATURE = '0.2'"),
        ({"QUESTION_GENERATION": {"MAX_TOKENS": 0}}, "SAMPLING.QUESTION_GENERATION.MAX_TOKENS = 0"),
    ],
)
def test_sampling_mistakes_name_the_key(sampling, message):
    with pytest.raises(ConfigError) as caught:
        _config(SAMPLING=sampling)
    assert message in str(caught.value)


def test_changing_one_steps_sampling_redoes_only_that_steps_calls(tmp_path):
    with FakeLLMServer() as server:
        first = write_config(tmp_path / "config.yaml", server.base_url, SAMPLING={"CONVERSATION": {"TEMPERATURE": 0.1, "MAX_TOKENS": 1234}})
        assert run_processing(first).returncode == 0
        sent = {(r.step, r.body["temperature"], r.body["max_tokens"]) for r in server.requests}
        assert {(t, m) for step, t, m in sent if step == CONVERSATION} == {(0.1, 1234)}
        generation = BY_KEY["question_generation"].sampling
        assert {(t, m) for step, t, m in sent if step == QUESTION_GENERATION} == {(generation.temperature, generation.max_tokens)}

        before = len(server.requests)
        write_config(tmp_path / "config.yaml", server.base_url, SAMPLING={"CONVERSATION": {"TEMPERATURE": 0.3, "MAX_TOKENS": 1234}})
        assert run_processing(first).returncode == 0
        redone = server.requests[before:]
        assert redone and {r.step for r in redone} == {CONVERSATION}
        assert {r.body["temperature"] for r in redone} == {0.3}
