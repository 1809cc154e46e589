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


# ---------------------------------------------------------------- a server that refuses the configuration


def _refused(status: int, detail: str, url: str = "http://127.0.0.1:8080/v1", endpoint: str = "/chat/completions"):
    from generation_functions.errors import RequestRejected

    return RequestRejected(f"refused (HTTP {status}): {detail}", status=status, detail=detail, url=url, endpoint=endpoint)


SHAPE_ARGS = {"model": "large-model", "model_setting": "API.LARGE_LOGICAL_MODEL", "sampling_section": "SAMPLING.CONVERSATION"}


@pytest.mark.parametrize(
    "status,detail,url,endpoint,setting",
    [
        (404, "The model `large-model` does not exist.", "http://h/v1", "/chat/completions", "API.LARGE_LOGICAL_MODEL: the server does not serve 'large-model'"),
        (404, "model 'large-model' not found, try pulling it first", "http://h/v1", "/chat/completions", "API.LARGE_LOGICAL_MODEL"),
        (404, "no endpoint /v2/chat/completions", "http://h/v2", "/chat/completions", "API.BASE_URL: the server has no /chat/completions under 'http://h/v2'"),
        (404, "Not Found", "http://h/v1", "/completions", "SYSTEM.COMPLETION_MODE: false"),
        (404, "Not Found", "http://h/v1 ", "/chat/completions", "API.BASE_URL: 'http://h/v1 ' has a space"),
        (405, "Method Not Allowed", "http://h", "/chat/completions", "API.BASE_URL"),
        (400, "Invalid 'stop': array too long. Expected an array with maximum length 4", "http://h/v1", "", "SYSTEM.STOP_SEQUENCES"),
        (400, "max_tokens must be at most 4096", "http://h/v1", "", "SAMPLING.CONVERSATION.MAX_TOKENS"),
        (400, "This model's maximum context length is 8192 tokens", "http://h/v1", "", "SYSTEM.CHUNK_SIZE"),
        (413, "Payload Too Large", "http://h/v1", "", "SYSTEM.CHUNK_SIZE"),
        (422, "temperature: Input should be less than or equal to 1", "http://h/v1", "", "SAMPLING.CONVERSATION.TEMPERATURE"),
        (400, "something else entirely", "http://h/v1", "", "API.BASE_URL, API.LARGE_LOGICAL_MODEL or SAMPLING.CONVERSATION"),
    ],
)
def test_the_setting_to_fix_is_read_from_the_refusal(status, detail, url, endpoint, setting):
    from generation_functions.rejections import RequestShape, setting_to_fix

    assert setting in setting_to_fix(_refused(status, detail, url, endpoint), RequestShape(**SHAPE_ARGS))


def test_a_refused_configuration_exits_2_with_the_setting_whoever_shows_it():
    from generation_functions.rejections import RequestShape, rejected_configuration
    from webui.run_controller import HOW_TO_RESUME, failure_message

    exc = rejected_configuration(_refused(404, "The model `large-model` does not exist."), RequestShape(**SHAPE_ARGS), "every conversation request")
    before = describe_failure(exc, None)
    during = describe_failure(exc, HOW)
    assert before.exit_code == during.exit_code == UNUSABLE  # a plain rerun would be refused the same way
    assert before.message.startswith("the server at http://127.0.0.1:8080/v1 refused every conversation request (HTTP 404: The model")
    assert "To fix it: API.LARGE_LOGICAL_MODEL" in before.message and "finished work" not in before.message
    assert during.message.startswith("the run stopped: the server at") and during.message.endswith(f"Then {HOW}; finished work is kept.")
    assert failure_message(exc) == describe_failure(exc, HOW_TO_RESUME).message


def test_one_chunk_refused_again_and_again_is_not_a_refused_configuration():
    from generation_functions.errors import ConfigurationRejected
    from generation_functions.rejections import RejectionWatch, RequestShape

    watch = RejectionWatch("question_check", RequestShape("small-model"))
    too_long = _refused(400, "the request exceeds the available context size")
    for _ in range(10):  # every vote and pair of one chunk
        watch.refusal(too_long, "the long chunk")
    watch.answer()
    watch.refusal(too_long, "chunk a")
    watch.refusal(too_long, "chunk b")
    watch.answer()  # answers in between: refusals here and there only lose their own work
    watch.refusal(too_long, "chunk c")
    watch.refusal(_refused(400, "another message"), "chunk d")
    watch.refusal(too_long, "chunk e")
    with pytest.raises(ConfigurationRejected, match="question_check requests for 3 chunks in a row"):
        watch.refusal(too_long, "chunk f")
        watch.refusal(too_long, "chunk g")


def test_a_step_never_answered_is_refused_configuration_even_with_varying_messages():
    from generation_functions.errors import ConfigurationRejected
    from generation_functions.rejections import RejectionWatch, RequestShape

    watch = RejectionWatch("conversation", RequestShape("large-model"))
    for number in range(4):
        watch.refusal(_refused(400, f"request id {number}: rejected"), f"chunk {number}")
    with pytest.raises(ConfigurationRejected, match="every conversation request so far"):
        watch.refusal(_refused(400, "request id 9: rejected"), "chunk 9")
    ended = RejectionWatch("conversation", RequestShape("large-model"))
    ended.refusal(_refused(400, "no"), "only chunk")
    ended.check_finished()  # one refusal says little
    ended.refusal(_refused(400, "no"), "only chunk")
    with pytest.raises(ConfigurationRejected, match="every conversation request"):
        ended.check_finished()
