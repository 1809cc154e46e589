"""Optional caps on requests, tokens and cost, checked before every request.

When a cap is reached the run stops cleanly: requests already in flight finish
and are stored, no new one is sent, and a rerun (with a higher cap) resumes.
"""

from __future__ import annotations

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
