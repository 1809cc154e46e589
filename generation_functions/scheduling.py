"""Which waiting request goes first when every slot is taken: the one with the longest road ahead.

A chunk's requests form a chain: questions, then per pair the two checks and
the repair, then the conversation, which waits for every pair. A run ends when
its slowest chain ends. Served first come first served, every chunk reaches
its conversation at about the same time, and the conversations, the longest
requests, then run at the end with the server half idle. Critical-path
scheduling serves first the request with the most expected work still behind
it in its chunk, so long chains start early and the end of the run stays busy.

The expected work is learned while the run goes: the mean service time of
each step, and for the conversation a line of time against the characters of
the pairs it is asked to cover, since a conversation's length follows its
pairs (fitted on question generation's answers until conversations have been
seen). Until a step has been seen, every step counts one unit, which orders
the requests by how many steps remain.
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass
from typing import Mapping, Sequence

# The priority of the requests the current task sends: lower goes first. Set by
# the pipeline around each step; tasks started from there inherit it.
REQUEST_PRIORITY: contextvars.ContextVar[float] = contextvars.ContextVar("request_priority", default=0.0)


@dataclass
class _Mean:
    total: float = 0.0
    count: int = 0

    def add(self, value: float) -> None:
        self.total += value
        self.count += 1

    def get(self, default: float) -> float:
        return self.total / self.count if self.count else default


@dataclass
class _Line:
    """A least-squares line through (characters, seconds): time = fixed + per character."""

    n: int = 0
    sx: float = 0.0
    sy: float = 0.0
    sxx: float = 0.0
    sxy: float = 0.0

    def add(self, x: float, y: float) -> None:
        self.n += 1
        self.sx += x
        self.sy += y
        self.sxx += x * x
        self.sxy += x * y

    def predict(self, x: float) -> float | None:
        """None until two different lengths have been seen."""
        if self.n < 2:
            return None
        spread = self.n * self.sxx - self.sx * self.sx
        if spread <= 1e-9 * max(1.0, self.sxx):
            return None
        slope = max(0.0, (self.n * self.sxy - self.sx * self.sy) / spread)
        return max(0.0, (self.sy - slope * self.sx) / self.n + slope * x)


class PathEstimator:
    """Expected seconds left in a chunk's chain from a given step on.

    `chain` is the steps a chunk meets, in order (from the table of steps).
    `conversation` is the chunk's last step, whose time is forecast from the
    length of the pairs it covers; `writer` is the step that writes those pairs,
    whose time against what it wrote foretells the conversation's until
    conversations have been seen.
    """

    def __init__(self, chain: Sequence[str], writer: str, conversation: str):
        if chain[-1] != conversation or writer not in chain:
            raise ValueError(f"{conversation} must end the chain and {writer} be in it: {list(chain)}")
        self.chain = tuple(chain)
        self.writer = writer
        self.conversation = conversation
        self._seconds = {step: _Mean() for step in self.chain}
        self._conversation_line = _Line()  # conversation seconds against the characters of its pairs
        self._writing_line = _Line()  # question generation seconds against the characters it wrote

    def observe(self, step: str, seconds: float, values: Mapping[str, str], answer: str) -> None:
        """A request of `step` was answered with `answer` in `seconds` (service time, queueing excluded)."""
        if step not in self._seconds:
            return
        self._seconds[step].add(seconds)
        if step == self.conversation:
            self._conversation_line.add(len(values.get("question_answer_list", "")), seconds)
        elif step == self.writer:
            # Question generation writes the pairs themselves: how its time
            # grows with what it writes foretells the conversation's, until
            # conversations have been seen. On a server whose time does not
            # grow with the answer the line is flat, and so is the forecast.
            self._writing_line.add(len(answer), seconds)

    def remaining(self, step: str, pair_characters: int | None = None) -> float:
        """Expected seconds from the start of `step` to the end of its chunk's conversation.

        pair_characters: the size of the chunk's pairs, once known (after question generation).
        """
        start = self.chain.index(step)
        before_conversation = sum(self._seconds[s].get(1.0) for s in self.chain[start:-1])
        return before_conversation + self._conversation_seconds(pair_characters)

    def _conversation_seconds(self, pair_characters: int | None) -> float:
        mean = self._seconds[self.conversation].get(1.0)
        if pair_characters is None:
            return mean
        for line in (self._conversation_line, self._writing_line):
            forecast = line.predict(pair_characters)
            if forecast is not None:
                return forecast
        return mean

    def priority(self, step: str, pair_characters: int | None = None) -> float:
        """The limiter's order for a request of `step`: the longest road ahead goes first."""
        return -self.remaining(step, pair_characters)


def pair_characters(pairs: Sequence[tuple[str, str]]) -> int:
    """How much text a conversation over these pairs must carry."""
    return sum(len(question) + len(answer) for question, answer in pairs)
