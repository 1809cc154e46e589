"""The pipeline's steps, in one table.

Each row says everything about one kind of model call that does not depend on a
particular run: its prompt file, the parser of its output, its default sampling,
which model serves it, how often an unparsable output is asked again, whether it
votes, how often it runs (once per chunk or once per pair), the placeholders it
fills, and the marker words of its output protocol.

Control flow, preflight (`--check`), the prompt tests, the scheduler, the run
report, the config's SAMPLING section and the fake model server all read this
table. Adding a step is one row here plus the function that uses its result.

This module sits below the engine and the scheduler: it imports nothing of
theirs, so value types that they share (Sampling) live here.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum
from typing import Any, Callable, Optional

from generation_functions import output_processors as parsers
from generation_functions import step_formats as formats
from generation_functions.constraints import Constraint


@dataclass(frozen=True)
class Sampling:
    """Sampling parameters are values: steps copy them, nobody edits them in place."""

    temperature: float = 0.7
    top_p: float = 1.0
    max_tokens: int = 3000
    stop: tuple[str, ...] = ()
    # The step's output format as a decoding constraint (None: unconstrained).
    constraint: Optional[Constraint] = None

    def as_dict(self) -> dict:
        data = {"temperature": self.temperature, "top_p": self.top_p, "max_tokens": self.max_tokens, "stop": list(self.stop)}
        if self.constraint is not None:  # absent when off, so calls stored before constraints existed still match
            data["constraint"] = self.constraint.fingerprint()
        return data


class ModelRole(str, Enum):
    """Which configured model serves a step (the value is the API section's key)."""

    LOGICAL = "LOGICAL_MODEL"
    LARGE = "LARGE_LOGICAL_MODEL"


class Scope(str, Enum):
    """How often a step runs: once per chunk, or once per question/answer pair."""

    CHUNK = "chunk"
    PAIR = "pair"


CHUNK_FIELDS = frozenset({"text", "textdetails"})
PAIR_FIELDS = CHUNK_FIELDS | {"question", "answer"}


@dataclass(frozen=True)
class Step:
    key: str  # the step's id in config (SAMPLING.<KEY>), the run report and messages
    prompt_name: str  # NAME.yaml (chat) / NAME.txt (completion), override folder first
    label: str  # what a person reads in progress and summaries
    processor: Callable[[str], Any]  # a pure parser of the model's text (raises ParseError)
    sampling: Sampling  # defaults; SAMPLING.<KEY> in config.yaml overrides them
    model: ModelRole
    scope: Scope
    provides: frozenset[str]  # the placeholders the step fills; a prompt may use no other
    # A phrase only this step's instructions carry (its output protocol's words); the fake
    # model server tells requests apart by it, later rows first.
    marker: str
    parse_retries: int = 2  # fresh requests after an output that does not parse
    votes: bool = False  # asked DOUBLE_CHECK_COUNTER times; the majority decides, ties are tossed
    check_retries: int = 0  # fresh tries after a parsed output that fails its check in code
    # Of an output cut off at max_tokens, the part that is whole and may be parsed; None: no part
    # is (a verdict or a conversation cut short is not one), so the output is asked again.
    whole_part_of_cut: Optional[Callable[[str], str]] = None
    # Whether the run asks this step at all under the given config (e.g. SKIP.QUESTION_CHECK).
    enabled: Callable[[Any], bool] = lambda config: True
    # The output protocol as a grammar and a JSON schema: the parser's twin (step_formats.py).
    output_format: Optional[formats.OutputFormat] = None

    def sampling_for(self, overrides: Optional[dict[str, Any]], stop: tuple[str, ...]) -> Sampling:
        """The defaults with the config's overrides (None: keep the default) and the run's stop sequences."""
        changed = {name: value for name, value in (overrides or {}).items() if value is not None}
        return replace(self.sampling, stop=stop, **changed)


CHUNK_FILTER = "filter_chunk"
QUESTION_GENERATION = "qatuples_gen_no_filenames"
QUESTION_CHECK = "check_question"
ANSWER_CHECK = "check_answer"
CONTEXT_REPAIR = "check_qatuple_context_no_filenames"
CONVERSATION = "multi_turn_assistant_conversation"

# In the order a chunk meets them.
STEPS: tuple[Step, ...] = (
    Step(
        key="chunk_filter",
        prompt_name=CHUNK_FILTER,
        label="chunk filter",
        processor=parsers.parse_chunk_filter,
        sampling=Sampling(0.2, 0.95, 800),
        model=ModelRole.LOGICAL,
        scope=Scope.CHUNK,
        provides=CHUNK_FIELDS,
        marker="UNSUITABLE",
        votes=True,
        enabled=lambda config: not config.skip.CHUNK_FILTER,
        output_format=formats.CHUNK_FILTER,
    ),
    Step(
        key="question_generation",
        prompt_name=QUESTION_GENERATION,
        label="question generation",
        processor=parsers.parse_question_generation,
        sampling=Sampling(0.7, 0.95, 3000),
        model=ModelRole.LOGICAL,
        scope=Scope.CHUNK,
        provides=CHUNK_FIELDS,
        marker="**QUESTION:**",
        whole_part_of_cut=parsers.whole_pairs_of_cut_output,  # the pairs before the cut are whole
        output_format=formats.QUESTION_GENERATION,
    ),
    Step(
        key="question_check",
        prompt_name=QUESTION_CHECK,
        label="question check",
        processor=parsers.parse_question_check,
        sampling=Sampling(0.4, 0.95, 1500),
        model=ModelRole.LOGICAL,
        scope=Scope.PAIR,
        provides=PAIR_FIELDS,
        marker="IRRELEVANT",
        votes=True,
        enabled=lambda config: not config.skip.QUESTION_CHECK,
        output_format=formats.QUESTION_CHECK,
    ),
    Step(
        key="answer_check",
        prompt_name=ANSWER_CHECK,
        label="answer check",
        processor=parsers.parse_answer_check,
        sampling=Sampling(0.4, 0.95, 1500),
        model=ModelRole.LOGICAL,
        scope=Scope.PAIR,
        provides=PAIR_FIELDS,
        marker="INACCURATE",
        votes=True,
        enabled=lambda config: not config.skip.ANSWER_CHECK,
        output_format=formats.ANSWER_CHECK,
    ),
    Step(
        key="context_repair",
        prompt_name=CONTEXT_REPAIR,
        label="context repair",
        processor=parsers.parse_context_repair,
        sampling=Sampling(0.2, 0.95, 1500),
        model=ModelRole.LOGICAL,
        scope=Scope.PAIR,
        provides=PAIR_FIELDS,
        marker="Final judgment",
        enabled=lambda config: not config.skip.CONTEXT_REPAIR,
        output_format=formats.CONTEXT_REPAIR,
    ),
    Step(
        key="conversation",
        prompt_name=CONVERSATION,
        label="conversation",
        processor=parsers.parse_conversation,
        sampling=Sampling(0.6, 0.95, 4000),
        model=ModelRole.LARGE,
        scope=Scope.CHUNK,
        provides=CHUNK_FIELDS | {"question_answer_list"},
        marker="**AI Assistant:**",
        check_retries=1,
        output_format=formats.CONVERSATION,
    ),
)

JUDGE = "judge_answer"

# Steps outside the pipeline's chain: evaluate.py's judge grades a candidate's answer
# against the reference pair ({answer}) and its chunk ({text}); the candidate's own
# question and answer come as {question_answer_list}.
EVALUATION_STEPS: tuple[Step, ...] = (
    Step(
        key="judge",
        prompt_name=JUDGE,
        label="judge",
        processor=parsers.parse_judgment,
        sampling=Sampling(0.2, 0.95, 800),
        model=ModelRole.LARGE,
        scope=Scope.PAIR,
        provides=PAIR_FIELDS | {"question_answer_list"},
        marker="PARTLY CORRECT",
        votes=True,
        output_format=formats.JUDGE,
    ),
)

BY_NAME: dict[str, Step] = {step.prompt_name: step for step in STEPS}
BY_KEY: dict[str, Step] = {step.key: step for step in STEPS}
STEP_NAMES: tuple[str, ...] = tuple(step.prompt_name for step in STEPS)


def active_steps(config: Any) -> tuple[Step, ...]:
    """The steps a run with this config asks, in chain order."""
    return tuple(step for step in STEPS if step.enabled(config))


def classify_by_marker(instructions: str) -> Optional[str]:
    """The prompt name of the step whose instructions these are, or None for instructions
    that carry no step's marker (a plain chat, a ping). Evaluation steps and later steps
    are tried first, since a later step's prompt may show an earlier step's output."""
    for step in reversed(STEPS + EVALUATION_STEPS):
        if step.marker in instructions:
            return step.prompt_name
    return None
