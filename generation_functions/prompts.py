"""Prompt files: resolution by file name across folders, loading, and rendering.

A prompt is resolved once per run: the override folder (PATH.PROMPTS) first, then
the default folder (PATH.DEFAULT_PROMPTS). Chat mode reads NAME.yaml (a list of
{role, content} messages); completion mode reads NAME.txt.

Only five placeholder names are ever substituted (which of them a step fills is
in the table of steps, generation_functions/steps.py). Every other brace, in a prompt
or in a document, is literal text: real prompt folders carry JSON examples such as
'[{"address":"mike@","amount":100}]', and documents are data, never templates.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Mapping, Sequence, Union

import yaml

from generation_functions.errors import PromptError

PLACEHOLDERS = ("text", "textdetails", "question", "answer", "question_answer_list")
_PLACEHOLDER_RE = re.compile(r"\{(" + "|".join(PLACEHOLDERS) + r")\}")
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: ten times faster
_ROLES = frozenset({"system", "user", "assistant"})

Messages = list[dict[str, str]]
Prompt = Union[Messages, str]

def prompt_file_name(name: str, completion_mode: bool) -> str:
    return f"{name}.txt" if completion_mode else f"{name}.yaml"


def resolve_prompt_path(name: str, completion_mode: bool, prompt_dirs: Sequence[Path]) -> Path:
    """The first folder that holds the file wins; the error lists every folder tried."""
    file_name = prompt_file_name(name, completion_mode)
    for folder in prompt_dirs:
        candidate = Path(folder) / file_name
        if candidate.is_file():
            return candidate
    tried = ", ".join(str(Path(folder)) for folder in prompt_dirs)
    raise PromptError(f"prompt file {file_name} not found in any prompt folder ({tried})")


def load_prompt(name: str, completion_mode: bool, prompt_dirs: Sequence[Path]) -> Prompt:
    path = resolve_prompt_path(name, completion_mode, prompt_dirs)
    try:
        raw = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PromptError(f"cannot read prompt file {path}: {exc}") from exc
    if completion_mode:
        if not raw.strip():
            raise PromptError(f"prompt file {path} is empty")
        return raw
    return _parse_chat_prompt(raw, path)


def _parse_chat_prompt(raw: str, path: Path) -> Messages:
    try:
        data = yaml.load(raw, Loader=_YAML_LOADER)
    except yaml.YAMLError as exc:
        raise PromptError(f"prompt file {path} is not valid YAML: {exc}") from exc
    if not isinstance(data, list) or not data:
        raise PromptError(f"prompt file {path} must be a non-empty YAML list of {{role, content}} messages")
    messages = []
    for number, item in enumerate(data, start=1):
        if not isinstance(item, dict) or set(item) != {"role", "content"}:
            raise PromptError(f"prompt file {path}, message {number}: expected exactly the keys role and content")
        role, content = item["role"], item["content"]
        if role not in _ROLES:
            raise PromptError(f"prompt file {path}, message {number}: unknown role {role!r}")
        if not isinstance(content, str):
            raise PromptError(f"prompt file {path}, message {number}: content must be text")
        messages.append({"role": role, "content": content})
    if messages[-1]["role"] != "user":
        raise PromptError(f"prompt file {path}: the last message must be the user's")
    return messages


def placeholders_in(prompt: Prompt) -> set[str]:
    texts = [prompt] if isinstance(prompt, str) else [m["content"] for m in prompt]
    return {match for text in texts for match in _PLACEHOLDER_RE.findall(text)}


def check_placeholders(name: str, prompt: Prompt, source: str, provides: frozenset[str]) -> None:
    """A placeholder the step cannot fill (not in `provides`) is an error that names it."""
    unknown = placeholders_in(prompt) - provides
    if unknown:
        names = ", ".join("{" + u + "}" for u in sorted(unknown))
        raise PromptError(f"prompt {source} uses {names}, which step {name} does not provide")


def fill(template: str, values: Mapping[str, str]) -> str:
    """Single pass substitution: text inserted for one placeholder is never rescanned,
    so a document containing "{question}" stays as it is."""

    def substitute(match: re.Match[str]) -> str:
        key = match.group(1)
        if key not in values:
            raise PromptError(f"placeholder {{{key}}} has no value")
        return values[key]

    return _PLACEHOLDER_RE.sub(substitute, template)


def render(prompt: Prompt, values: Mapping[str, str]) -> Prompt:
    if isinstance(prompt, str):
        return fill(prompt, values)
    return [{"role": m["role"], "content": fill(m["content"], values)} for m in prompt]


_INSTRUCTION = "### Instruction:"
_RESPONSE = "### Response:"


def few_shot_outputs(prompt: Prompt) -> list[str]:
    """The example outputs a prompt shows the model.

    Chat prompts: every assistant message. Completion prompts: the text after
    each "### Response:" up to the next "### Instruction:", the last (empty)
    response excluded. A completion prompt written another way has none that
    can be found, and so none are checked.
    """
    if not isinstance(prompt, str):
        return [m["content"] for m in prompt if m["role"] == "assistant"]
    outputs = []
    for block in prompt.split(_RESPONSE)[1:]:
        if _INSTRUCTION in block:
            outputs.append(block.split(_INSTRUCTION, 1)[0].strip())
    return outputs


def chat_to_completion(messages: Messages) -> str:
    """The completion-mode (.txt) form of a chat prompt: the system text, then each
    example as an instruction and its response, then the final instruction with an
    open response for the model to continue."""
    parts = [m["content"] for m in messages if m["role"] == "system"]
    turns = [m for m in messages if m["role"] != "system"]
    for message in turns:
        if message["role"] == "user":
            parts.append(f"{_INSTRUCTION}\n{message['content']}")
        else:
            parts.append(f"{_RESPONSE}\n{message['content']}")
    return "\n\n".join(parts) + f"\n\n{_RESPONSE}\n"


def write_completion_prompts(folder: Path) -> list[Path]:
    """Write NAME.txt beside every NAME.yaml in folder, so both modes stay in step."""
    written = []
    for chat_file in sorted(Path(folder).glob("*.yaml")):
        messages = _parse_chat_prompt(chat_file.read_text(encoding="utf-8"), chat_file)
        target = chat_file.with_suffix(".txt")
        target.write_text(chat_to_completion(messages), encoding="utf-8")
        written.append(target)
    return written


if __name__ == "__main__":
    import sys

    if len(sys.argv) < 2:
        sys.exit("usage: python -m generation_functions.prompts PROMPT_FOLDER [...]  (writes NAME.txt from NAME.yaml)")
    for folder_arg in sys.argv[1:]:
        for path in write_completion_prompts(Path(folder_arg)):
            print(f"wrote {path}")
