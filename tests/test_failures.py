"""One wording for failures, whichever entry point shows them (processing.py, the WebUI)."""

from __future__ import annotations

import errno

import pytest

from generation_functions.errors import ConfigError, EngineError, InputError, PromptError, RunAborted, ServerUnreachable
from generation_functions.failures import INTERRUPTED, STOPPED, UNUSABLE, describe_failure

HOW = "rerun `python processing.py` to resume"


@pytest.mark.parametrize("exc", [ConfigError("SYSTEM.X is not a known key"), PromptError("p"), InputError("i")])
def test_a_run_that_could_not_start_promises_nothing(exc):
    failure = describe_failure(exc, HOW)
    assert (failure.message, failure.exit_code) == (str(exc), UNUSABLE)
    assert "finished work" not in failure.message


def test_server_down_before_the_run_has_no_resume_hint_but_during_it_has():
    exc = ServerUnreachable("no model server answers at http://x")
    assert describe_failure(exc, None).message == str(exc)
    during = describe_failure(exc, HOW)
    assert during.exit_code == UNUSABLE and during.message.endswith(f"{HOW}; finished work is kept.")


@pytest.mark.parametrize(
    ("exc", "code", "start"),
    [
        (EngineError("gave up after 600 s"), STOPPED, "the run stopped: gave up after 600 s"),
        (RunAborted("BUDGET.MAX_REQUESTS = 10 reached"), STOPPED, "the run stopped: BUDGET.MAX_REQUESTS"),
        (KeyboardInterrupt(), INTERRUPTED, "interrupted."),
        (OSError(errno.ENOSPC, "No space left on device"), STOPPED, "the run stopped:"),
    ],
)
def test_a_stopped_run_says_how_to_resume(exc, code, start):
    failure = describe_failure(exc, HOW)
    assert failure.exit_code == code and failure.expected
    assert failure.message.startswith(start) and HOW in failure.message


def test_a_bug_is_marked_unexpected():
    failure = describe_failure(ZeroDivisionError("x"), HOW)
    assert not failure.expected and failure.message.startswith("unexpected error: ZeroDivisionError")
