"""The engine against a server that answers wrongly on purpose: no answer it sends may crash a run,
stall it, buy back spent tokens or leak the API key."""

from __future__ import annotations

import asyncio
import email.utils
import math
import threading
import time

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine_wrapper_class import (
    Completion,
    EngineWrapper,
    RequestStats,
    RetryPolicy,
    TransientError,
    decode_completion,
    make_backends,
    retry_after_seconds,
)
from generation_functions.budget import Budget, BudgetExceeded, plausible_usage
from generation_functions.concurrency import RequestLimiter
from generation_functions.errors import EngineError, RequestRejected
from tests.hostile_server import Exchange, HostileServer, Reply, completion

SECRET = "sk-hostile-7c1e-never-print-me"
MESSAGES = [{"role": "user", "content": "Write one question about VerusID. " * 20}]


def engine_for(server: HostileServer, key: str = "", retry_seconds: float = 5.0, budget=None) -> EngineWrapper:
    backends = make_backends("api", False, [server.base_url], key, "m", timeout=5.0)
    policy = RetryPolicy(retry_seconds, base_delay=0.01)
    return EngineWrapper(backends, RequestLimiter(2), policy, RequestStats(), "m", budget)


def bounded(engine: EngineWrapper, count: int = 1, seconds: float = 20.0) -> dict:
    """Run `count` requests in a thread of their own: an engine that waits forever (a NaN
    sleep) fails the test instead of hanging it."""
    outcome: dict = {}

    async def requests():
        try:
            return await asyncio.gather(*(engine.generate(MESSAGES, _sampling()) for _ in range(count)))
        finally:
            await engine.close()

    def target() -> None:
        started = time.monotonic()
        try:
            outcome["value"] = asyncio.run(requests())
        except BaseException as exc:  # noqa: BLE001 - the test looks at it
            outcome["error"] = exc
        outcome["seconds"] = time.monotonic() - started

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"the engine was still waiting after {seconds}s"
    return outcome


def _sampling():
    from engine_wrapper_class import Sampling

    return Sampling(max_tokens=200)


def first_then_fine(first: Reply):
    def reply(exchange: Exchange) -> Reply:
        return first if exchange.number == 0 else Reply(200, completion("fine"))

    return reply


# ---------------------------------------------------------------- malformed bodies

MALFORMED = {
    "not json": b"<html>502 Bad Gateway</html>",
    "empty body": b"",
    "null": b"null",
    "a list": b"[]",
    "a string": b'"hello"',
    "a number": b"42",
    "NaN literal": b'{"choices": NaN}',
    "no choices": {"id": "x"},
    "empty choices": {"choices": []},
    "choices an object": {"choices": {"0": {"message": {"content": "hi"}}}},
    "choice a string": {"choices": ["hello"]},
    "choice null": {"choices": [None]},
    "no message": {"choices": [{"finish_reason": "stop"}]},
    "message a string": {"choices": [{"message": "hello"}]},
    "message a list": {"choices": [{"message": ["hello"]}]},
    "content a list": {"choices": [{"message": {"content": ["hel", "lo"]}}]},
    "content a number": {"choices": [{"message": {"content": 42}}]},
    "content an object": {"choices": [{"message": {"content": {"text": "hello"}}}]},
    "content true": {"choices": [{"message": {"content": True}}]},
    "lone surrogate": b'{"choices": [{"message": {"content": "\\ud800"}}]}',
    "deep nesting": b"[" * 100_000 + b"]" * 100_000,
    "invalid utf-8": b'{"choices": [{"message": {"content": "\xff\xfe"}}]}',
}


@pytest.mark.parametrize("body", MALFORMED.values(), ids=MALFORMED.keys())
def test_a_body_that_is_not_a_completion_is_retried_never_a_traceback(body):
    with HostileServer(first_then_fine(Reply(200, body))) as server:
        engine = engine_for(server)
        outcome = bounded(engine)
    assert "error" not in outcome, repr(outcome.get("error"))
    assert outcome["value"][0].text == "fine"
    assert engine.stats.retry_reasons == {"malformed response": 1}


GARBLED_METADATA = {
    "usage a list": {"usage": [10, 20]},
    "usage a string": {"usage": "lots"},
    "counts as strings": {"usage": {"prompt_tokens": "12", "completion_tokens": "3"}},
    "counts negative": {"usage": {"prompt_tokens": -500, "completion_tokens": -90}},
    "counts fractional": {"usage": {"prompt_tokens": 1.5, "completion_tokens": 0.25}},
    "counts true": {"usage": {"prompt_tokens": True, "completion_tokens": True}},
    "counts absurd": {"usage": {"prompt_tokens": 10**15, "completion_tokens": 10**15}},
    "counts nested": {"usage": {"prompt_tokens": {"n": 1}, "completion_tokens": [1]}},
    "usage missing": {"usage": {}},
}


@pytest.mark.parametrize("garbled", GARBLED_METADATA.values(), ids=GARBLED_METADATA.keys())
def test_garbled_usage_keeps_the_paid_answer_and_counts_an_estimate(garbled):
    body = {**completion("The answer the model wrote, kept."), **garbled, "choices": [
        {"index": 0, "message": {"role": "assistant", "content": "The answer the model wrote, kept."}, "finish_reason": 7}
    ]}
    with HostileServer(lambda exchange: Reply(200, body)) as server:
        engine = engine_for(server)
        outcome = bounded(engine)
    assert "error" not in outcome, repr(outcome.get("error"))
    result = outcome["value"][0]
    assert result.text == "The answer the model wrote, kept."
    assert result.finish_reason == ""  # 7 is not a finish reason
    assert engine.stats.retries == 0 and engine.stats.estimated_usage == 1
    prompt_chars = len(MESSAGES[0]["content"])
    assert result.prompt_tokens == math.ceil(prompt_chars / 4)
    assert result.completion_tokens == math.ceil(len(result.text) / 4)


# Property: whatever JSON a server sends, decoding gives a completion with sane fields or a
# transient "malformed response", never another exception.

KEYS = st.sampled_from(["choices", "message", "content", "text", "usage", "prompt_tokens", "completion_tokens",
                        "finish_reason", "role", "error", "x"])
SCALARS = st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20)
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=5), max_leaves=30)


def _check_decoded(raw: bytes, chat: bool) -> None:
    try:
        result = decode_completion(raw, chat)
    except TransientError as exc:
        assert exc.reason == "malformed response"
        return
    assert isinstance(result, Completion)
    assert isinstance(result.text, str) and isinstance(result.finish_reason, str)
    for count in (result.prompt_tokens, result.completion_tokens):
        assert count is None or (isinstance(count, int) and not isinstance(count, bool) and count >= 0)


@settings(max_examples=400, deadline=None)
@given(JSON, st.booleans())
def test_decoding_any_json_gives_a_completion_or_a_malformed_response(value, chat):
    _check_decoded(orjson.dumps(value), chat)


@settings(max_examples=300, deadline=None)
@given(JSON, JSON, st.booleans())
def test_decoding_a_completion_with_random_parts_never_raises_anything_else(content, usage, chat):
    choice = {"message": {"content": content}, "text": content, "finish_reason": content}
    _check_decoded(orjson.dumps({"choices": [choice], "usage": usage}), chat)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.booleans())
def test_decoding_any_bytes_gives_a_completion_or_a_malformed_response(raw, chat):
    _check_decoded(raw, chat)


# ---------------------------------------------------------------- token usage and the caps


@settings(max_examples=400, deadline=None)
@given(
    st.none() | st.integers(-(10**18), 10**18),
    st.none() | st.integers(-(10**18), 10**18),
    st.text(max_size=300),
    st.text(max_size=300),
    st.integers(1, 10_000),
)
def test_counted_usage_is_never_negative_nor_out_of_proportion(prompt_tokens, completion_tokens, prompt, answer, max_tokens):
    counts = plausible_usage(prompt_tokens, completion_tokens, prompt, answer, max_tokens)
    assert len(prompt) // 16 <= counts.prompt <= len(prompt.encode("utf-8", "replace")) + 4096
    assert len(answer) // 16 <= counts.completion <= max(max_tokens, len(answer.encode("utf-8", "replace"))) + 4096
    if counts.prompt != prompt_tokens or counts.completion != completion_tokens:
        assert counts.estimated


def test_negative_usage_cannot_defeat_the_token_cap():
    """A server reporting negative usage used to lower the count of tokens spent, so
    BUDGET.MAX_TOKENS never triggered; the estimate counts what was asked and answered."""
    negative = {"prompt_tokens": -100_000, "completion_tokens": -100_000}
    with HostileServer(lambda exchange: Reply(200, completion("An answer. " * 10, usage=negative))) as server:
        budget = Budget(max_tokens=600)
        engine = engine_for(server, budget=budget)
        outcome = bounded(engine, count=12)
        made = server.count()
    assert isinstance(outcome.get("error"), BudgetExceeded), outcome
    assert budget.tokens >= 600
    assert made < 12  # stopped by the cap, not by running out of work


# ---------------------------------------------------------------- Retry-After


NOW = 1_700_000_000.0


@pytest.mark.parametrize(
    "value,seconds",
    [
        ("2", 2.0),
        ("0", 0.0),
        (" 1.5 ", 1.5),
        ("-5", 0.0),
        ("nan", None),
        ("NaN", None),
        ("inf", None),
        ("-inf", None),
        ("infinity", None),
        ("1e400", None),  # overflows to inf
        ("soon", None),
        ("", None),
        (None, None),
        (email.utils.formatdate(NOW + 30, usegmt=True), 30.0),
        (email.utils.formatdate(NOW - 30, usegmt=True), 0.0),
        ("Fri, 31 Dec 9999 23:59:59 GMT", 253402300799.0 - NOW),
        ("Mon, 99 Foo 2024 25:61:61 GMT", None),
    ],
)
def test_retry_after_is_read_as_seconds_or_ignored(value, seconds):
    parsed = retry_after_seconds(value, now=NOW)
    assert parsed == (pytest.approx(seconds) if seconds is not None else None)


@pytest.mark.parametrize("hint", [float("nan"), float("inf"), -1.0, 1e300, None])
def test_every_wait_is_finite_and_capped(hint):
    policy = RetryPolicy(max_seconds=30, base_delay=0.5, max_delay=10)
    for attempt in (0, 5, 80, 10_000):
        delay = policy.delay(attempt, hint)
        assert math.isfinite(delay) and 0 <= delay <= 10


@pytest.mark.parametrize("hint", ["nan", "inf", "-inf", "-3", "garbage", "Sun, 06 Nov 1994 08:49:37 GMT"])
def test_an_unusable_retry_after_is_retried_promptly(hint):
    """Retry-After: nan used to make the engine sleep forever; inf, a minute (the cap), which the
    retry window could not afford, so the request failed."""
    with HostileServer(first_then_fine(Reply(429, {"error": {"message": "slow down"}}, {"Retry-After": hint}))) as server:
        engine = engine_for(server, retry_seconds=5.0)
        outcome = bounded(engine)
    assert "error" not in outcome, repr(outcome.get("error"))
    assert outcome["seconds"] < 3
    assert engine.stats.retry_reasons == {"HTTP 429": 1}


def test_an_http_date_retry_after_is_honoured():
    def reply(exchange: Exchange) -> Reply:
        if exchange.number == 0:
            when = email.utils.formatdate(time.time() + 2, usegmt=True)
            return Reply(429, {"error": {"message": "later"}}, {"Retry-After": when})
        return Reply(200, completion("fine"))

    with HostileServer(reply) as server:
        engine = engine_for(server, retry_seconds=10.0)
        outcome = bounded(engine)
    assert outcome["value"][0].text == "fine"
    assert 0.8 <= outcome["seconds"] < 6  # the date has whole seconds


def test_a_huge_retry_after_gives_up_within_the_retry_window():
    with HostileServer(lambda exchange: Reply(429, {"error": {"message": "x"}}, {"Retry-After": "1e12"})) as server:
        engine = engine_for(server, retry_seconds=3.0)
        outcome = bounded(engine)
    assert isinstance(outcome.get("error"), EngineError) and "HTTP 429" in str(outcome["error"])
    assert outcome["seconds"] <= 3.5


# ---------------------------------------------------------------- the API key echoed


def test_an_echoed_api_key_is_redacted_from_errors_and_answers():
    def reply(exchange: Exchange) -> Reply:
        key = exchange.authorization.removeprefix("Bearer ")
        if exchange.number == 0:
            return Reply(200, completion(f"Your key is {key}, thanks."))
        return Reply(400, {"error": {"message": f"invalid request for key {key}: " + "x" * 290 + key}})

    with HostileServer(reply) as server:
        engine = engine_for(server, key=SECRET)
        answered = bounded(engine)
        engine = engine_for(server, key=SECRET)
        refused = bounded(engine)
    assert answered["value"][0].text == "Your key is [redacted], thanks."
    error = refused["error"]
    assert isinstance(error, RequestRejected)
    assert SECRET not in str(error) and SECRET[:12] not in str(error) and SECRET not in error.detail
    assert "[redacted]" in str(error)
