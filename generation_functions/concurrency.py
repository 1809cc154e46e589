"""How many requests the run keeps in flight: CONCURRENCY_LIMIT, lowered while the server is overloaded.

One `RequestLimiter` is shared by every engine of a run. When every slot is
taken, a freed slot goes to the waiting request of lowest priority number
(generation_functions/scheduling.py: the one with the longest road ahead), first
come, first served among equals.

A server that is sent more requests than it can batch queues the rest, and a
queued request's wait counts against REQUEST_TIMEOUT. When the limit is far
above what the server can take (say 50 against a llama.cpp server with four
slots), queued requests time out, are sent again and queue again, while the
server may still be working on the copies given up on: the run makes no
progress and finally stops. So a timeout halves the number of requests allowed
in flight: the server is too slow to answer what it has.

An HTTP 429 or 503 says "too many" outright, but a server (or a proxy before
it) also sends them here and there whatever the load, and sends them at once,
long before the answers around them come back. So they are weighed once per
round trip (the smoothed time of an answer): the limit is cut by half their
share among the outcomes of that round trip, as DCTCP weighs its congestion
marks. All refused halves it; one 429 among seven answers lowers it by a
sixteenth. An HTTP 500 says nothing of load and lowers nothing.

After a timeout, the signals from requests sent before that cut are not
counted again: they describe the load that was already cut. Each answer
raises the limit again (by one per window of answers, as TCP does), never
above CONCURRENCY_LIMIT.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time
from typing import Callable, Optional

from generation_functions.errors import RequestsStopped
from generation_functions.scheduling import REQUEST_PRIORITY

log = logging.getLogger("verustoolkit")


# The server is too slow to answer what it holds: halve, whatever the share.
SLOW_REASONS = frozenset({"timeout"})
# The round trip assumed before the first answer has come back.
FIRST_ROUND_SECONDS = 1.0


class RequestLimiter:
    def __init__(self, limit: int, clock: Callable[[], float] = time.monotonic):
        self.limit = limit
        self._clock = clock  # the engine's clock (time.monotonic): sent_at values are read off it
        self.allowed = float(limit)  # the current ceiling, CONCURRENCY_LIMIT or lower
        self.lowest = limit
        self.cuts = 0
        self.in_flight = 0
        self.peak = 0
        self.stopped_by: Optional[BaseException] = None
        self._waiting: list[tuple[float, int, asyncio.Future]] = []  # a heap
        self._arrivals = itertools.count()
        self._last_cut = float("-inf")
        self._round_trip: Optional[float] = None  # smoothed seconds of an answer
        # The current round trip's outcomes: the share of load signals among them sizes the cut.
        self._round_started: Optional[float] = None
        self._round_answers = 0
        self._round_signals = 0
        self._round_reason = ""  # the latest load signal of the round, for the warning
        self._first_request_at: Optional[float] = None
        self._last_change = 0.0
        self._in_flight_seconds = 0.0  # the integral of in_flight over time

    # ------------------------------------------------------------ slots

    async def __aenter__(self) -> "RequestLimiter":
        if self.stopped_by is not None:
            raise RequestsStopped(self.stopped_by)
        if self._waiting or self.in_flight >= self._slots:
            granted = asyncio.get_running_loop().create_future()
            heapq.heappush(self._waiting, (REQUEST_PRIORITY.get(), next(self._arrivals), granted))
            try:
                await granted  # the slot is taken for us before this returns
            except asyncio.CancelledError:
                if granted.done() and not granted.cancelled() and granted.exception() is None:
                    self._leave()  # the slot came just as the wait was cancelled: pass it on
                raise
        else:
            self._enter()
        return self

    async def __aexit__(self, *exc_info) -> None:
        self._leave()

    @property
    def _slots(self) -> int:
        return max(1, int(self.allowed))

    def _enter(self) -> None:
        self._count(+1)
        self.peak = max(self.peak, self.in_flight)

    def _leave(self) -> None:
        self._count(-1)
        self._grant()

    def _grant(self) -> None:
        while self._waiting and self.in_flight < self._slots:
            _, _, granted = heapq.heappop(self._waiting)
            if not granted.done():  # a cancelled wait stays queued until it comes up
                self._enter()
                granted.set_result(None)

    # ------------------------------------------------------------ load

    def succeeded(self, seconds: Optional[float] = None) -> None:
        """A request was answered, `seconds` after it was sent: after a cut, allow one more
        per window of successes."""
        if seconds is not None and seconds >= 0:
            rtt = self._round_trip
            self._round_trip = seconds if rtt is None else rtt + (seconds - rtt) / 8
        self._weigh_round("", signal=False)
        if self.allowed < self.limit:
            self.allowed = min(float(self.limit), self.allowed + 1.0 / self.allowed)
            self._grant()

    def overloaded(self, sent_at: float, reason: str) -> None:
        """A request sent at `sent_at` timed out or was turned away for load."""
        if reason not in SLOW_REASONS:
            self._weigh_round(reason, signal=True)
        elif sent_at > self._last_cut:
            self._cut(0.5, reason)

    def _weigh_round(self, reason: str, signal: bool) -> None:
        """Count one outcome; at the end of a round trip, cut by half the share of load signals."""
        now = self._clock()
        if self._round_started is None:
            self._round_started = now
        if signal:
            self._round_signals += 1
            self._round_reason = reason
        else:
            self._round_answers += 1
        length = FIRST_ROUND_SECONDS if self._round_trip is None else self._round_trip
        if now - self._round_started < length:
            return
        signals, outcomes = self._round_signals, self._round_signals + self._round_answers
        self._round_started, self._round_answers, self._round_signals = now, 0, 0
        if signals:
            self._cut(1.0 - signals / outcomes / 2, self._round_reason)

    def _cut(self, keep: float, reason: str) -> None:
        before = self._slots
        self.allowed = max(1.0, self.allowed * keep)
        self._last_cut = self._clock()
        self.cuts += 1
        if self._slots >= before:
            return
        if self._slots >= self.lowest:  # a dip the run has seen before: no new warning
            log.debug("requests in flight lowered to %d (%s)", self._slots, reason)
            return
        self.lowest = self._slots
        log.warning(
            "the model server is overloaded (%s): at most %d %s in flight from now on, rising again "
            "as answers come back (CONCURRENCY_LIMIT %d). A lower CONCURRENCY_LIMIT or a longer "
            "REQUEST_TIMEOUT avoids this.",
            reason,
            self._slots,
            "request" if self._slots == 1 else "requests",
            self.limit,
        )

    def stop(self, cause: BaseException) -> None:
        """Start no more requests; those in flight finish. Requests waiting for
        a slot raise RequestsStopped instead of going out to be paid for."""
        if self.stopped_by is None:
            self.stopped_by = cause
        while self._waiting:
            _, _, granted = heapq.heappop(self._waiting)
            if not granted.done():
                granted.set_exception(RequestsStopped(cause))

    # ------------------------------------------------------------ figures

    @property
    def round_trip(self) -> Optional[float]:
        """Seconds an answer takes, smoothed; None before the first one."""
        return self._round_trip

    @property
    def mean_in_flight(self) -> float:
        """Requests in flight on average, from the first request to the last answer."""
        if self._first_request_at is None or self._last_change <= self._first_request_at:
            return 0.0
        return self._in_flight_seconds / (self._last_change - self._first_request_at)

    def _count(self, change: int) -> None:
        now = self._clock()
        if self._first_request_at is None:
            self._first_request_at = now
        else:
            self._in_flight_seconds += self.in_flight * (now - self._last_change)
        self._last_change = now
        self.in_flight += change
