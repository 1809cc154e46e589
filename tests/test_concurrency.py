"""The run-wide request limiter: slots, lowering on overload, rising again, stopping."""

from __future__ import annotations

import asyncio
import time

import pytest

from generation_functions.concurrency import RequestLimiter
from generation_functions.errors import RequestsStopped


async def hold(limiter: RequestLimiter, seconds: float, log: list) -> None:
    async with limiter:
        log.append(limiter.in_flight)
        await asyncio.sleep(seconds)


def test_never_more_than_the_limit_in_flight_and_first_come_first_served():
    async def run():
        limiter = RequestLimiter(3)
        order: list[int] = []

        async def one(number: int) -> None:
            async with limiter:
                order.append(number)
                assert limiter.in_flight <= 3
                await asyncio.sleep(0.01)

        await asyncio.gather(*(one(n) for n in range(10)))
        return limiter, order

    limiter, order = asyncio.run(run())
    assert order == list(range(10))
    assert limiter.peak == 3 and limiter.in_flight == 0


def test_an_overload_halves_the_slots_once_per_load_level():
    limiter = RequestLimiter(40)
    sent = time.monotonic()
    limiter.overloaded(sent, "timeout")
    assert limiter.allowed == 20
    # More timeouts of requests sent before that cut describe the same load.
    limiter.overloaded(sent, "timeout")
    assert limiter.allowed == 20
    limiter.overloaded(time.monotonic() + 1, "HTTP 429")
    assert limiter.allowed == 10 and limiter.lowest == 10 and limiter.cuts == 2


def test_successes_raise_the_slots_slowly_and_never_past_the_limit():
    limiter = RequestLimiter(8)
    limiter.overloaded(time.monotonic(), "timeout")
    assert limiter.allowed == 4
    for _ in range(4):
        limiter.succeeded()
    assert 4.9 <= limiter.allowed <= 5.0  # one more per window of four successes
    for _ in range(1000):
        limiter.succeeded()
    assert limiter.allowed == 8


def test_slots_never_drop_below_one():
    limiter = RequestLimiter(4)
    for step in range(10):
        limiter.overloaded(time.monotonic() + step, "timeout")
    assert limiter.allowed == 1 and limiter.lowest == 1


def test_a_lowered_limit_holds_new_requests_until_enough_have_finished():
    async def run():
        limiter = RequestLimiter(4)
        limiter.overloaded(time.monotonic(), "HTTP 503")  # two slots now
        seen: list[int] = []
        await asyncio.gather(*(hold(limiter, 0.01, seen) for _ in range(6)))
        return limiter, seen

    limiter, seen = asyncio.run(run())
    assert max(seen) == 2 and limiter.peak == 2


def test_stopping_refuses_waiting_and_new_requests_but_lets_those_in_flight_finish():
    async def run():
        limiter = RequestLimiter(1)
        finished: list[str] = []

        async def first() -> None:
            async with limiter:
                await asyncio.sleep(0.02)
                finished.append("in flight")

        async def waiting() -> None:
            async with limiter:
                finished.append("waiting one went out")

        tasks = [asyncio.create_task(first()), asyncio.create_task(waiting())]
        await asyncio.sleep(0.005)
        limiter.stop(OSError(28, "No space left on device"))
        outcomes = await asyncio.gather(*tasks, return_exceptions=True)
        with pytest.raises(RequestsStopped):
            async with limiter:
                pass
        return limiter, finished, outcomes

    limiter, finished, outcomes = asyncio.run(run())
    assert finished == ["in flight"]
    assert isinstance(outcomes[1], RequestsStopped) and isinstance(outcomes[1].cause, OSError)
    assert limiter.in_flight == 0


def test_a_cancelled_wait_gives_its_slot_on():
    async def run():
        limiter = RequestLimiter(1)
        seen: list[int] = []
        holder = asyncio.create_task(hold(limiter, 0.02, seen))
        await asyncio.sleep(0)
        cancelled = asyncio.create_task(hold(limiter, 0.0, seen))
        later = asyncio.create_task(hold(limiter, 0.0, seen))
        await asyncio.sleep(0.005)
        cancelled.cancel()
        await asyncio.gather(holder, later, cancelled, return_exceptions=True)
        return limiter, seen

    limiter, seen = asyncio.run(run())
    assert seen == [1, 1] and limiter.in_flight == 0


def test_mean_in_flight_is_the_time_average():
    async def run():
        limiter = RequestLimiter(2)
        await asyncio.gather(hold(limiter, 0.05, []), hold(limiter, 0.05, []))
        await hold(limiter, 0.05, [])
        return limiter

    limiter = asyncio.run(run())
    assert 1.3 <= limiter.mean_in_flight <= 1.7  # 2 for half the time, then 1
