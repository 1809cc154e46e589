"""Critical-path priorities: the request with the most expected work behind it goes first."""

from __future__ import annotations

import asyncio

from generation_functions.concurrency import RequestLimiter
from generation_functions.scheduling import REQUEST_PRIORITY, PathEstimator, pair_characters

CHAIN = ("questions", "question_check", "answer_check", "repair", "conversation")


def test_before_anything_is_seen_every_step_counts_one_unit():
    paths = PathEstimator(CHAIN, writer="questions", conversation="conversation")
    assert paths.remaining("questions") == 5
    assert paths.remaining("answer_check", pair_characters=900) == 3
    assert paths.remaining("conversation") == 1
    # Earlier steps have more behind them, so they go first.
    assert paths.priority("questions") < paths.priority("question_check") < paths.priority("conversation")


def test_step_times_are_learned_from_answers():
    paths = PathEstimator(CHAIN, writer="questions", conversation="conversation")
    for seconds in (0.4, 0.6):
        paths.observe("question_check", seconds, {}, "RELEVANT")
    paths.observe("answer_check", 0.3, {}, "ACCURATE")
    paths.observe("repair", 0.2, {}, "PASS")
    paths.observe("conversation", 2.0, {"question_answer_list": "x" * 100}, "...")
    assert paths.remaining("question_check") == 0.5 + 0.3 + 0.2 + 2.0


def test_a_conversation_is_foreseen_from_the_size_of_its_pairs():
    """Where time grows with what the model writes, a chunk with more to say
    has the longer road ahead; its checks go before those of a short chunk."""
    paths = PathEstimator(CHAIN, writer="questions", conversation="conversation")
    for written in (400, 800, 1200):  # question generation: 1 s + 2 ms per character written
        paths.observe("questions", 1.0 + 0.002 * written, {}, "q" * written)
    assert paths.remaining("conversation", pair_characters=1000) == 1.0 + 0.002 * 1000
    assert paths.priority("answer_check", pair_characters=2000) < paths.priority("answer_check", pair_characters=500)
    # Once conversations have been seen, their own line takes over.
    for size in (100, 300):
        paths.observe("conversation", 0.5 + 0.01 * size, {"question_answer_list": "p" * size}, "...")
    assert abs(paths.remaining("conversation", pair_characters=200) - 2.5) < 1e-9


def test_a_server_whose_time_does_not_grow_with_the_answer_gives_a_flat_forecast():
    paths = PathEstimator(CHAIN, writer="questions", conversation="conversation")
    for written in (300, 600, 900):
        paths.observe("questions", 0.3, {}, "q" * written)
    short, long = (paths.remaining("conversation", pair_characters=size) for size in (50, 5000))
    assert abs(short - 0.3) < 1e-9 and abs(long - 0.3) < 1e-9


def test_a_skipped_step_is_left_out_of_the_chain():
    paths = PathEstimator([step for step in CHAIN if step != "question_check"], writer="questions", conversation="conversation")
    paths.observe("question_check", 9.0, {}, "")  # not part of this run: ignored
    assert paths.remaining("questions") == 4


def test_pair_characters_counts_questions_and_answers():
    assert pair_characters([("ab", "cde"), ("f", "")]) == 6


def test_the_limiter_serves_waiting_requests_by_priority_then_arrival():
    async def run():
        limiter = RequestLimiter(1)
        order: list[str] = []

        async def request(name: str, priority: float, hold: float = 0.0) -> None:
            REQUEST_PRIORITY.set(priority)
            async with limiter:
                order.append(name)
                await asyncio.sleep(hold)

        first = asyncio.create_task(request("holder", 0.0, 0.02))
        await asyncio.sleep(0)
        waiting = [
            asyncio.create_task(request(name, priority))
            for name, priority in (("late-a", -1.0), ("early", -5.0), ("late-b", -1.0), ("last", 3.0))
        ]
        await asyncio.gather(first, *waiting)
        return order

    assert asyncio.run(run()) == ["holder", "early", "late-a", "late-b", "last"]


def test_a_step_before_the_writer_does_not_train_the_conversation_forecast():
    """With a step ahead of question generation (a chunk filter), the writer is named, not assumed first."""
    chain = ("filter", "questions", "answer_check", "conversation")
    paths = PathEstimator(chain, writer="questions", conversation="conversation")
    paths.observe("filter", 9.0, {}, "x" * 10)
    paths.observe("filter", 1.0, {}, "x" * 1000)
    assert paths.remaining("conversation", pair_characters=1000) == 1.0  # no line learned from the filter
    paths.observe("questions", 1.0, {}, "x" * 100)
    paths.observe("questions", 2.0, {}, "x" * 200)
    assert paths.remaining("conversation", pair_characters=400) == 4.0


def test_a_chain_that_does_not_end_in_the_conversation_is_refused():
    import pytest

    with pytest.raises(ValueError):
        PathEstimator(("questions", "conversation", "repair"), writer="questions", conversation="conversation")
