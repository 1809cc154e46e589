"""What the /embeddings and streaming chat clients share about OpenAI-compatible HTTP answers."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Awaitable, Callable, Optional, TypeVar

import httpx

from engine_wrapper_class import RetryPolicy, redact, retry_after_seconds
from generation_functions.errors import EngineError
from generation_functions.rejections import names_unknown_model  # noqa: F401 - re-exported for the clients

log = logging.getLogger("verustoolkit.retrieval")
T = TypeVar("T")


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
    return retry_after_seconds(response.headers.get("retry-after"))


def error_detail(response: httpx.Response) -> str:
    """The server's own error message, on one line, short."""
    try:
        error = response.json().get("error", "")
        message = error.get("message", "") if isinstance(error, dict) else str(error)
    except (ValueError, AttributeError):
        message = response.text
    return " ".join(redact(str(message), _sent_key(response)).split())[:300]


def _sent_key(response: httpx.Response) -> str:
    """The API key the request carried: a server may echo it in its error."""
    try:
        authorization = response.request.headers.get("authorization", "")
    except RuntimeError:  # a response built without a request
        return ""
    return authorization[len("Bearer "):].strip() if authorization.startswith("Bearer ") else ""
