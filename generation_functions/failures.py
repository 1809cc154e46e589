"""What a person is told when a run cannot start or stops: one wording for every entry point.

processing.py prints the message and exits with the code; the WebUI shows the
message. Each entry point passes its own way of resuming ("rerun `python
processing.py ...`", "start the run again"), which is only mentioned when there
can be finished work to resume from: a run that never started has none.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from generation_functions.errors import (
    ConfigError,
    ConfigurationRejected,
    EngineError,
    InputError,
    PromptError,
    RunAborted,
    ServerUnreachable,
)
from generation_functions.store import describe_os_error

# Exit codes (README: "Exit codes"). UNUSABLE: nothing can be generated as configured (bad
# config, prompts or input, no server, or a server that refuses every request as made).
DONE, STOPPED, UNUSABLE, INTERRUPTED = 0, 1, 2, 130

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
