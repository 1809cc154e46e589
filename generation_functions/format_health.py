"""How well each step's outputs keep to the output format, and what to say when they do not.

Small local models often leave the output protocol: they write `**QUESTION:**`
and ramble on without `**ANSWER:**`, or reason until max_tokens without a
verdict. Each such output is retried and then tossed, and a run where most
outputs do not parse ends with next to no data. This module judges that and
holds the one wording of it: the warning logged while the run runs, the
run summary (report.summary_text, shown by processing.py and the WebUI) and the
explanation of a run that made no conversation (failures.describe_outcome) all
use `describe_format_problem`.

An output is one answer the step tried to parse, fresh or replayed from the
store. It kept to the format when it parsed (an answer cut at max_tokens whose
whole part was kept counts as parsed; one that could not be used does not). A
request the server refused is no output.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Optional

from generation_functions.steps import EVALUATION_STEPS, STEPS, Step
from generation_functions.store import CALL_LOG, CALLS_DIR

log = logging.getLogger("verustoolkit")

# While the run runs, a step is judged once it has this many outputs: fewer say too little.
WARN_AFTER = 8
# At the end of a run its totals are all there is: a single request and its two retries,
# all unparsable, are enough to name the format as the problem.
JUDGE_AT_END_AFTER = 3

CONSTRAINED_OUTPUT_SETTING = "SYSTEM.CONSTRAINED_OUTPUT: auto"
ADVICE = (
    f"turn on constrained output ({CONSTRAINED_OUTPUT_SETTING}), use a larger model, "
    "or use a prompt set written for small models (PATH.PROMPTS)"
)

_LABELS = {step.key: step.label for step in (*STEPS, *EVALUATION_STEPS)}


def format_failing(outputs: int, parsed: int, minimum: int = WARN_AFTER) -> bool:
    """Whether a step's outputs mostly left the format: at least `minimum` outputs,
    and more than half of them did not parse."""
    if outputs < max(minimum, 1):
        return False
    return (outputs - parsed) * 2 > outputs


@dataclass(frozen=True)
class StepFormat:
    """One step's figures: its outputs, how many parsed, and where its raw outputs are."""

    key: str
    outputs: int
    parsed: int
    calls: str  # the absolute folder of the step's stored calls (OUTPUT/calls/<prompt_name>)

    @property
    def label(self) -> str:
        return _LABELS.get(self.key, self.key.replace("_", " "))

    @property
    def share(self) -> Optional[float]:
        return round(self.parsed / self.outputs, 3) if self.outputs else None

    def failing(self, minimum: int = JUDGE_AT_END_AFTER) -> bool:
        return format_failing(self.outputs, self.parsed, minimum)

    def as_dict(self) -> dict[str, Any]:
        return {"outputs": self.outputs, "parsed": self.parsed, "share": self.share, "calls": self.calls}

    @classmethod
    def from_dict(cls, key: str, data: dict[str, Any]) -> "StepFormat":
        return cls(key, int(data.get("outputs", 0)), int(data.get("parsed", 0)), str(data.get("calls", "")))


def kept_to_format(figures: StepFormat) -> str:
    """E.g. "question generation: 2 of 9 outputs kept to the format"."""
    return f"{figures.label}: {figures.parsed} of {figures.outputs} outputs kept to the format"


def describe_format_problem(figures: StepFormat) -> str:
    """What happened, where the raw outputs are, and what to try: one wording everywhere."""
    folder = figures.calls.rstrip("/\\") + "/"
    return (
        f"{kept_to_format(figures)}; the model does not keep to this step's output format: an output that "
        f"does not parse is asked again, and lost when no try parses. The raw outputs are in {folder} ({CALL_LOG}). To try: {ADVICE}."
    )


def failing_steps(report: dict[str, Any], minimum: int = JUDGE_AT_END_AFTER) -> list[StepFormat]:
    """The steps of a run report (run_report.json) whose outputs mostly did not parse, in chain order."""
    found = []
    for key, data in report.get("format", {}).items():
        figures = StepFormat.from_dict(key, data)
        if figures.failing(minimum):
            found.append(figures)
    return found


class FormatHealth:
    """Shared by a run's steps: told of every output each step tried to parse, it warns once
    per step, while the run runs, as soon as the step's outputs mostly do not keep to the format."""

    def __init__(self, output_dir: Path, steps: Iterable[Step] = STEPS, warn_after: int = WARN_AFTER):
        self.calls_dir = Path(output_dir).resolve() / CALLS_DIR
        self.steps = {step.prompt_name: step for step in steps}
        self.warn_after = warn_after
        self.outputs: Counter = Counter()  # by prompt name
        self.parsed: Counter = Counter()
        self.warned: set[str] = set()

    def record(self, prompt_name: str, parsed: bool) -> None:
        """One output of the step `prompt_name` was tried: it parsed or it did not."""
        self.outputs[prompt_name] += 1
        if parsed:
            self.parsed[prompt_name] += 1
        if prompt_name in self.warned:
            return
        figures = self.figures(prompt_name)
        if format_failing(figures.outputs, figures.parsed, self.warn_after):
            self.warned.add(prompt_name)
            log.warning("%s", describe_format_problem(figures))

    def figures(self, prompt_name: str) -> StepFormat:
        step = self.steps.get(prompt_name)
        key = step.key if step is not None else prompt_name
        return StepFormat(key, self.outputs[prompt_name], self.parsed[prompt_name], str(self.calls_dir / prompt_name))

    def as_dict(self) -> dict[str, dict[str, Any]]:
        """Per step key: outputs, parsed, share (None when it had none) and its calls folder."""
        return {self.figures(name).key: self.figures(name).as_dict() for name in self.steps}
