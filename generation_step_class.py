"""GenerationStep: one kind of model call (prompt, sampling, output processor, retries).

A step is built once per run from its row in the table of steps
(generation_functions/steps.py) and the config. Calling it renders the prompt
with the given placeholder values, asks the model (or reuses a stored answer
for exactly the same call), and parses the answer. Output that cannot be parsed
is retried with a fresh request up to `retries` more times. A caller may also
pass a check in code (the conversation's): a parsed output that fails it is
tried afresh up to `check_retries` more times. Every attempt is stored, so a
rerun replays them without paying again.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Generic, Mapping, Optional, TypeVar

from engine_wrapper_class import Completion, EngineWrapper
from generation_functions.errors import ParseError, RequestRejected
from generation_functions.format_health import FormatHealth
from generation_functions.prompts import Prompt, placeholders_in, render
from generation_functions.rejections import RejectionWatch
from generation_functions.constraints import JSON_SCHEMA
from generation_functions.step_formats import protocol_text
from generation_functions.steps import Sampling, Step
from generation_functions.store import CallStore, work_key

log = logging.getLogger("verustoolkit")

T = TypeVar("T")


@dataclass(frozen=True)
class StepOutcome(Generic[T]):
    """The parsed value, or None with the reason and the last raw output kept."""

    value: T | None
    reason: str = ""
    raw_output: str = ""
    rejected: bool = False  # the output parsed, but failed the caller's check
    cut_off: bool = False  # the output was cut at max_tokens; the value is its whole part only

    @property
    def ok(self) -> bool:
        return self.value is not None


@dataclass(frozen=True)
class GenerationStep(Generic[T]):
    prompt_name: str
    processor: Callable[[str], T]
    sampling: Sampling
    retries: int = 2
    check_retries: int = 0
    whole_part_of_cut: Optional[Callable[[str], str]] = None
    # Turns the server's answer into the protocol's text before parsing: a JSON answer
    # (constrained by the step's schema) is rendered as the markers its parser reads.
    decode: Optional[Callable[[str], str]] = None

    @classmethod
    def from_table(cls, step: Step, sampling: Sampling) -> "GenerationStep":
        """The step of a table row, with the sampling this run uses for it."""
        decode = None
        if sampling.constraint is not None and sampling.constraint.kind == JSON_SCHEMA and step.output_format:
            output_format = step.output_format
            decode = lambda answer: protocol_text(output_format, answer)  # noqa: E731
        return cls(
            step.prompt_name,
            step.processor,
            sampling,
            step.parse_retries,
            step.check_retries,
            step.whole_part_of_cut,
            decode,
        )


class BoundStep(Generic[T]):
    """A GenerationStep tied to its loaded prompt, an engine and the call store."""

    def __init__(
        self,
        step: GenerationStep[T],
        prompt: Prompt,
        engine: EngineWrapper,
        store: CallStore,
        on_answer: Optional[Callable[[str, float, Mapping[str, str], str], None]] = None,
        rejections: Optional[RejectionWatch] = None,
        format_health: Optional[FormatHealth] = None,
    ):
        self.step = step
        self.prompt = prompt
        self.engine = engine
        self.store = store
        # Told of every fresh answer (step, seconds, values, text): the scheduler learns step times from it.
        self.on_answer = on_answer
        # Attempts whose output did not parse, by reason, for the run report.
        self.failures: Counter = Counter()
        # Refusals of this step's requests: the same one again and again stops the run (None: not watched).
        self.rejections = rejections
        # Outputs tried by the parser (fresh or replayed; a refused request is none) and those that
        # parsed; the run's FormatHealth is told of each (None: not watched).
        self.outputs = self.parsed = 0
        self.format_health = format_health
        self.template_id = store.save_template(step.prompt_name, prompt)
        self.placeholders = sorted(placeholders_in(prompt))

    @property
    def name(self) -> str:
        return self.step.prompt_name

    async def run(
        self, values: Mapping[str, str], slot: str = "0", check: Optional[Callable[[T], str]] = None
    ) -> StepOutcome[T]:
        """The parsed answer; with `check` (value -> reason, empty when fine), one that passes it."""
        if check is None:
            return await self._run_parsed(values, slot)
        outcome: StepOutcome[T] = StepOutcome(None)
        for attempt in range(self.step.check_retries + 1):
            outcome = await self._run_parsed(values, f"{slot}/try{attempt}")
            if not outcome.ok:
                continue
            reason = check(outcome.value)
            if not reason:
                return outcome
            log.debug("%s: try %d failed its check: %s", self.name, attempt + 1, reason)
            outcome = StepOutcome(None, reason, outcome.raw_output, rejected=True)
        return outcome

    async def _run_parsed(self, values: Mapping[str, str], slot: str) -> StepOutcome[T]:
        rendered = render(self.prompt, values)
        last_output, reason = "", ""
        for attempt in range(self.step.retries + 1):
            key = work_key(self.name, self.engine.model, rendered, self.step.sampling.as_dict(), slot, attempt)
            try:
                completion = await self._complete(key, rendered, values)
            except RequestRejected as exc:
                self.failures["request rejected"] += 1
                if self.rejections is not None:  # raises ConfigurationRejected when every request would be refused
                    self.rejections.refusal(exc, values.get("text", ""))
                return StepOutcome(None, f"request rejected: {exc}", last_output)
            last_output = completion.text
            cut_off = was_cut_off(completion.finish_reason)
            if self.step.decode is not None and not cut_off:
                try:
                    last_output = self.step.decode(completion.text)
                except ParseError as exc:
                    reason = f"unparsable output ({exc})"
                    self.failures["unparsable output"] += 1
                    self._tried(parsed=False)
                    log.debug("%s: attempt %d: %s", self.name, attempt + 1, reason)
                    continue
            if cut_off and self.step.whole_part_of_cut is None:
                # A verdict or a conversation cut short is never used: it is asked again.
                reason = f"output cut off at max_tokens ({self.step.sampling.max_tokens})"
                self.failures["output cut off at max_tokens"] += 1
                self._tried(parsed=False)
                log.debug("%s: attempt %d: %s", self.name, attempt + 1, reason)
                continue
            text = self.step.whole_part_of_cut(last_output) if cut_off else last_output
            try:
                value = self.step.processor(text)
            except ParseError as exc:
                reason = f"unparsable output ({exc})"
                category = "empty output" if not last_output.strip() else "unparsable output"
                if cut_off:
                    reason = "output cut off at max_tokens; " + reason
                    category = "output cut off at max_tokens"
                self.failures[category] += 1
                self._tried(parsed=False)
                log.debug("%s: attempt %d: %s", self.name, attempt + 1, reason)
                continue
            if cut_off:
                self.failures["output cut off at max_tokens (its whole part kept)"] += 1
            self._tried(parsed=True)
            return StepOutcome(value, "", last_output, cut_off=cut_off)
        return StepOutcome(None, reason, last_output)

    def _tried(self, parsed: bool) -> None:
        self.outputs += 1
        self.parsed += parsed
        if self.format_health is not None:
            self.format_health.record(self.name, parsed)

    async def _complete(self, key: str, rendered: Prompt, values: Mapping[str, str]) -> Completion:
        """The stored answer to exactly this call, or a fresh one (stored before it returns)."""
        stored = self.store.load(self.name, key)
        if stored is not None:
            return Completion(stored["response"], stored.get("finish_reason", ""), 0, 0)

        async def keep(completion: Completion) -> None:
            used = {name: values[name] for name in self.placeholders}
            record = _call_record(self.engine.model, self.template_id, used, self.step.sampling, completion)
            self.store.save(self.name, key, record)

        completion = await self.engine.generate(rendered, self.step.sampling, keep)
        if self.rejections is not None:
            self.rejections.answer()
        if self.on_answer is not None:
            self.on_answer(self.name, completion.seconds, values, completion.text)
        return completion


# Finish reasons that mean the answer hit max_tokens: OpenAI-compatible servers say "length",
# Cohere "MAX_TOKENS".
_CUT_OFF_REASONS = frozenset({"length", "max_tokens"})


def was_cut_off(finish_reason: str) -> bool:
    return (finish_reason or "").lower() in _CUT_OFF_REASONS


def _call_record(
    model: str, template_id: str, values: dict[str, str], sampling: Sampling, completion: Completion
) -> dict[str, Any]:
    """What a person needs to read one call: the prompt template's id (its file is
    in templates/), the values filled into it, and the model's answer."""
    return {
        "model": model,
        "sampling": sampling.as_dict(),
        "template": template_id,
        "values": values,
        "response": completion.text,
        "finish_reason": completion.finish_reason,
        "usage": {"prompt_tokens": completion.prompt_tokens, "completion_tokens": completion.completion_tokens},
    }
