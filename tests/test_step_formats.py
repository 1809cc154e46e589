"""Each step's grammar and JSON schema against its parser: the twin must accept what the parser reads.

Every few-shot example of the shipped prompt sets (prompt_overrides/ included) is accepted by its step's grammar,
and goes to JSON and back to the same parsed value. Recorded outputs of a real 70B
model (../shared/real_generations, skipped when absent) are accepted too, so turning
constraints on does not force a large model out of how it writes. Outputs a small
model wrote under a grammar that let a verdict word be glued to the word before it
("wellIRRELEVANT", which the parser cannot read) are refused.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from generation_functions import gbnf
from generation_functions.constraints import candidate_fields, constraint_for, openai_fields, probe_answer_honoured
from generation_functions.errors import ParseError
from generation_functions.prompts import few_shot_outputs, load_prompt
from generation_functions.step_formats import protocol_text
from generation_functions.steps import BY_KEY, EVALUATION_STEPS, STEPS
from tests.conftest import REPO, SHARED
from tests.test_gbnf import _llama_loads

ALL_STEPS = STEPS + EVALUATION_STEPS
# The shipped prompt sets, the override sets among them (each file there stands in for the default's).
PROMPT_SETS = (REPO / "prompts", REPO / "prompts_vision_paper", *sorted((REPO / "prompt_overrides").iterdir()))
REAL = SHARED / "real_generations"
# Recorded 70B outputs per step file; the share each grammar must accept.
REAL_FILES = {
    "question_generation": "question_generation.jsonl",
    "question_check": "check_question.jsonl",
    "answer_check": "check_answer.jsonl",
    "context_repair": "context_repair.jsonl",
    "conversation": "conversation.jsonl",
}


def grammar_of(step) -> gbnf.Grammar:
    return gbnf.parse(step.output_format.grammar)


def examples():
    for folder in PROMPT_SETS:
        for step in ALL_STEPS:
            for completion_mode in (False, True):
                suffix = ".txt" if completion_mode else ".yaml"
                if not (folder / f"{step.prompt_name}{suffix}").exists():
                    continue
                prompt = load_prompt(step.prompt_name, completion_mode, [folder])
                for number, output in enumerate(few_shot_outputs(prompt)):
                    yield pytest.param(step, output, id=f"{folder.name}-{step.key}-{suffix[1:]}-{number}")


@pytest.mark.parametrize("step", ALL_STEPS, ids=lambda step: step.key)
def test_every_grammar_is_well_formed_here_and_for_llama_cpp(step):
    grammar_of(step)  # raises GrammarError with line and column
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        return  # llama.cpp's own parser is checked where it is installed
    assert _llama_loads(step.output_format.grammar), f"llama.cpp refuses the {step.key} grammar"


@pytest.mark.parametrize("step", ALL_STEPS, ids=lambda step: step.key)
def test_every_schema_becomes_a_grammar_llama_cpp_python_loads(step):
    """llama-cpp-python turns the json_object form's schema into a grammar, and its server
    process dies on one it cannot load."""
    llama_grammar = pytest.importorskip("llama_cpp.llama_grammar", reason="llama_cpp is not installed")
    for schema in (step.output_format.schema, step.output_format.bounded_schema()):
        converted = llama_grammar.json_schema_to_gbnf(json.dumps(schema))
        assert _llama_loads(converted), f"llama.cpp refuses the grammar of the {step.key} schema"


@pytest.mark.parametrize("step, output", list(examples()))
def test_every_few_shot_example_is_accepted_by_its_steps_grammar(step, output):
    assert grammar_of(step).matches(output.strip()), f"the {step.key} grammar refuses its own example:\n{output}"


def test_the_bounded_schemas_bound_the_lists_the_grammars_bound():
    pairs, turns = BY_KEY["question_generation"].output_format, BY_KEY["conversation"].output_format
    thirteen = "\n\n".join(f"**QUESTION:**\nQ{n}?\n\n**ANSWER:**\nA{n}." for n in range(13))
    assert not gbnf.parse(pairs.grammar).matches(thirteen)
    assert "'pairs' has 13 items" in pairs.over_bounds(pairs.from_text(thirteen))
    assert pairs.over_bounds(pairs.from_text(thirteen.rsplit("\n\n**QUESTION:**", 1)[0])) == ""
    # An empty list reads as NO QUESTIONS; the bounded form asks for a pair (the chunk filter judges chunks).
    assert "'pairs' has 0 items" in pairs.over_bounds(pairs.from_text("NO QUESTIONS"))
    assert pairs.bounded_schema()["properties"]["pairs"]["minItems"] == 1
    exchanges = turns.bounded_schema()["properties"]["exchanges"]
    assert (exchanges["minItems"], exchanges["maxItems"]) == (1, 16)
    assert all(exchanges["items"]["properties"][name]["minLength"] == 1 for name in ("user", "assistant"))
    assert turns.over_bounds({"exchanges": [{}]}) == "" and "0 items" in turns.over_bounds({"exchanges": []})


@pytest.mark.parametrize("step", [step for step in (*STEPS, *EVALUATION_STEPS) if step.output_format], ids=lambda s: s.key)
def test_a_sent_schema_keeps_its_properties_in_the_order_they_are_written(step):
    """Servers write properties in the schema's order: reasoning first, then the verdict it leads to."""
    output_format = step.output_format
    for field in ("response_format", "json_object"):
        sent = json.loads(constraint_for(field, step.key, output_format.grammar, output_format.schema,
                                         output_format.bounded_schema()).text)
        assert list(sent["properties"]) == list(output_format.schema["properties"])
        if "reasoning" in sent["properties"]:
            assert list(sent["properties"])[0] == "reasoning"


def test_the_bounded_schemas_reasoning_is_the_grammars_lines():
    check = BY_KEY["question_check"].output_format
    reasoning = check.bounded_schema()["properties"]["reasoning"]
    assert reasoning["type"] == "array" and reasoning["maxItems"] == 20 and reasoning["items"]["maxLength"] == 400
    rambling = {"reasoning": "\n".join(["The text talks about staking in general terms."] * 21), "verdict": "RELEVANT"}
    assert "21 lines" in check.over_bounds(rambling)
    assert "longer than 400" in check.over_bounds({"reasoning": "x" * 401, "verdict": "RELEVANT"})
    # A JSON answer in either shape reads as the same text.
    lines = '{"reasoning": ["First, the text.", "Then the question."], "verdict": "RELEVANT"}'
    assert protocol_text(check, lines) == "First, the text.\nThen the question.\n\nRELEVANT"


@pytest.mark.parametrize("step, output", list(examples()))
def test_every_few_shot_example_goes_to_json_and_back_to_the_same_value(step, output):
    answer = step.output_format.from_text(output)
    assert_fits_schema(answer, step.output_format.schema)
    again = protocol_text(step.output_format, json.dumps(answer))
    assert step.processor(again) == step.processor(output)
    # The same in the bounded schema's shape (llama-cpp-python's form: reasoning as lines).
    bounded = step.output_format.bounded_answer(answer)
    assert_fits_schema(bounded, step.output_format.bounded_schema())
    assert step.output_format.over_bounds(answer) == ""
    assert step.processor(protocol_text(step.output_format, json.dumps(bounded))) == step.processor(output)
    assert grammar_of(step).matches(again), "the JSON answer's text must be one the grammar also allows"


def assert_fits_schema(value, schema, where="answer"):
    """The subset of JSON schema the step schemas use, checked strictly (as OpenAI's strict mode does)."""
    kind = schema["type"]
    if kind == "object":
        assert isinstance(value, dict), where
        assert set(value) == set(schema["properties"]) == set(schema["required"]), where
        assert schema["additionalProperties"] is False
        for name, sub in schema["properties"].items():
            assert_fits_schema(value[name], sub, f"{where}.{name}")
    elif kind == "array":
        assert isinstance(value, list), where
        assert len(value) <= schema.get("maxItems", len(value)), f"{where}: more items than maxItems"
        for number, item in enumerate(value):
            assert_fits_schema(item, schema["items"], f"{where}[{number}]")
    else:
        assert isinstance(value, str), where
        assert schema.get("minLength", 0) <= len(value) <= schema.get("maxLength", len(value)), f"{where}: length out of bounds"
        if "enum" in schema:
            assert value in schema["enum"], where


@pytest.mark.parametrize("key", sorted(REAL_FILES))
def test_recorded_70b_outputs_are_accepted_by_the_grammar(key):
    path = REAL / REAL_FILES[key]
    if not path.exists():
        pytest.skip(f"{path} is not here (../shared holds the recorded 70B outputs)")
    step = BY_KEY[key]
    grammar = grammar_of(step)
    outputs = [json.loads(line)["response"].strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    parsable = [output for output in outputs if _parses(step, output)]
    refused = [output for output in parsable if not grammar.matches(output)]
    # The grammar may refuse only a few outputs that the parser reads: those it bounds (very long ones).
    assert len(refused) <= 0.1 * len(parsable), f"{len(refused)} of {len(parsable)} refused, e.g.:\n{refused[0][-600:]}"


def _parses(step, output: str) -> bool:
    try:
        step.processor(output)
        return True
    except ParseError:
        return False


@pytest.mark.parametrize(
    "key, output",
    [
        ("question_check", "The text says nothing of it, so it is wellIRRELEVANT"),
        ("question_check", "ORELEVANT."),
        ("question_check", "```bash\nverus getinfo\nRELEVANT"),  # the verdict inside an unclosed fence is not read
        ("chunk_filter", "> quoted navigation\nSUITABLE"),
        ("answer_check", "The answer matches.\n\nThe verdict is ACCURATE and more text"),
        ("chunk_filter", "It lists links toUNSUITABLE: links"),
        ("question_generation", "**QUESTION:**\nWhat is VerusID?\n\nIt is an identity."),
        ("question_generation", "Here are some questions.\n\n**QUESTION:**\nWhat?\n\n**ANSWER:**\nThat."),
        ("context_repair", "Reasoning.\n\nFinal judgment: REWORD"),
        ("conversation", "**User:** Hi\n\n**User:** Hello?"),
        ("judge", "Reason: it is close.\nPARTLYCORRECT"),
    ],
)
def test_outputs_the_parser_cannot_use_are_refused(key, output):
    step = BY_KEY.get(key) or next(step for step in EVALUATION_STEPS if step.key == key)
    assert not grammar_of(step).matches(output)


def test_reasoning_is_bounded_so_a_rambling_model_must_conclude():
    step = BY_KEY["question_check"]
    rambling = "\n".join(["The text talks about staking and mining in general terms here."] * 40) + "\nRELEVANT"
    assert not grammar_of(step).matches(rambling)
    assert grammar_of(step).matches("\n".join(rambling.splitlines()[-10:]))


@pytest.mark.parametrize(
    "answer, expected",
    [
        ('{"reasoning": "It fits.", "verdict": "RELEVANT"}', "It fits.\n\nRELEVANT"),
        ('```json\n{"reasoning": "", "verdict": "IRRELEVANT"}\n```', "IRRELEVANT"),
        ("Plain text from a server that fell back.\n\nRELEVANT", "Plain text from a server that fell back.\n\nRELEVANT"),
        # llama-cpp-python's JSON grammar lets a model write line breaks raw inside a string.
        (
            '{ "reasoning": "The return should be **`true`**. }\n\nYou can remove this section." ,"verdict" : "IRRELEVANT"}',
            "The return should be **`true`**. }\n\nYou can remove this section.\n\nIRRELEVANT",
        ),
        ('{"reasoning": "Step 1.\tFine.\r\nStep 2.", "verdict": "RELEVANT"}', "Step 1.\tFine.\r\nStep 2.\n\nRELEVANT"),
    ],
)
def test_protocol_text_of_json_and_plain_answers(answer, expected):
    assert protocol_text(BY_KEY["question_check"].output_format, answer) == expected


@pytest.mark.parametrize(
    "answer, message",
    [
        ('{"reasoning": "x", "verdict": "MAYBE"}', "not one of RELEVANT, IRRELEVANT"),
        ('{"reasoning": "x"}', "no 'verdict'"),
        ('{"reasoning": "x", "verdict": ', "does not parse"),
        ("[1, 2]", None),  # not an object: passed on as text, and the marker parser refuses it
    ],
)
def test_json_that_is_not_the_schema_s_is_a_parse_error(answer, message):
    output_format = BY_KEY["question_check"].output_format
    if message is None:
        with pytest.raises(ParseError):
            BY_KEY["question_check"].processor(protocol_text(output_format, answer))
        return
    with pytest.raises(ParseError, match=message):
        protocol_text(output_format, answer)


def test_request_fields_for_each_server_form():
    step = BY_KEY["question_check"]
    grammar, schema = step.output_format.grammar, step.output_format.schema
    assert openai_fields(constraint_for("grammar", step.key, grammar, schema)) == {"grammar": grammar}
    assert openai_fields(constraint_for("structured_outputs", step.key, grammar, schema)) == {"structured_outputs": {"grammar": grammar}}
    assert openai_fields(constraint_for("guided_grammar", step.key, grammar, schema)) == {"guided_grammar": grammar}
    assert openai_fields(constraint_for("ebnf", step.key, grammar, schema)) == {"ebnf": grammar}
    sent = openai_fields(constraint_for("response_format", step.key, grammar, schema))["response_format"]
    assert sent["type"] == "json_schema" and sent["json_schema"]["schema"] == schema and sent["json_schema"]["strict"]
    # llama-cpp-python's form carries the grammar's bound on a list; OpenAI's strict form has no maxItems.
    pairs = BY_KEY["question_generation"].output_format
    bounded = pairs.bounded_schema()
    assert bounded["properties"]["pairs"]["maxItems"] == 12 and "maxItems" not in json.dumps(pairs.schema)
    sent = openai_fields(constraint_for("json_object", "question_generation", pairs.grammar, pairs.schema, bounded))
    assert sent == {"response_format": {"type": "json_object", "schema": bounded}}
    sent = openai_fields(constraint_for("response_format", "question_generation", pairs.grammar, pairs.schema, bounded))
    assert sent["response_format"]["json_schema"]["schema"] == pairs.schema
    assert [f.name for f in candidate_fields("auto", "cohere")] == ["response_format"]
    assert [f.name for f in candidate_fields("grammar", "api")] == ["grammar", "structured_outputs", "guided_grammar", "ebnf"]
    assert candidate_fields("off", "api") == ()


@pytest.mark.parametrize(
    "kind, text, honoured",
    [
        ("grammar", "verus-probe-123", True),
        ("grammar", " verus-probe-007\n", True),
        ("grammar", "Sure! verus-probe-123", False),
        ("grammar", "Hello! How can I help?", False),
        ("json_schema", '{"probe": "verus-probe-ok"}', True),
        ("json_schema", '```json\n{"probe":"verus-probe-ok"}\n```', True),
        ("json_schema", '{"probe": "ok"}', False),
        ("json_schema", "verus-probe-ok", False),
    ],
)
def test_probe_answers(kind, text, honoured):
    assert probe_answer_honoured(kind, text) is honoured


@pytest.mark.parametrize(
    "answer, turns",
    [
        (
            '{"opening": "Hello! Ask me about Verus.", "exchanges": [{"user": "How do I update?", '
            '"assistant": "Download the new release."}, {"user": "And then?", "assistant": "Restart the wallet."}]}',
            [("AI Assistant", "Hello! Ask me about Verus."), ("User", "How do I update?"),
             ("AI Assistant", "Download the new release."), ("User", "And then?"), ("AI Assistant", "Restart the wallet.")],
        ),
        # llama-cpp-python's raw line breaks inside a message.
        (
            '{"opening": "", "exchanges": [{"user": "Which version?", "assistant": "1.2.\n\nSee the notes."}]}',
            [("User", "Which version?"), ("AI Assistant", "1.2.\n\nSee the notes.")],
        ),
        # What SmolLM2 wrote under a schema of free turns: an assistant alone is no conversation.
        ('{"opening": "", "exchanges": [{"user": "", "assistant": "Verus-cli-arm-v1.20/zk6c7"}]}', None),
        ('{"opening": "Hi.", "exchanges": []}', None),
    ],
)
def test_a_json_conversation_reads_as_its_turns(answer, turns):
    step = BY_KEY["conversation"]
    if turns is None:
        with pytest.raises(ParseError, match="needs a User turn"):
            step.processor(protocol_text(step.output_format, answer))
        return
    assert step.processor(protocol_text(step.output_format, answer)) == turns
