"""What the /embeddings and streaming chat clients share about OpenAI-compatible HTTP answers."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Awaitable, Callable, Optional, TypeVar

import httpx

from engine_wrapper_class import RetryPolicy
from generation_functions.errors import EngineError

log = logging.getLogger("verustoolkit.retrieval")
T = TypeVar("T")

# How servers say "no such model": OpenAI and vLLM ("The model `x` does not exist"),
# Ollama ("model 'x' not found"), LiteLLM and others ("model_not_found").
_UNKNOWN_MODEL_HINTS = ("does not exist", "not found", "model_not_found", "unknown model", "no such model")


class Busy(Exception):
    """A failure worth retrying (408/409/429/5xx, a timeout); retry_after is the server's hint."""

    def __init__(self, reason: str, retry_after: Optional[float] = None):
        super().__init__(reason)
        self.retry_after = retry_after


async def with_retries(attempt: Callable[[], Awaitable[T]], retry: RetryPolicy, what: str) -> T:
    """Run `attempt` until it does not raise Busy, backing off, for at most retry.max_seconds."""
    started, number = time.monotonic(), 0
    while True:
        try:
            return await attempt()
        except Busy as busy:
            delay = retry.delay(number, busy.retry_after)
            if time.monotonic() - started + delay > retry.max_seconds:
                raise EngineError(f"{what} kept failing ({busy})") from None
            log.debug("%s failed (%s); retrying in %.1fs", what, busy, delay)
            await asyncio.sleep(delay)
            number += 1


def retry_after(response: httpx.Response) -> Optional[float]:
    try:
        return float(response.headers.get("retry-after", ""))
    except ValueError:
        return None


def error_detail(response: httpx.Response) -> str:
    """The server's own error message, on one line, short."""
    try:
        error = response.json().get("error", "")
        message = error.get("message", "") if isinstance(error, dict) else str(error)
    except (ValueError, AttributeError):
        message = response.text
    return " ".join(str(message).split())[:300]


def names_unknown_model(status: int, detail: str) -> bool:
    lowered = detail.lower()
    return status in (400, 404) and "model" in lowered and any(hint in lowered for hint in _UNKNOWN_MODEL_HINTS)
