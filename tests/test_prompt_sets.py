"""Every prompt set loads, uses only the placeholders its step provides, and its
few-shot examples are outputs the pipeline's own parsers accept.

A set is prompts/ (the default) or an override folder (prompts_vision_paper/,
prompt_overrides/*/) resolved over prompts/ by file name, exactly as a run
resolves PATH.PROMPTS over PATH.DEFAULT_PROMPTS. A new folder under
prompt_overrides/ is picked up without touching this file.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from generation_functions.conversation_check import check_conversation
from generation_functions.errors import ParseError
from generation_functions.output_processors import (
    parse_answer_check,
    parse_context_repair,
    parse_conversation,
    parse_question_check,
    parse_question_generation,
)
from generation_functions.prompts import (
    PLACEHOLDERS,
    load_prompt,
    placeholders_in,
    resolve_prompt_path,
)
from generation_functions.steps import STEPS as STEP_TABLE
from generation_functions.steps import (
    ANSWER_CHECK,
    BY_NAME,
    CHUNK_FILTER,
    CONTEXT_REPAIR,
    CONVERSATION,
    QUESTION_CHECK,
    QUESTION_GENERATION,
    STEP_NAMES,
)

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DIR = ROOT / "prompts"

GEN = QUESTION_GENERATION
CHECK_QUESTION = QUESTION_CHECK
CHECK_ANSWER = ANSWER_CHECK
REPAIR = CONTEXT_REPAIR
STEPS = STEP_NAMES


def _sets() -> dict[str, list[Path]]:
    sets = {"prompts": [DEFAULT_DIR], "prompts_vision_paper": [ROOT / "prompts_vision_paper", DEFAULT_DIR]}
    for folder in sorted((ROOT / "prompt_overrides").iterdir()):
        if folder.is_dir():
            sets[f"prompt_overrides/{folder.name}"] = [folder, DEFAULT_DIR]
    return sets


SETS = _sets()
OVERRIDE_SETS = [name for name in SETS if name != "prompts"]

# The placeholder a step's prompt cannot do without.
ESSENTIAL = {
    CHUNK_FILTER: {"text"},
    GEN: {"text"},
    CHECK_QUESTION: {"text", "question", "answer"},
    CHECK_ANSWER: {"text", "question", "answer"},
    REPAIR: {"question", "answer"},
    CONVERSATION: {"question_answer_list"},
}

# A test server tells the steps apart by the first (system) message alone.
MARKERS = {step.prompt_name: step.marker for step in STEP_TABLE}

# Wording that leans on a source the reader of a training pair never sees.
SOURCE_REFERENCES = (
    "the text", "this text", "the passage", "this passage", "the excerpt", "this excerpt",
    "this section", "the section", "the article", "the author", "the document", "this document",
    "the example above", "mentioned above", "](#",
)

PARAMS = [(set_name, step, mode) for set_name in SETS for step in STEPS for mode in ("chat", "completion")]
IDS = [f"{s}:{step}:{mode}" for s, step, mode in PARAMS]


def _load(set_name: str, step: str, completion: bool):
    return load_prompt(step, completion, SETS[set_name])


def _split(prompt) -> tuple[str, list[tuple[str, str]], str]:
    """(instructions, [(example input, example output)], final input) for either mode."""
    if isinstance(prompt, str):
        head, *blocks = prompt.split("### Instruction:\n")
        pieces = []
        for block in blocks:
            assert block.count("\n\n### Response:\n") == 1, "each instruction needs exactly one response"
            pieces.append(block.split("\n\n### Response:\n"))
        *examples, (final, tail) = pieces
        assert tail == "", "the completion prompt must end right after '### Response:'"
        return head.strip(), [(i.strip(), o.strip()) for i, o in examples], final.strip()
    roles = [m["role"] for m in prompt]
    assert roles[0] == "system" and roles.count("system") == 1, roles
    assert roles[1:] == ["user", "assistant"] * ((len(roles) - 2) // 2) + ["user"], roles
    contents = [m["content"] for m in prompt]
    return contents[0], list(zip(contents[1:-1:2], contents[2:-1:2])), contents[-1]


def _template_regex(final: str) -> re.Pattern[str]:
    """The final input with each placeholder turned into a wildcard: example inputs must fit it."""
    parts = re.split(r"\{(?:" + "|".join(PLACEHOLDERS) + r")\}", final)
    return re.compile("(.+?)".join(re.escape(part) for part in parts), re.DOTALL)


def _leans_on_source(text: str) -> list[str]:
    lowered = text.lower()
    return [phrase for phrase in SOURCE_REFERENCES if phrase in lowered]


def _flat(text: str) -> str:
    return " ".join(text.split()).casefold()


@pytest.mark.parametrize(("set_name", "step", "mode"), PARAMS, ids=IDS)
def test_prompt_loads_with_the_steps_placeholders(set_name, step, mode):
    prompt = _load(set_name, step, mode == "completion")
    used = placeholders_in(prompt)
    assert used <= BY_NAME[step].provides, f"uses {used - BY_NAME[step].provides}, which {step} does not provide"
    assert ESSENTIAL[step] <= used, f"misses {ESSENTIAL[step] - used}"


@pytest.mark.parametrize(("set_name", "step", "mode"), PARAMS, ids=IDS)
def test_layout_static_first_and_examples_shaped_like_the_final_input(set_name, step, mode):
    instructions, examples, final = _split(_load(set_name, step, mode == "completion"))
    assert len(examples) >= 2, "at least two few-shot examples"
    static = instructions + "".join(i + o for i, o in examples)
    assert not placeholders_in(static), "placeholders belong in the final input only"
    assert "### Instruction:" not in static and "### Response:" not in static
    if step in (GEN, CHECK_QUESTION, CHECK_ANSWER):
        assert '"""\n{text}\n"""' in final
    if step in (CHECK_QUESTION, CHECK_ANSWER):
        order = [final.index(f'"""\n{{{name}}}\n"""') for name in ("text", "question", "answer")]
        assert order == sorted(order) and final.count('"""') == 6
    if step == REPAIR:
        assert "**QUESTION:**\n{question}\n\n**ANSWER:**\n{answer}" in final
    template = _template_regex(final)
    for example_input, _ in examples:
        assert template.fullmatch(example_input), f"example input not laid out like the final input:\n{example_input[:300]}"


@pytest.mark.parametrize(("set_name", "step", "mode"), PARAMS, ids=IDS)
def test_system_message_carries_only_its_own_marker(set_name, step, mode):
    instructions, _, _ = _split(_load(set_name, step, mode == "completion"))
    assert MARKERS[step] in instructions
    # The repair step writes a QUESTION/ANSWER pair, so it may name that marker.
    allowed = {MARKERS[step]} | ({MARKERS[GEN]} if step == REPAIR else set())
    for other in set(MARKERS.values()) - allowed:
        assert other not in instructions, f"{step} instructions contain {other!r}"


@pytest.mark.parametrize(("set_name", "step"), [(s, step) for s in SETS for step in STEPS])
def test_chat_and_completion_versions_hold_the_same_examples(set_name, step):
    chat = _split(_load(set_name, step, False))
    completion = _split(_load(set_name, step, True))
    assert len(chat[1]) == len(completion[1])
    assert chat[1] == completion[1]
    assert chat[0] == completion[0] and chat[2] == completion[2]


def _outputs(set_name: str, step: str) -> list[tuple[str, str]]:
    """Examples of both modes; the two are compared above, here both are parsed."""
    return [ex for completion in (False, True) for ex in _split(_load(set_name, step, completion))[1]]


@pytest.mark.parametrize("set_name", SETS)
def test_question_generation_examples_parse_and_stand_alone(set_name):
    for _, output in _outputs(set_name, GEN):
        pairs = parse_question_generation(output)
        assert len(pairs) == output.count("**QUESTION:**") == output.count("**ANSWER:**")
        assert output.startswith("**QUESTION:**")
        for question, answer in pairs:
            assert not _leans_on_source(question + " " + answer), (question, _leans_on_source(question + answer))


def _verdict_examples(set_name, step, parser, positive, negative):
    verdicts = []
    for _, output in _outputs(set_name, step):
        last_line = output.strip().splitlines()[-1]
        assert last_line in (positive, negative), f"last line must be the verdict alone, got {last_line!r}"
        # The verdict word in capitals appears once only, so the parser cannot pick another.
        assert len(re.findall(r"\b(?:IN|IR)?(?:ACCURATE|RELEVANT)\b", output)) == 1
        verdict = parser(output)
        assert verdict == (last_line == positive)
        verdicts.append(verdict)
    return verdicts


@pytest.mark.parametrize("set_name", SETS)
def test_question_check_examples_parse_to_their_intended_verdicts(set_name):
    verdicts = _verdict_examples(set_name, CHECK_QUESTION, parse_question_check, "RELEVANT", "IRRELEVANT")
    assert True in verdicts and False in verdicts


@pytest.mark.parametrize("set_name", SETS)
def test_answer_check_examples_parse_to_their_intended_verdicts(set_name):
    verdicts = _verdict_examples(set_name, CHECK_ANSWER, parse_answer_check, "ACCURATE", "INACCURATE")
    assert True in verdicts and False in verdicts


@pytest.mark.parametrize("set_name", SETS)
def test_context_repair_examples_parse_to_their_intended_judgments(set_name):
    seen = set()
    for _, output in _outputs(set_name, REPAIR):
        lines = re.findall(r"^Final judgment: (PASS|REWORD|FAIL)$", output, re.MULTILINE)
        assert len(lines) == 1 and output.lower().count("final judgment") == 1, "one judgment line, said once"
        verdict, rewording = parse_context_repair(output)
        assert verdict == lines[0].lower()
        seen.add(verdict)
        if verdict == "reword":
            after = output.split("### Question Rewording:\n", 1)[1]
            assert after.startswith("**QUESTION:**") and after.count("**QUESTION:**") == 1
            assert rewording == parse_question_generation(after)[0]
            assert not _leans_on_source(" ".join(rewording)), rewording
        else:
            assert rewording is None and "### Question Rewording:" not in output
            assert output.rstrip().endswith(f"Final judgment: {lines[0]}")
    assert seen == {"pass", "reword", "fail"}


@pytest.mark.parametrize("set_name", SETS)
def test_conversation_examples_carry_every_pair_in_order(set_name):
    for example_input, output in _outputs(set_name, CONVERSATION):
        pairs = parse_question_generation(example_input)
        turns = parse_conversation(output)
        if turns[0][0] == "AI Assistant":
            turns = turns[1:]  # the optional greeting
        assert [speaker for speaker, _ in turns] == ["User", "AI Assistant"] * len(pairs)
        for (question, answer), (_, reply) in zip(pairs, turns[1::2]):
            assert _flat(answer) in _flat(reply), f"answer not kept verbatim: {answer[:80]}"
        # The same code check the pipeline runs on every generated conversation.
        assert check_conversation(parse_conversation(output), pairs) == ""
        assert not _leans_on_source(output)


@pytest.mark.parametrize("set_name", OVERRIDE_SETS)
def test_override_sets_hold_only_changed_files_in_both_modes(set_name):
    folder = SETS[set_name][0]
    names = {path.stem for path in folder.iterdir() if path.is_file()}
    assert names and names <= set(STEPS), f"unknown prompt files in {folder}: {names - set(STEPS)}"
    for name in names:
        assert (folder / f"{name}.yaml").is_file() and (folder / f"{name}.txt").is_file()
        assert (folder / f"{name}.yaml").read_text() != (DEFAULT_DIR / f"{name}.yaml").read_text()
        assert resolve_prompt_path(name, False, SETS[set_name]).parent == folder


def test_default_set_is_complete():
    for step in STEPS:
        for completion in (False, True):
            assert resolve_prompt_path(step, completion, [DEFAULT_DIR]).parent == DEFAULT_DIR


def test_parsers_reject_the_final_empty_response():
    """Sanity check of the split: the text after the last '### Response:' is not an example."""
    prompt = _load("prompts", GEN, True)
    assert prompt.endswith("### Response:\n")
    with pytest.raises(ParseError):
        parse_question_generation(prompt.rsplit("### Response:\n", 1)[1])
