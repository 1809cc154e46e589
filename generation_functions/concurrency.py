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
progress and finally stops. So a timeout, or an HTTP 429 or 503, halves the
number of requests allowed in flight, and each success afterwards raises it
again slowly (by one per window of successes, as TCP does), never above
CONCURRENCY_LIMIT. Signals from requests sent before the last cut are not
counted again: they describe the load that was already cut.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import time
from typing import Optional

from generation_functions.errors import RequestsStopped
from generation_functions.scheduling import REQUEST_PRIORITY

log = logging.getLogger("verustoolkit")


class RequestLimiter:
    def __init__(self, limit: int):
        self.limit = limit
        self.allowed = float(limit)  # the current ceiling, CONCURRENCY_LIMIT or lower
        self.lowest = limit
        self.cuts = 0
        self.in_flight = 0
        self.peak = 0
        self.stopped_by: Optional[BaseException] = None
        self._waiting: list[tuple[float, int, asyncio.Future]] = []  # a heap
        self._arrivals = itertools.count()
        self._last_cut = float("-inf")
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

    def succeeded(self) -> None:
        """A request was answered: after a cut, allow one more per window of successes."""
        if self.allowed < self.limit:
            self.allowed = min(float(self.limit), self.allowed + 1.0 / self.allowed)
            self._grant()

    def overloaded(self, sent_at: float, reason: str) -> None:
        """A request sent at `sent_at` timed out or was turned away for load."""
        if sent_at <= self._last_cut:
            return
        before = self._slots
        self.allowed = max(1.0, self.allowed / 2)
        self._last_cut = time.monotonic()
        self.cuts += 1
        self.lowest = min(self.lowest, self._slots)
        if self._slots < before:
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
    def mean_in_flight(self) -> float:
        """Requests in flight on average, from the first request to the last answer."""
        if self._first_request_at is None or self._last_change <= self._first_request_at:
            return 0.0
        return self._in_flight_seconds / (self._last_change - self._first_request_at)

    def _count(self, change: int) -> None:
        now = time.monotonic()
        if self._first_request_at is None:
            self._first_request_at = now
        else:
            self._in_flight_seconds += self.in_flight * (now - self._last_change)
        self._last_change = now
        self.in_flight += change
