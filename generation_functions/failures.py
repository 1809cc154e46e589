"""What a person is told when a run cannot start or stops: one wording for every entry point.

processing.py prints the message and exits with the code; the WebUI shows the
message. Each entry point passes its own way of resuming ("rerun `python
processing.py ...`", "start the run again"), which is only mentioned when there
can be finished work to resume from: a run that never started has none.

A run that finishes but wrote no conversation at all is also told as a failure
(`describe_outcome`, exit 3), after its datasets and report are written.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from generation_functions.errors import (
    ConfigError,
    ConfigurationRejected,
    EngineError,
    InputError,
    PromptError,
    RunAborted,
    ServerUnreachable,
)
from generation_functions.datasets import RUN_REPORT
from generation_functions.format_health import describe_format_problem, failing_steps
from generation_functions.report import chunk_funnel, pair_funnel
from generation_functions.store import CALLS_DIR, describe_os_error

# Exit codes (README: "Exit codes"). UNUSABLE: nothing can be generated as configured (bad
# config, prompts or input, no server, or a server that refuses every request as made).
# NO_CONVERSATIONS: the run finished, with input, but wrote no conversation at all; its
# datasets and report are written all the same.
DONE, STOPPED, UNUSABLE, NO_CONVERSATIONS, INTERRUPTED = 0, 1, 2, 3, 130

# Failures that mean the run could not start: nothing was generated, so nothing to resume.
NOT_STARTED = (ConfigError, PromptError, InputError)


@dataclass(frozen=True)
class Failure:
    message: str
    exit_code: int
    expected: bool = True  # False: a bug, whose traceback belongs in a report


def describe_failure(exc: BaseException, how_to_resume: str | None) -> Failure:
    """The message and exit code for `exc`.

    how_to_resume: how this entry point resumes (e.g. "rerun `python processing.py` to resume"),
    or None when the run had not started, so there is no finished work to keep or resume.
    """
    if isinstance(exc, ConfigurationRejected):
        return _rejected_configuration(exc, how_to_resume)
    if isinstance(exc, NOT_STARTED) or (how_to_resume is None and isinstance(exc, ServerUnreachable)):
        return Failure(str(exc), UNUSABLE)
    resume = f"{how_to_resume or 'start the run again to resume'}; finished work is kept"
    if isinstance(exc, (KeyboardInterrupt, asyncio.CancelledError)):
        return Failure(f"interrupted. {resume}.", INTERRUPTED)
    if isinstance(exc, ServerUnreachable):
        return Failure(f"{exc}\n{resume}.", UNUSABLE)
    if isinstance(exc, (EngineError, RunAborted)):
        return Failure(f"the run stopped: {exc}\n{resume}.", STOPPED)
    if isinstance(exc, OSError):  # a full disk, a folder gone read-only: finished work is on disk
        return Failure(f"the run stopped: {describe_os_error(exc)}\nfix that, then {resume}.", STOPPED)
    return Failure(f"unexpected error: {type(exc).__name__}: {exc}\n{resume}.", STOPPED, expected=False)


def _rejected_configuration(exc: ConfigurationRejected, how_to_resume: str | None) -> Failure:
    """The server refuses the run's requests as configured: exit 2 (a setting must change
    first; a plain rerun would be refused the same way), naming the setting."""
    fix = f"{exc}.\nTo fix it: {exc.setting}."
    if how_to_resume is None:
        return Failure(fix, UNUSABLE)
    return Failure(f"the run stopped: {fix}\nThen {how_to_resume}; finished work is kept.", UNUSABLE)


# ---------------------------------------------------------------- a finished run that made nothing

# Where the pairs of a run can all be lost, in chain order: (step key, what is left after it, its label).
_LOSSES = (
    ("chunk_filter", "chunks_after_filter", "the chunk filter"),
    ("question_generation", "pairs_generated", "question generation"),
    ("question_check", None, "the question check"),
    ("answer_check", "passed_checks", "the answer check"),
    ("context_repair", "after_repair", "context repair"),
    ("conversation", "conversations", "the conversation step"),
)


def describe_outcome(report: dict[str, Any], how_to_rerun: str) -> Optional[Failure]:
    """None for a finished run that wrote conversations (or had no chunk to work on); else exit
    NO_CONVERSATIONS with why: the funnel, the step that lost everything, the format advice when
    the model's outputs did not parse, and where to look.

    how_to_rerun: how this entry point runs again (e.g. "rerun `python processing.py`").
    """
    funnel = report.get("funnel", {})
    if funnel.get("conversations", 0) > 0 or funnel.get("chunks", 0) == 0:
        return None
    return Failure(_no_conversations(report, how_to_rerun), NO_CONVERSATIONS)


def _lost_at(report: dict[str, Any]) -> tuple[str, str]:
    """The step whose output left nothing to go on with, and its label."""
    funnel, stages = report["funnel"], report.get("stages", {})
    for key, left, label in _LOSSES:
        stage = stages.get(key, {})
        if left is None:  # the question check: only when it ran
            if stage.get("tossed", 0) and not stage.get("kept", 0):
                return key, label
        elif funnel.get(left, 0) == 0:
            return key, label
    return "conversation", "the conversation step"


def _no_conversations(report: dict[str, Any], how_to_rerun: str) -> str:
    funnel = report["funnel"]
    rows = chunk_funnel(report)[:2] + pair_funnel(report) + chunk_funnel(report)[2:]
    lines = [
        "the run finished but wrote no conversation: "
        + "; ".join(f"{label}: {count}" for label, count in rows) + "."
    ]
    key, label = _lost_at(report)
    stage = report.get("stages", {}).get(key, {})
    reasons = ", ".join(f"{reason}: {count}" for reason, count in stage.get("tossed_reasons", {}).items())
    why = f" ({reasons})" if reasons else ""
    format_problems = {figures.key: figures for figures in failing_steps(report)}
    if key == "chunk_filter" and key not in format_problems:
        lines.append(
            f"Every chunk ({funnel['chunks']}) was filtered out as unsuitable by the chunk filter{why}: the model "
            "judged that none held anything to ask about. This is not a format problem. Check that PATH.INPUT "
            "holds the documents you mean, or turn the filter off (SKIP.CHUNK_FILTER: true)."
        )
    else:
        lines.append(f"Everything was lost at {label}{why}.")
        if key in format_problems:
            lines.append(describe_format_problem(format_problems[key]))
        others = [figures for other, figures in format_problems.items() if other != key]
        lines += [describe_format_problem(figures) for figures in others]
    output_dir = report.get("output_dir", "")
    if output_dir:  # chunk_results: control_flow_functions.RESULTS_DIR
        lines.append(
            f"Where to look: {Path(output_dir) / 'chunk_results'} (each chunk: why it was tossed, with the model's "
            f"text), {Path(output_dir) / CALLS_DIR} (every call, by step) and {Path(output_dir) / RUN_REPORT}. "
            "The datasets and the report were written all the same."
        )
    lines.append(
        f"After a change, {how_to_rerun}: a call whose prompt, model and sampling are unchanged is replayed "
        "from the store, not asked again."
    )
    return "\n".join(lines)
