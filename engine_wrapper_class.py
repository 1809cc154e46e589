"""One interface over the model APIs Verustoolkit talks to.

`EngineWrapper.generate(prompt, sampling)` returns a `Completion` (text, finish
reason, token usage) whatever the provider:

- OpenAI-compatible chat completions (llama.cpp, Ollama, vLLM, OpenAI, ...),
- OpenAI-compatible text completions (SYSTEM.COMPLETION_MODE: true),
- Cohere chat through the cohere SDK (SYSTEM.MODE: cohere).

Transient failures (408/409/429/5xx, timeouts, dropped connections) are retried
with jittered exponential backoff, honouring Retry-After, for at most
MAX_RETRY_SECONDS. One `RequestLimiter` (generation_functions/concurrency.py) is
shared by every engine of a run, so CONCURRENCY_LIMIT counts requests in flight
across the whole run; it is lowered for a while when the server is overloaded.
BASE_URL may name several replicas of one model: each request goes to the
replica with the fewest requests in flight, and a replica that just failed is
avoided for a while.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass, field, replace
from typing import Awaitable, Callable, Optional, Protocol, Sequence

import aiohttp
import orjson

from generation_functions.budget import Budget, Price
from generation_functions.concurrency import RequestLimiter
from generation_functions.errors import EngineError, RequestRejected, ServerUnreachable
from generation_functions.prompts import Prompt
from generation_functions.steps import Sampling  # re-exported: callers build requests with it

log = logging.getLogger("verustoolkit")

RETRYABLE_STATUS = frozenset({408, 409, 429}) | frozenset(range(500, 600))
REPLICA_COOLDOWN_SECONDS = 5.0


@dataclass(frozen=True)
class Completion:
    text: str
    finish_reason: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0  # from sending the request to its answer: the server's time, not the queue's


# Failures that say the server has more than it can take, not that it is broken.
OVERLOAD_REASONS = frozenset({"timeout", "HTTP 429", "HTTP 503"})


class TransientError(Exception):
    """A failure worth retrying; retry_after is the server's hint in seconds."""

    def __init__(self, reason: str, retry_after: Optional[float] = None):
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after
        self.sent_at = time.monotonic()  # when the failed attempt went out; set by the engine

    @property
    def overload(self) -> bool:
        return self.reason in OVERLOAD_REASONS


class Backend(Protocol):
    url: str

    async def call(self, prompt: Prompt, sampling: Sampling) -> Completion: ...

    async def close(self) -> None: ...


@dataclass
class RequestStats:
    """Counters for the run report; updated from one event loop, so no locks."""

    requests: int = 0
    succeeded: int = 0
    retries: int = 0
    failed: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    retry_reasons: dict[str, int] = field(default_factory=dict)

    def count_retry(self, reason: str) -> None:
        self.retries += 1
        self.retry_reasons[reason] = self.retry_reasons.get(reason, 0) + 1

    def as_dict(self) -> dict:
        return {
            "requests": self.requests,
            "succeeded": self.succeeded,
            "retries": self.retries,
            "failed": self.failed,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "retry_reasons": dict(sorted(self.retry_reasons.items())),
        }


@dataclass(frozen=True)
class RetryPolicy:
    max_seconds: float = 600.0
    base_delay: float = 1.0
    max_delay: float = 60.0

    def delay(self, attempt: int, retry_after: Optional[float]) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_delay)
        backoff = min(self.base_delay * (2 ** attempt), self.max_delay)
        return backoff * (0.5 + random.random() / 2)


class ReplicaPool:
    """Picks the replica with the fewest requests in flight, skipping ones that just failed."""

    def __init__(self, backends: Sequence[Backend]):
        self.backends = list(backends)
        self._in_flight = [0] * len(self.backends)
        self._avoid_until = [0.0] * len(self.backends)

    def acquire(self) -> int:
        now = time.monotonic()
        healthy = [i for i in range(len(self.backends)) if self._avoid_until[i] <= now]
        candidates = healthy or range(len(self.backends))
        index = min(candidates, key=lambda i: self._in_flight[i])
        self._in_flight[index] += 1
        return index

    def release(self, index: int, failed: bool) -> None:
        self._in_flight[index] -= 1
        if failed and len(self.backends) > 1:
            self._avoid_until[index] = time.monotonic() + REPLICA_COOLDOWN_SECONDS


class EngineWrapper:
    def __init__(
        self,
        backends: Sequence[Backend],
        limiter: RequestLimiter,
        retry: RetryPolicy,
        stats: RequestStats,
        model: str,
        budget: Optional[Budget] = None,
    ):
        self.pool = ReplicaPool(backends)
        self.limiter = limiter
        self.retry = retry
        self.stats = stats
        self.model = model
        self.budget = budget or Budget()

    async def generate(
        self, prompt: Prompt, sampling: Sampling, keep: Optional[Callable[[Completion], Awaitable[None]]] = None
    ) -> Completion:
        """Ask the model; `keep` stores the answer before the request's slot is
        freed, so a killed run loses no more than CONCURRENCY_LIMIT answers."""
        # The retry window counts the time spent on failed attempts and on the
        # waits between them, not the time spent queued for a slot: when the
        # limiter is lowered, a request may queue for long without the server
        # having failed it.
        failing = 0.0
        attempt = 0
        while True:
            try:
                completion = await self._attempt(prompt, sampling, keep)
            except TransientError as exc:
                failing += time.monotonic() - exc.sent_at
                delay = self.retry.delay(attempt, exc.retry_after)
                if failing + delay > self.retry.max_seconds:
                    self.stats.failed += 1
                    raise EngineError(
                        f"model {self.model}: gave up after {attempt + 1} attempts failing for "
                        f"{failing:.0f}s (last error: {exc.reason})"
                    ) from None
                self.stats.count_retry(exc.reason)
                log.debug("retrying after %s in %.1fs", exc.reason, delay)
                await asyncio.sleep(delay)
                failing += delay
                attempt += 1
                continue
            except EngineError:
                self.stats.failed += 1
                raise
            self.stats.succeeded += 1
            self.stats.prompt_tokens += completion.prompt_tokens
            self.stats.completion_tokens += completion.completion_tokens
            return completion

    async def _attempt(self, prompt: Prompt, sampling: Sampling, keep) -> Completion:
        async with self.limiter:
            self.budget.before_request()
            index = self.pool.acquire()
            failed = True
            sent_at = time.monotonic()
            try:
                self.stats.requests += 1
                completion = await self.pool.backends[index].call(prompt, sampling)
                failed = False
            except TransientError as exc:
                exc.sent_at = sent_at
                if exc.overload:
                    self.limiter.overloaded(sent_at, exc.reason)
                raise
            finally:
                self.pool.release(index, failed)
            self.limiter.succeeded()
            completion = replace(completion, seconds=time.monotonic() - sent_at)
            self.budget.record(self.model, completion.prompt_tokens, completion.completion_tokens)
            if keep is not None:
                try:
                    await keep(completion)
                except Exception as exc:
                    # The answer cannot be stored (a full disk, say): every
                    # further request would be paid for and lost the same way.
                    self.limiter.stop(exc)
                    raise
        return completion

    async def close(self) -> None:
        for backend in self.pool.backends:
            await backend.close()


# ---------------------------------------------------------------- OpenAI-compatible


def _retry_after_seconds(headers) -> Optional[float]:
    value = headers.get("retry-after") if headers is not None else None
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None


def _short(message: str, limit: int = 300) -> str:
    message = " ".join(str(message).split())
    return message if len(message) <= limit else message[:limit] + "..."


def _error_message(raw: bytes) -> str:
    try:
        error = orjson.loads(raw).get("error", {})
        return _short(error.get("message", "") if isinstance(error, dict) else error)
    except (ValueError, AttributeError):
        return _short(raw.decode("utf-8", "replace"))


class _OpenAIHTTPBackend:
    """The OpenAI-compatible HTTP API, spoken directly over one aiohttp session.

    A thin client on purpose: the SDK's request transformation costs tens of
    milliseconds of CPU per request, which at 50 requests in flight would make
    the client, not the model server, the bottleneck.
    """

    path = ""

    def __init__(self, url: str, api_key: str, model: str, timeout: float):
        self.url = url
        self.model = model
        self._endpoint = url.rstrip("/") + self.path
        self._headers = {"Content-Type": "application/json"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._timeout = timeout
        self._session = None

    def _body(self, prompt: Prompt, sampling: Sampling) -> dict:
        raise NotImplementedError

    def _completion(self, choice: dict, usage: dict) -> Completion:
        raise NotImplementedError

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=0, force_close=False),
                timeout=aiohttp.ClientTimeout(total=self._timeout),
            )
        return self._session

    async def call(self, prompt: Prompt, sampling: Sampling) -> Completion:
        body = orjson.dumps(self._body(prompt, sampling))
        try:
            async with self._get_session().post(self._endpoint, data=body, headers=self._headers) as response:
                raw = await response.read()
                status, headers = response.status, response.headers
        except asyncio.TimeoutError:
            raise TransientError("timeout") from None
        except aiohttp.ClientPayloadError:
            raise TransientError("truncated response") from None
        except (aiohttp.ClientConnectionError, aiohttp.ClientResponseError, OSError):
            raise TransientError("connection error") from None
        if status != 200:
            raise self._status_error(status, headers, raw)
        try:
            data = orjson.loads(raw)
            choice = data["choices"][0]
        except (ValueError, KeyError, IndexError, TypeError):
            raise TransientError("malformed response") from None
        return self._completion(choice, data.get("usage") or {})

    def _status_error(self, status: int, headers, raw: bytes) -> Exception:
        if status in RETRYABLE_STATUS:
            return TransientError(f"HTTP {status}", _retry_after_seconds(headers))
        if status in (401, 403):
            return ServerUnreachable(f"the server at {self.url} rejected the API key (HTTP {status})")
        return RequestRejected(f"the server at {self.url} refused the request (HTTP {status}): {_error_message(raw)}")

    def _sampling(self, sampling: Sampling) -> dict:
        fields = {"temperature": sampling.temperature, "top_p": sampling.top_p, "max_tokens": sampling.max_tokens}
        if sampling.stop:
            fields["stop"] = list(sampling.stop)
        return fields

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _usage(usage: dict) -> tuple[int, int]:
    return int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)


class OpenAIChatBackend(_OpenAIHTTPBackend):
    path = "/chat/completions"

    def _body(self, prompt: Prompt, sampling: Sampling) -> dict:
        if isinstance(prompt, str):
            prompt = [{"role": "user", "content": prompt}]
        return {"model": self.model, "messages": prompt, **self._sampling(sampling)}

    def _completion(self, choice: dict, usage: dict) -> Completion:
        message = choice.get("message") or {}
        return Completion(message.get("content") or "", choice.get("finish_reason") or "", *_usage(usage))


class OpenAICompletionBackend(_OpenAIHTTPBackend):
    path = "/completions"

    def _body(self, prompt: Prompt, sampling: Sampling) -> dict:
        if not isinstance(prompt, str):
            raise EngineError("completion mode needs a text prompt (a .txt prompt file)")
        return {"model": self.model, "prompt": prompt, **self._sampling(sampling)}

    def _completion(self, choice: dict, usage: dict) -> Completion:
        return Completion(choice.get("text") or "", choice.get("finish_reason") or "", *_usage(usage))


# ---------------------------------------------------------------- Cohere


class CohereChatBackend:
    def __init__(self, url: str, api_key: str, model: str, timeout: float):
        import cohere

        self.url = url
        self.model = model
        self._client = cohere.AsyncClientV2(
            api_key=api_key or "no-key",
            base_url=url.rstrip("/"),
            timeout=timeout,
            max_retries=0,
            log_warning_experimental_features=False,
        )

    async def call(self, prompt: Prompt, sampling: Sampling) -> Completion:
        if isinstance(prompt, str):
            prompt = [{"role": "user", "content": prompt}]
        try:
            response = await self._client.chat(
                model=self.model,
                messages=prompt,
                temperature=sampling.temperature,
                p=min(max(sampling.top_p, 0.01), 0.99),
                max_tokens=sampling.max_tokens,
                **({"stop_sequences": list(sampling.stop)} if sampling.stop else {}),
            )
        except Exception as exc:
            raise self._translate(exc) from None
        text = "".join(part.text for part in (response.message.content or []) if getattr(part, "text", None))
        tokens = response.usage.tokens if response.usage and response.usage.tokens else None
        prompt_tokens = int(tokens.input_tokens or 0) if tokens else 0
        completion_tokens = int(tokens.output_tokens or 0) if tokens else 0
        return Completion(text, str(response.finish_reason or ""), prompt_tokens, completion_tokens)

    def _translate(self, exc: Exception) -> Exception:
        import httpx
        from cohere.core.api_error import ApiError

        if isinstance(exc, httpx.TimeoutException):
            return TransientError("timeout")
        if isinstance(exc, (httpx.TransportError,)):
            return TransientError("connection error")
        if isinstance(exc, ApiError):
            status = exc.status_code or 0
            if status in RETRYABLE_STATUS:
                return TransientError(f"HTTP {status}", _retry_after_seconds(exc.headers or {}))
            if status in (401, 403):
                return ServerUnreachable(f"the Cohere server at {self.url} rejected the API key (HTTP {status})")
            return RequestRejected(f"the Cohere server at {self.url} refused the request (HTTP {status})")
        if isinstance(exc, (ValueError, TypeError)):  # unparsable body
            return TransientError("malformed response")
        return exc

    async def close(self) -> None:
        client = getattr(self._client, "_client_wrapper", None)
        httpx_client = getattr(getattr(client, "httpx_client", None), "httpx_client", None)
        if httpx_client is not None:
            await httpx_client.aclose()


def make_backends(mode: str, completion_mode: bool, urls: Sequence[str], api_key: str, model: str, timeout: float) -> list:
    if mode == "cohere":
        backend_class = CohereChatBackend
    elif completion_mode:
        backend_class = OpenAICompletionBackend
    else:
        backend_class = OpenAIChatBackend
    return [backend_class(url, api_key, model, timeout) for url in urls]


def make_budget(config) -> Budget:
    caps = config.budget
    return Budget(
        max_requests=caps.MAX_REQUESTS or None,
        max_tokens=caps.MAX_TOKENS or None,
        max_cost=caps.MAX_COST or None,
        prices={model: Price(p.PROMPT, p.COMPLETION) for model, p in caps.PRICES.items()},
    )


def make_engine(config, model: str, limiter: RequestLimiter, stats: RequestStats, budget: Optional[Budget] = None) -> EngineWrapper:
    """Build an engine for one model from the run's Config."""
    backends = make_backends(
        config.system.MODE, config.system.COMPLETION_MODE, config.base_urls, config.api_key, model, config.system.REQUEST_TIMEOUT
    )
    retry = RetryPolicy(max_seconds=config.system.MAX_RETRY_SECONDS)
    return EngineWrapper(backends, limiter, retry, stats, model, budget)
