"""The run-wide request limiter: slots, lowering on overload, rising again, stopping."""

from __future__ import annotations

import asyncio
import random
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


def test_a_timeout_halves_the_slots_once_per_load_level():
    limiter = RequestLimiter(40)
    sent = time.monotonic()
    limiter.overloaded(sent, "timeout")
    assert limiter.allowed == 20
    # More timeouts of requests sent before that cut describe the same load.
    limiter.overloaded(sent, "timeout")
    assert limiter.allowed == 20
    limiter.overloaded(time.monotonic() + 1, "timeout")
    assert limiter.allowed == 10 and limiter.lowest == 10 and limiter.cuts == 2


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_scattered_429s_among_answers_do_not_collapse_the_limit():
    """15 % of requests refused with 429 at random, whatever the load, each at once while
    answers take 50 ms: halving on each 429 sent after the last cut held about one
    request in flight of eight; weighing their share once per round trip keeps near eight."""
    clock = Clock()
    limiter = RequestLimiter(8, clock=clock)
    rng = random.Random(3)
    seen = []
    for _ in range(4000):
        clock.now += 0.05 / 8  # eight outcomes per 50 ms round trip
        if rng.random() < 0.15:
            limiter.overloaded(clock.now - 0.001, "HTTP 429")
        else:
            limiter.succeeded(0.05)
        seen.append(int(limiter.allowed))  # the slots
    assert limiter.lowest >= 3
    assert sum(seen) / len(seen) >= 6.5  # about 7.3 of 8 (it was about 1.5)


def test_load_signals_lower_the_limit_at_most_once_per_round_trip():
    clock = Clock()
    limiter = RequestLimiter(16, clock=clock)
    limiter.succeeded(0.2)  # answers take 200 ms
    for _ in range(40):  # forty 429s within 100 ms, each sent after the previous one came back
        clock.now += 0.0025
        limiter.overloaded(clock.now - 0.001, "HTTP 429")
    assert limiter.cuts == 0
    clock.now += 0.2
    limiter.overloaded(clock.now - 0.001, "HTTP 429")
    assert limiter.cuts == 1 and 8 <= limiter.allowed < 9  # nearly all refused: about halved


def test_a_server_that_refuses_most_requests_still_brings_the_limit_down():
    clock = Clock()
    limiter = RequestLimiter(50, clock=clock)
    rng = random.Random(5)
    for _ in range(60):  # sixty round trips of 100 ms, three requests in four refused
        for _ in range(20):
            clock.now += 0.005
            if rng.random() < 0.75:
                limiter.overloaded(clock.now - 0.001, "HTTP 503")
            else:
                limiter.succeeded(0.1)
    assert limiter.allowed <= 8


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
        limiter.overloaded(time.monotonic(), "timeout")  # two slots now
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
