"""Prompt files: override-then-default resolution, loading errors, rendering."""

from __future__ import annotations

import pytest

from generation_functions.errors import PromptError
from generation_functions.steps import BY_NAME
from generation_functions.prompts import (
    check_placeholders,
    fill,
    load_prompt,
    placeholders_in,
    render,
    resolve_prompt_path,
)

CHAT = '- role: system\n  content: "Write **QUESTION:** blocks."\n- role: user\n  content: |-\n    """\n    {text}\n    """\n'


@pytest.fixture
def folders(tmp_path):
    default, override = tmp_path / "default", tmp_path / "override"
    default.mkdir()
    override.mkdir()
    (default / "check_answer.yaml").write_text(CHAT)
    (default / "check_answer.txt").write_text("default completion {text}")
    (override / "check_answer.txt").write_text("override completion {text}")
    return [override, default]


def test_override_folder_wins_and_falls_back_by_file_name(folders):
    override, default = folders
    assert resolve_prompt_path("check_answer", True, folders) == override / "check_answer.txt"
    assert resolve_prompt_path("check_answer", False, folders) == default / "check_answer.yaml"
    assert load_prompt("check_answer", True, folders) == "override completion {text}"
    messages = load_prompt("check_answer", False, folders)
    assert [m["role"] for m in messages] == ["system", "user"]


def test_missing_everywhere_names_the_file_and_folders(folders):
    with pytest.raises(PromptError, match=r"check_question\.yaml not found.*override.*default"):
        load_prompt("check_question", False, folders)


@pytest.mark.parametrize(
    "content,message",
    [
        ("- role: system\n  content: [unclosed", "not valid YAML"),
        ("just a string", "non-empty YAML list"),
        ("- role: wizard\n  content: hi\n", "unknown role 'wizard'"),
        ("- role: user\n  text: hi\n", "exactly the keys role and content"),
        ("- role: user\n  content: 5\n", "content must be text"),
        ("- role: user\n  content: hi\n- role: assistant\n  content: ok\n", "last message must be the user's"),
    ],
)
def test_malformed_chat_prompts_are_named(tmp_path, content, message):
    (tmp_path / "check_answer.yaml").write_text(content)
    with pytest.raises(PromptError, match=message) as info:
        load_prompt("check_answer", False, [tmp_path])
    assert "check_answer.yaml" in str(info.value)


def test_unreadable_prompt_file(tmp_path):
    (tmp_path / "check_answer.yaml").write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(PromptError, match="cannot read"):
        load_prompt("check_answer", False, [tmp_path])


def test_placeholder_the_step_lacks_is_an_error_that_names_it():
    prompt = [{"role": "user", "content": "{text} and {question_answer_list}"}]
    with pytest.raises(PromptError, match=r"\{question_answer_list\}.*check_answer"):
        check_placeholders("check_answer", prompt, "p.yaml", BY_NAME["check_answer"].provides)
    check_placeholders("multi_turn_assistant_conversation", prompt, "p.yaml", BY_NAME["multi_turn_assistant_conversation"].provides)


def test_only_the_five_names_are_placeholders():
    template = 'Send \'[{"address":"mike@","amount":100}]\' for {text} not {data} nor {{text}} {unknown}'
    assert placeholders_in(template) == {"text"}
    assert fill(template, {"text": "T"}) == 'Send \'[{"address":"mike@","amount":100}]\' for T not {data} nor {T} {unknown}'


def test_inserted_text_is_never_rescanned():
    values = {"text": "a document that says {question} and {answer}", "question": "Q?", "answer": "A."}
    assert fill("{text} / {question}", values) == "a document that says {question} and {answer} / Q?"


def test_render_keeps_roles_and_does_not_touch_the_original():
    prompt = [{"role": "system", "content": "Use {textdetails}"}, {"role": "user", "content": "{text}"}]
    rendered = render(prompt, {"text": "x", "textdetails": "doc.md"})
    assert rendered == [{"role": "system", "content": "Use doc.md"}, {"role": "user", "content": "x"}]
    assert prompt[1]["content"] == "{text}"


def test_every_step_can_fill_text_details():
    from generation_functions.steps import STEPS

    assert all("textdetails" in step.provides for step in STEPS)


def test_every_completion_prompt_is_the_chat_prompt_in_completion_form():
    from pathlib import Path

    from generation_functions.prompts import chat_to_completion

    root = Path(__file__).resolve().parents[1]
    chat_files = sorted(list(root.glob("prompts*/*.yaml")) + list(root.glob("prompt_overrides/*/*.yaml")))
    assert len(chat_files) >= 12
    for chat_file in chat_files:
        messages = load_prompt(chat_file.stem, False, [chat_file.parent])
        assert chat_file.with_suffix(".txt").read_text(encoding="utf-8") == chat_to_completion(messages), chat_file


def test_write_completion_prompts(tmp_path):
    from generation_functions.prompts import write_completion_prompts

    (tmp_path / "check_answer.yaml").write_text(
        "- role: system\n  content: Judge ACCURATE or INACCURATE.\n"
        "- role: user\n  content: example input\n- role: assistant\n  content: |-\n    reasoning\n    ACCURATE\n"
        "- role: user\n  content: '{text}'\n"
    )
    written = write_completion_prompts(tmp_path)
    assert written == [tmp_path / "check_answer.txt"]
    assert written[0].read_text() == (
        "Judge ACCURATE or INACCURATE.\n\n### Instruction:\nexample input\n\n### Response:\nreasoning\nACCURATE"
        "\n\n### Instruction:\n{text}\n\n### Response:\n"
    )
