"""Render ShareGPT conversations the way Llama 3 sees them, and check their shape.

The assembler counts tokens on rendered conversations and refuses malformed
ones; the template lives here so both, and the tests, use one definition of
what a trainable conversation is.
"""

from __future__ import annotations

from typing import Any, Optional, Sequence

ROLE_OF = {"system": "system", "human": "user", "gpt": "assistant"}

# Our own Llama-3 chat template. The token strings are Llama 3's; the checks are
# ours: an optional system turn first, then user and assistant turns in strict
# alternation starting with the user. Anything else stops rendering with an
# error instead of producing a prompt the model was never trained on.
LLAMA3_CHAT_TEMPLATE = (
    "{%- set state = namespace(next='user') -%}"
    "{{- bos_token -}}"
    "{%- for turn in messages -%}"
    "{%- if turn['role'] == 'system' -%}"
    "{%- if not loop.first -%}{{ raise_exception('turn ' ~ loop.index0 ~ ': a system turn may only come first') }}{%- endif -%}"
    "{%- elif turn['role'] == state.next -%}"
    "{%- set state.next = 'assistant' if state.next == 'user' else 'user' -%}"
    "{%- else -%}"
    "{{ raise_exception('turn ' ~ loop.index0 ~ ': expected ' ~ state.next ~ ', got ' ~ turn['role']) }}"
    "{%- endif -%}"
    "{{- '<|start_header_id|>' ~ turn['role'] ~ '<|end_header_id|>' ~ header_gap ~ (turn['content'] | trim) ~ '<|eot_id|>' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}"
    "{{- '<|start_header_id|>assistant<|end_header_id|>' ~ header_gap -}}"
    "{%- endif -%}"
)
BOS_TOKEN = "<|begin_of_text|>"
_template_cache: dict[str, Any] = {}


class ChatTemplateError(ValueError):
    """A conversation the Llama-3 template refuses (wrong role order, unknown role)."""


def _raise_template_error(message: str) -> None:
    raise ChatTemplateError(message)


def _compiled_template():
    if "t" not in _template_cache:
        from jinja2.sandbox import ImmutableSandboxedEnvironment

        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        env.globals["raise_exception"] = _raise_template_error
        _template_cache["t"] = env.from_string(LLAMA3_CHAT_TEMPLATE)
    return _template_cache["t"]


def sharegpt_to_messages(turns: Sequence[dict]) -> list[dict[str, str]]:
    """ShareGPT {"from","value"} turns as chat-template {"role","content"} messages."""
    messages = []
    for index, turn in enumerate(turns):
        role = ROLE_OF.get(turn.get("from")) if isinstance(turn, dict) else None
        if role is None or not isinstance(turn.get("value"), str):
            raise ChatTemplateError(f"turn {index}: not a ShareGPT system/human/gpt turn: {turn!r:.80}")
        messages.append({"role": role, "content": turn["value"]})
    return messages


def render_llama3(messages: Sequence[dict], add_generation_prompt: bool = False) -> str:
    """Render {"role","content"} messages as Llama 3 sees them; raises ChatTemplateError."""
    return _compiled_template().render(
        messages=list(messages), bos_token=BOS_TOKEN, header_gap="\n\n", add_generation_prompt=add_generation_prompt
    )


def check_conversation_shape(turns: Sequence[dict]) -> Optional[str]:
    """None for a trainable ShareGPT conversation: a system turn, then human/gpt
    alternating, ending with gpt, no empty turn. Otherwise what is wrong."""
    if not isinstance(turns, list) or len(turns) < 3:
        return "fewer than a system turn and one exchange"
    expected = ["system"] + ["human" if i % 2 == 0 else "gpt" for i in range(len(turns) - 1)]
    for index, (turn, want) in enumerate(zip(turns, expected)):
        if not isinstance(turn, dict) or turn.get("from") != want:
            got = turn.get("from") if isinstance(turn, dict) else type(turn).__name__
            return f"turn {index} is {got!r}, expected {want!r}"
        if not isinstance(turn.get("value"), str) or (index > 0 and not turn["value"].strip()):
            return f"turn {index} has no text"
    if turns[-1]["from"] != "gpt":
        return "the last turn is not the assistant's"
    return None
