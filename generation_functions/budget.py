"""Optional caps on requests, tokens and cost, checked before every request.

When a cap is reached the run stops cleanly: requests already in flight finish
and are stored, no new one is sent, and a rerun (with a higher cap) resumes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

from generation_functions.errors import RunAborted


class BudgetExceeded(RunAborted):
    """A configured cap on requests, tokens or cost was reached."""


@dataclass(frozen=True)
class Price:
    prompt_per_million: float
    completion_per_million: float


@dataclass
class Budget:
    max_requests: Optional[int] = None
    max_tokens: Optional[int] = None
    max_cost: Optional[float] = None
    prices: dict[str, Price] = field(default_factory=dict)
    requests: int = 0
    tokens: int = 0
    cost: float = 0.0

    def before_request(self) -> None:
        """Reserve one request, or stop if a cap is already reached."""
        if self.max_requests is not None and self.requests >= self.max_requests:
            raise BudgetExceeded(f"the request cap BUDGET.MAX_REQUESTS = {self.max_requests} was reached")
        if self.max_tokens is not None and self.tokens >= self.max_tokens:
            raise BudgetExceeded(f"the token cap BUDGET.MAX_TOKENS = {self.max_tokens} was reached ({self.tokens} used)")
        if self.max_cost is not None and self.cost >= self.max_cost:
            raise BudgetExceeded(f"the cost cap BUDGET.MAX_COST = {self.max_cost} was reached ({self.cost:.4f} spent)")
        self.requests += 1

    def record(self, model: str, prompt_tokens: int, completion_tokens: int) -> None:
        # Never less than nothing: a negative figure must not buy back spent tokens.
        prompt_tokens, completion_tokens = max(0, prompt_tokens), max(0, completion_tokens)
        self.tokens += prompt_tokens + completion_tokens
        price = self.prices.get(model)
        if price is not None:
            self.cost += (prompt_tokens * price.prompt_per_million + completion_tokens * price.completion_per_million) / 1e6

    def as_dict(self) -> dict:
        return {
            "requests": self.requests,
            "tokens": self.tokens,
            "cost": round(self.cost, 6),
            "caps": {"requests": self.max_requests, "tokens": self.max_tokens, "cost": self.max_cost},
        }


# ---------------------------------------------------------------- token counts a cap can trust

CHARS_PER_TOKEN = 4  # the estimate, as --check's plan uses
# No tokenizer averages more characters a token over a whole prompt or answer; a server
# reporting fewer tokens than this allows (zero, or negative) is not counting them.
MOST_CHARS_PER_TOKEN = 16
# Tokens a server may add beyond the text: chat template, special tokens, hidden reasoning.
OVERHEAD_TOKENS = 4096


@dataclass(frozen=True)
class TokenCounts:
    prompt: int
    completion: int
    estimated: bool  # at least one figure was the estimate, not the server's


def plausible_usage(
    prompt_tokens: Optional[int], completion_tokens: Optional[int], prompt: str, completion: str, max_tokens: int
) -> TokenCounts:
    """The server's token counts where plausible for what was asked and answered, else an estimate.

    A figure is implausible when missing (None), below one token per
    MOST_CHARS_PER_TOKEN characters of its text (negative, zero for a long text),
    or above one token per UTF-8 byte plus OVERHEAD_TOKENS (for the answer: or
    max_tokens plus that, as hidden reasoning counts too). The estimate is
    CHARS_PER_TOKEN characters a token.
    """
    prompt_ceiling = len(prompt.encode("utf-8", "replace")) + OVERHEAD_TOKENS
    completion_ceiling = max(max_tokens, len(completion.encode("utf-8", "replace"))) + OVERHEAD_TOKENS
    checked_prompt = _plausible(prompt_tokens, prompt, prompt_ceiling)
    checked_completion = _plausible(completion_tokens, completion, completion_ceiling)
    return TokenCounts(
        checked_prompt if checked_prompt is not None else _estimate(prompt),
        checked_completion if checked_completion is not None else _estimate(completion),
        checked_prompt is None or checked_completion is None,
    )


def _plausible(reported: Optional[int], text: str, ceiling: int) -> Optional[int]:
    if not isinstance(reported, int) or isinstance(reported, bool):
        return None
    if reported < len(text) // MOST_CHARS_PER_TOKEN or reported > ceiling:
        return None
    return reported


def _estimate(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN)
