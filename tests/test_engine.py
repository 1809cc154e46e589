"""The engine against the fake server over real HTTP: modes, retries, limits."""

from __future__ import annotations

import asyncio
import time

import pytest

from engine_wrapper_class import (
    EngineWrapper,
    RequestStats,
    RetryPolicy,
    Sampling,
    make_backends,
)
from generation_functions.concurrency import RequestLimiter
from generation_functions.errors import EngineError, RequestRejected, RequestsStopped, ServerUnreachable
from tests.fake_llm_server import FakeLLMServer, FaultPlan
from tests.hostile_server import Exchange, HostileServer, Reply, completion

MESSAGES = [
    {"role": "system", "content": "Write **QUESTION:** blocks."},
    {"role": "user", "content": '"""\nVerus supports VerusID identities that anyone can register on chain.\n"""'},
]


def engine_for(server: FakeLLMServer, mode="api", completion=False, limit=4, retry_seconds=10.0, key="", urls=None):
    base = server.cohere_url if mode == "cohere" else server.base_url
    backends = make_backends(mode, completion, urls or [base], key, "small-model", timeout=2.0)
    return EngineWrapper(backends, RequestLimiter(limit), RetryPolicy(retry_seconds, base_delay=0.01), RequestStats(), "small-model")


async def generate(engine, prompt=MESSAGES, sampling=Sampling(stop=("### Instruction:",))):
    try:
        return await engine.generate(prompt, sampling)
    finally:
        await engine.close()


@pytest.mark.parametrize("mode,completion", [("api", False), ("api", True), ("cohere", False)])
def test_every_mode_returns_one_shape(fake_server, mode, completion):
    prompt = MESSAGES[0]["content"] + "\n### Instruction:\n" + MESSAGES[1]["content"] + "\n### Response:\n" if completion else MESSAGES
    result = asyncio.run(generate(engine_for(fake_server, mode, completion), prompt))
    assert "**QUESTION:**" in result.text
    assert result.finish_reason.lower() in ("stop", "complete")
    assert result.prompt_tokens > 0 and result.completion_tokens > 0
    request = fake_server.requests[-1]
    expected_path = {"api": "/v1/completions" if completion else "/v1/chat/completions", "cohere": "/v2/chat"}[mode]
    assert request.path == expected_path
    assert request.model == "small-model"


def test_stop_sequences_are_sent_only_when_asked(fake_server):
    asyncio.run(generate(engine_for(fake_server)))
    assert fake_server.requests[-1].body["stop"] == ["### Instruction:"]
    asyncio.run(generate(engine_for(fake_server), sampling=Sampling()))
    assert "stop" not in fake_server.requests[-1].body


@pytest.mark.parametrize("fault", ["429", "500", "502", "503", "drop"])
def test_transient_faults_are_retried(fault):
    with FakeLLMServer(faults=FaultPlan(rate=0.5, kinds=(fault,), seed=3)) as server:
        engine = engine_for(server)
        results = asyncio.run(_many(engine, 12))
        assert all("**QUESTION:**" in r.text for r in results)
        assert server.faults_injected[fault] > 0
        assert engine.stats.retries == server.faults_injected[fault]
        assert engine.stats.succeeded == 12


async def _many(engine, count):
    try:
        return await asyncio.gather(*(engine.generate(MESSAGES, Sampling()) for _ in range(count)))
    finally:
        await engine.close()


def test_a_plain_500_is_retried_without_lowering_the_limit():
    with FakeLLMServer(latency=0.02, faults=FaultPlan(rate=0.4, kinds=("500",), seed=4)) as server:
        backends = make_backends("api", False, [server.base_url], "", "small-model", timeout=2.0)
        engine = EngineWrapper(backends, RequestLimiter(4), RetryPolicy(30), RequestStats(), "small-model")
        results = asyncio.run(_many(engine, 20))
        assert len(results) == 20 and server.faults_injected["500"] > 0
    assert engine.limiter.cuts == 0 and engine.limiter.lowest == 4


def test_a_fault_that_says_nothing_of_load_is_retried_after_about_an_answers_time():
    """A scattered HTTP 500 from a server answering in 50 ms used to wait 0.5-1 s (the base
    delay) before its retry; it now waits no longer than an answer takes, doubling after."""
    policy = RetryPolicy(600)  # the default base delay, 1 s
    assert all(policy.delay(0, None, round_trip=0.05) <= 0.05 for _ in range(100))
    assert all(0.1 <= policy.delay(2, None, round_trip=0.05) <= 0.2 for _ in range(100))
    assert all(policy.delay(0, None, round_trip=30.0) <= 1.0 for _ in range(100))  # never above the base delay
    assert all(0.5 <= policy.delay(0, None) <= 1.0 for _ in range(100))  # load: the full base delay

    def reply(exchange: Exchange) -> Reply:  # the second request fails once with a plain 500
        return Reply(500, {"error": {"message": "oops"}}) if exchange.number == 1 else Reply(200, completion("fine"))

    with HostileServer(reply) as server:
        backends = make_backends("api", False, [server.base_url], "", "small-model", timeout=2.0)
        engine = EngineWrapper(backends, RequestLimiter(1), RetryPolicy(30), RequestStats(), "small-model")

        async def run():
            try:
                await engine.generate(MESSAGES, Sampling())  # learns how long an answer takes
                started = time.monotonic()
                await engine.generate(MESSAGES, Sampling())
                return time.monotonic() - started
            finally:
                await engine.close()

        took = asyncio.run(run())
    assert engine.stats.retry_reasons == {"HTTP 500": 1}
    assert took < 0.45  # it used to wait 0.5 s at the least


def test_timeouts_are_retried():
    with FakeLLMServer(faults=FaultPlan(rate=0.3, kinds=("timeout",), seed=1, timeout_seconds=3.0)) as server:
        engine = engine_for(server)
        results = asyncio.run(_many(engine, 6))
        assert len(results) == 6
        assert engine.stats.retry_reasons.get("timeout", 0) == server.faults_injected["timeout"] > 0


def test_retry_after_is_honoured():
    server = FakeLLMServer(faults=FaultPlan(rate=1.0, kinds=("429",)))
    with server:
        # Every request is refused with Retry-After: 0; the engine must give up
        # once the retry window is spent, with a message naming the cause.
        engine = engine_for(server, retry_seconds=0.5)
        started = time.monotonic()
        with pytest.raises(EngineError, match="HTTP 429"):
            asyncio.run(generate(engine))
        assert time.monotonic() - started < 5
        assert server.count() >= 2


def test_wrong_key_is_not_retried():
    with FakeLLMServer(api_key="right-key") as server:
        engine = engine_for(server, key="wrong-key")
        with pytest.raises(ServerUnreachable, match="rejected the API key") as info:
            asyncio.run(generate(engine))
        assert "wrong-key" not in str(info.value)
        assert server.count() == 0  # refused before it was recorded as a model request


def test_a_refused_request_is_not_retried():
    with FakeLLMServer(faults=FaultPlan(rate=1.0, kinds=("400",))) as server:
        with pytest.raises(RequestRejected, match="HTTP 400"):
            asyncio.run(generate(engine_for(server)))
        assert server.count() == 1


def test_unknown_endpoint_is_a_rejection(fake_server):
    backends = make_backends("api", False, [fake_server.base_url + "/nonexistent"], "", "m", 2.0)
    broken = EngineWrapper(backends, RequestLimiter(2), RetryPolicy(2, base_delay=0.01), RequestStats(), "m")
    with pytest.raises(RequestRejected, match="HTTP 404"):
        asyncio.run(generate(broken))


def test_concurrency_limit_counts_requests_in_flight_across_engines():
    with FakeLLMServer(latency=0.05) as server:
        limiter = RequestLimiter(3)
        stats = RequestStats()

        def one(model):
            return EngineWrapper(make_backends("api", False, [server.base_url], "", model, 5.0), limiter, RetryPolicy(5), stats, model)

        small, large = one("small"), one("large")

        async def run():
            try:
                await asyncio.gather(*(e.generate(MESSAGES, Sampling()) for e in [small, large] * 6))
            finally:
                await small.close()
                await large.close()

        asyncio.run(run())
        assert server.peak_in_flight == 3
        assert limiter.peak == 3
        # Twelve 50 ms requests through three slots: close to three in flight throughout.
        assert 2.0 <= limiter.mean_in_flight <= 3.0
        assert stats.succeeded == 12


def test_requests_go_to_the_least_busy_replica_and_avoid_a_dead_one():
    with FakeLLMServer(latency=0.05) as first, FakeLLMServer(latency=0.05) as second:
        dead = "http://127.0.0.1:9/v1"  # nothing listens on the discard port
        engine = engine_for(first, limit=8, urls=[first.base_url, second.base_url, dead])
        asyncio.run(_many(engine, 24))
        assert first.count() > 4 and second.count() > 4
        assert first.count() + second.count() == 24
        assert engine.stats.retry_reasons.get("connection error", 0) <= 3


def test_an_answer_that_cannot_be_stored_stops_new_requests():
    """After one answer fails to store (a full disk), requests still waiting for
    a slot do not go out: each would be paid for and lost the same way."""
    with FakeLLMServer(latency=0.05) as server:
        engine = engine_for(server, limit=2)

        async def keep(completion):
            raise OSError(28, "No space left on device")

        async def run():
            try:
                return await asyncio.gather(
                    *(engine.generate(MESSAGES, Sampling(), keep) for _ in range(6)), return_exceptions=True
                )
            finally:
                await engine.close()

        outcomes = asyncio.run(run())
        assert server.count() == 2  # the two already in flight
        assert sum(isinstance(o, OSError) for o in outcomes) == 2
        stopped = [o for o in outcomes if isinstance(o, RequestsStopped)]
        assert len(stopped) == 4 and all(isinstance(o.cause, OSError) for o in stopped)
