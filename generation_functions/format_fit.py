"""Do a prompt set's few-shot examples fit the format a constrained run holds each step to?

Under a grammar the model can write only what the step's grammar allows; under a JSON
schema it answers JSON that is turned back into the protocol's text. A custom prompt
set whose example the grammar refuses (a longer reasoning, a verdict on its own
marker line) still parses, but a constrained model is then kept to the grammar, not to
the example it was shown, and writes worse. `processing.py --check` and the WebUI's
estimate list such examples; a run warns once per step. The default prompt sets fit
(tests/test_step_formats.py).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterable

from generation_functions import gbnf
from generation_functions.constraints import GRAMMAR, JSON_SCHEMA
from generation_functions.errors import ParseError
from generation_functions.step_formats import protocol_text
from generation_functions.steps import Step

KIND_WORDS = {GRAMMAR: "grammar", JSON_SCHEMA: "JSON schema"}


@dataclass(frozen=True)
class Misfit:
    """One example output that the step's constrained form would not let the model write."""

    prompt_name: str
    number: int  # the example's place among the prompt's example outputs, from 1
    kind: str  # GRAMMAR or JSON_SCHEMA
    reason: str

    def describe(self) -> str:
        return f"{self.prompt_name}: example output {self.number} is outside the step's {KIND_WORDS[self.kind]}: {self.reason}"


@lru_cache(maxsize=32)
def _grammar(text: str) -> gbnf.Grammar:
    return gbnf.parse(text)


def grammar_misfit(step: Step, output: str) -> str:
    """Why the step's grammar refuses this output ("" if it accepts it)."""
    output_format = step.output_format
    if output_format is None or _grammar(output_format.grammar).matches(output.strip()):
        return ""
    return f"the grammar allows {output_format.shape}"


def schema_misfit(step: Step, output: str) -> str:
    """Why this output could not come back from a JSON answer as the same value ("" if it can)."""
    output_format = step.output_format
    if output_format is None:
        return ""
    try:
        answer = output_format.from_text(output)
        again = protocol_text(output_format, json.dumps(answer))
        same = step.processor(again) == step.processor(output)
    except ParseError as exc:
        return f"it has no JSON form ({exc})"
    if not same:
        return "its JSON form reads as a different value"
    bound = output_format.over_bounds(answer)
    return f"{bound} (llama-cpp-python's JSON form holds to the grammar's bounds)" if bound else ""


CHECKS = {GRAMMAR: grammar_misfit, JSON_SCHEMA: schema_misfit}


def step_misfits(step: Step, outputs: Iterable[str], kinds: Iterable[str]) -> list[Misfit]:
    """The examples of one step that a run constrained in these kinds would hold the model away from.
    An example that does not parse at all is left to the parse check."""
    found = []
    for number, output in enumerate(outputs, start=1):
        try:
            step.processor(output)
        except ParseError:
            continue
        for kind in kinds:
            reason = CHECKS[kind](step, output)
            if reason:
                found.append(Misfit(step.prompt_name, number, kind, reason))
    return found


def misfits(steps: Iterable[Step], examples: dict[str, list[str]], kinds: dict[str, set[str]]) -> list[Misfit]:
    """Over every step: `examples` and `kinds` by prompt name (a step missing from `kinds` is not constrained)."""
    found: list[Misfit] = []
    for step in steps:
        found += step_misfits(step, examples.get(step.prompt_name, []), sorted(kinds.get(step.prompt_name, ())))
    return found


def run_warnings(found: list[Misfit], examples: dict[str, list[str]]) -> list[str]:
    """One line per step and kind, for a run's log: which examples, and why."""
    grouped: dict[tuple[str, str], list[Misfit]] = {}
    for misfit in found:
        grouped.setdefault((misfit.prompt_name, misfit.kind), []).append(misfit)
    lines = []
    for (name, kind), group in grouped.items():
        numbers = ", ".join(str(misfit.number) for misfit in group)
        word = KIND_WORDS[kind]
        lines.append(
            f"{name}: example output {numbers} of {len(examples.get(name, []))} is outside the step's {word} "
            f"({group[0].reason}); the model is kept to the {word}, not to the example. Change the example, or set "
            "SYSTEM.CONSTRAINED_OUTPUT: off for this prompt set"
        )
    return lines
