"""One interface over the model APIs Verustoolkit talks to.

`EngineWrapper.generate(prompt, sampling)` returns a `Completion` (text, finish
reason, token usage) whatever the provider:

- OpenAI-compatible chat completions (llama.cpp, Ollama, vLLM, OpenAI, ...),
- OpenAI-compatible text completions (SYSTEM.COMPLETION_MODE: true),
- Cohere chat through the cohere SDK (SYSTEM.MODE: cohere).

Transient failures (408/409/429/5xx, timeouts, dropped connections, an HTTP-200
body that is not a completion) are retried with jittered exponential backoff,
honouring a usable Retry-After, for at most MAX_RETRY_SECONDS; every wait is
finite. One `RequestLimiter` (generation_functions/concurrency.py) is
shared by every engine of a run, so CONCURRENCY_LIMIT counts requests in flight
across the whole run; it is lowered for a while when the server is overloaded.
BASE_URL may name several replicas of one model: each request goes to the
replica with the fewest requests in flight, and a replica that just failed is
avoided for a while.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import math
import random
import time
from datetime import timezone
from dataclasses import dataclass, field, replace
from typing import Awaitable, Callable, Optional, Protocol, Sequence

import aiohttp
import orjson

from generation_functions.budget import Budget, Price, plausible_usage
from generation_functions.concurrency import RequestLimiter
from generation_functions.constraints import cohere_fields, openai_fields
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
    # The server's token counts. A backend leaves one None when the server gave no usable
    # figure; the engine replaces it (and implausible ones) by an estimate before returning.
    prompt_tokens: Optional[int] = 0
    completion_tokens: Optional[int] = 0
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
    estimated_usage: int = 0  # answers whose token counts the server did not give plausibly
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
            "estimated_usage": self.estimated_usage,
            "retry_reasons": dict(sorted(self.retry_reasons.items())),
        }


@dataclass(frozen=True)
class RetryPolicy:
    max_seconds: float = 600.0
    base_delay: float = 1.0
    max_delay: float = 60.0

    def delay(self, attempt: int, retry_after: Optional[float], round_trip: Optional[float] = None) -> float:
        """Seconds to wait before the next attempt: finite, never over max_delay.

        round_trip: how long an answer takes, for a failure that says nothing of
        load (an HTTP 500, a dropped connection): its first retry then waits no
        longer than an answer would, so scattered faults cost a fast server little;
        the wait still doubles with every further failure.
        """
        if retry_after is not None and math.isfinite(retry_after):
            return min(max(retry_after, 0.0), self.max_delay)
        base = self.base_delay if round_trip is None else min(self.base_delay, max(round_trip, 0.001))
        backoff = min(base * (2 ** min(attempt, 32)), self.max_delay)
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
        self._warned_usage = False
        # Set when the server refused a constrained request that it took without the constraint:
        # later requests go without one (SYSTEM.CONSTRAINED_OUTPUT falls back to off).
        self.constraints_refused: Optional[str] = None

    async def generate(
        self, prompt: Prompt, sampling: Sampling, keep: Optional[Callable[[Completion], Awaitable[None]]] = None
    ) -> Completion:
        """Ask the model; `keep` stores the answer before the request's slot is
        freed, so a killed run loses no more than CONCURRENCY_LIMIT answers.

        A constrained request the server refuses is asked again without its constraint;
        when that is taken, the refusal was the constraint's, and the engine sends no
        more constraints (one warning says so)."""
        if sampling.constraint is not None and self.constraints_refused is not None:
            sampling = replace(sampling, constraint=None)
        if sampling.constraint is None:
            return await self._generate(prompt, sampling, keep)
        try:
            return await self._generate(prompt, sampling, keep)
        except RequestRejected as refusal:
            plain = await self._generate(prompt, replace(sampling, constraint=None), keep)  # raises if not the constraint
            self._stop_constraints(sampling.constraint.field, refusal)
            return plain

    def _stop_constraints(self, field: str, refusal: RequestRejected) -> None:
        if self.constraints_refused is None:
            self.constraints_refused = f"HTTP {refusal.status}: {refusal.detail}"
            log.warning(
                "the server for model %s refused constrained output in the %r field (%s); the run goes on "
                "without it, as with SYSTEM.CONSTRAINED_OUTPUT: off, and outputs that miss the format are asked again",
                self.model,
                field,
                self.constraints_refused,
            )

    async def _generate(
        self, prompt: Prompt, sampling: Sampling, keep: Optional[Callable[[Completion], Awaitable[None]]]
    ) -> Completion:
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
                delay = self.retry.delay(attempt, exc.retry_after, None if exc.overload else self.limiter.round_trip)
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
            seconds = time.monotonic() - sent_at
            self.limiter.succeeded(seconds)
            completion = self._counted(replace(completion, seconds=seconds), prompt, sampling)
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

    def _counted(self, completion: Completion, prompt: Prompt, sampling: Sampling) -> Completion:
        """The completion with token counts the spend caps can trust: a server's figure
        that is missing, negative or out of all proportion to what was asked and
        answered is replaced by an estimate from the text (4 characters a token)."""
        counts = plausible_usage(
            completion.prompt_tokens, completion.completion_tokens, _prompt_text(prompt), completion.text, sampling.max_tokens
        )
        if counts.estimated:
            self.stats.estimated_usage += 1
            if not self._warned_usage:
                self._warned_usage = True
                log.warning(
                    "the server for model %s reports implausible token usage (%s prompt, %s completion tokens); "
                    "the run counts an estimate from the text instead, for the report and BUDGET caps",
                    self.model,
                    completion.prompt_tokens,
                    completion.completion_tokens,
                )
        return replace(completion, prompt_tokens=counts.prompt, completion_tokens=counts.completion)

    async def close(self) -> None:
        for backend in self.pool.backends:
            await backend.close()


def _prompt_text(prompt: Prompt) -> str:
    if isinstance(prompt, str):
        return prompt
    return "".join(str(message.get("content", "")) for message in prompt)


# ---------------------------------------------------------------- OpenAI-compatible


def retry_after_seconds(value: Optional[str], now: Optional[float] = None) -> Optional[float]:
    """A Retry-After header in seconds from now: delay-seconds or an HTTP date (RFC 9110).

    None when absent or unusable (nan, inf, garbage): the caller backs off on its
    own then. A negative delay or a date in the past is 0; a huge one is capped
    by RetryPolicy.delay. `now`: the wall clock (time.time()), for tests.
    """
    if value is None:
        return None
    text = str(value).strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        seconds = when.timestamp() - (time.time() if now is None else now)
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)


def _retry_after_seconds(headers) -> Optional[float]:
    return retry_after_seconds(headers.get("retry-after") if headers is not None else None)


def _short(message: str, limit: int = 300) -> str:
    message = " ".join(str(message).split())
    return message if len(message) <= limit else message[:limit] + "..."


def _error_message(raw: bytes, secret: str = "") -> str:
    """The server's own message, on one line, short, without `secret` (removed before shortening,
    so no part of it is left at the cut)."""
    try:
        error = orjson.loads(raw).get("error", {})
        message = error.get("message", "") if isinstance(error, dict) else error
    except (ValueError, AttributeError):
        message = raw.decode("utf-8", "replace")
    return _short(redact(str(message), secret))


REDACTED = "[redacted]"


def redact(text: str, secret: str) -> str:
    """`text` without `secret`: a server may echo the API key in an error or an answer,
    and what it says is stored, logged and shown."""
    return text.replace(secret, REDACTED) if secret and secret in text else text


def _malformed() -> TransientError:
    return TransientError("malformed response")


def decode_completion(raw: bytes, chat: bool) -> Completion:
    """The completion in an HTTP-200 body of the chat (`chat`) or text completions API.

    Anything else raises TransientError("malformed response"), to be retried: a
    body that is not JSON, without choices, a choice or message that is not an
    object, an answer that is not a string. The answer is what is paid for, so
    garbled metadata does not lose it: a finish reason that is not a string
    reads as none, and token counts that are not whole non-negative numbers read
    as None (the engine then counts an estimate).
    """
    try:
        data = orjson.loads(raw)
    except (ValueError, TypeError):
        raise _malformed() from None
    choices = data.get("choices") if isinstance(data, dict) else None
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise _malformed()
    choice = choices[0]
    if chat:
        message = choice.get("message")
        if not isinstance(message, dict):
            raise _malformed()
        text = message.get("content")
    else:
        text = choice.get("text")
    if text is None:  # e.g. a chat answer that is only a refusal or a tool call
        text = ""
    if not isinstance(text, str):
        raise _malformed()
    finish_reason = choice.get("finish_reason")
    usage = data.get("usage")
    usage = usage if isinstance(usage, dict) else {}
    return Completion(
        text,
        finish_reason if isinstance(finish_reason, str) else "",
        _token_count(usage.get("prompt_tokens")),
        _token_count(usage.get("completion_tokens")),
    )


def _token_count(value) -> Optional[int]:
    """A whole, non-negative, finite number of tokens, or None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        return None
    return int(value) if value >= 0 else None


class _OpenAIHTTPBackend:
    """The OpenAI-compatible HTTP API, spoken directly over one aiohttp session.

    A thin client on purpose: the SDK's request transformation costs tens of
    milliseconds of CPU per request, which at 50 requests in flight would make
    the client, not the model server, the bottleneck.
    """

    path = ""
    chat = True  # the body's shape: chat completions, or text completions

    def __init__(self, url: str, api_key: str, model: str, timeout: float):
        self.url = url
        self.model = model
        self._secret = api_key
        self._endpoint = url.rstrip("/") + self.path
        self._headers = {"Content-Type": "application/json"}
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._timeout = timeout
        self._session = None

    def _body(self, prompt: Prompt, sampling: Sampling) -> dict:
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
        completion = decode_completion(raw, self.chat)
        if self._secret and (self._secret in completion.text or self._secret in completion.finish_reason):
            completion = replace(
                completion,
                text=redact(completion.text, self._secret),
                finish_reason=redact(completion.finish_reason, self._secret),
            )
        return completion

    def _status_error(self, status: int, headers, raw: bytes) -> Exception:
        if status in RETRYABLE_STATUS:
            return TransientError(f"HTTP {status}", _retry_after_seconds(headers))
        if status in (401, 403):
            return ServerUnreachable(f"the server at {self.url} rejected the API key (HTTP {status})")
        detail = _error_message(raw, self._secret)
        return RequestRejected(
            f"the server at {self.url} refused the request (HTTP {status}): {detail}",
            status=status,
            detail=detail,
            url=self.url,
            endpoint=self.path,
        )

    def _sampling(self, sampling: Sampling) -> dict:
        fields = {"temperature": sampling.temperature, "top_p": sampling.top_p, "max_tokens": sampling.max_tokens}
        if sampling.stop:
            fields["stop"] = list(sampling.stop)
        if sampling.constraint is not None:
            fields.update(openai_fields(sampling.constraint))
        return fields

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


class OpenAIChatBackend(_OpenAIHTTPBackend):
    path = "/chat/completions"

    def _body(self, prompt: Prompt, sampling: Sampling) -> dict:
        if isinstance(prompt, str):
            prompt = [{"role": "user", "content": prompt}]
        return {"model": self.model, "messages": prompt, **self._sampling(sampling)}


class OpenAICompletionBackend(_OpenAIHTTPBackend):
    path = "/completions"
    chat = False

    def _body(self, prompt: Prompt, sampling: Sampling) -> dict:
        if not isinstance(prompt, str):
            raise EngineError("completion mode needs a text prompt (a .txt prompt file)")
        return {"model": self.model, "prompt": prompt, **self._sampling(sampling)}


# ---------------------------------------------------------------- Cohere


class CohereChatBackend:
    def __init__(self, url: str, api_key: str, model: str, timeout: float):
        import cohere

        self.url = url
        self.model = model
        self._secret = api_key
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
                **(cohere_fields(sampling.constraint) if sampling.constraint is not None else {}),
            )
        except Exception as exc:
            raise self._translate(exc) from None
        try:
            text = "".join(part.text for part in (response.message.content or []) if isinstance(getattr(part, "text", None), str))
        except (AttributeError, TypeError):
            raise _malformed() from None
        usage = getattr(response, "usage", None)
        tokens = getattr(usage, "tokens", None)
        return Completion(
            redact(text, self._secret),
            redact(str(response.finish_reason or ""), self._secret),
            _token_count(getattr(tokens, "input_tokens", None)),
            _token_count(getattr(tokens, "output_tokens", None)),
        )

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
            detail = _short(redact(_cohere_error_message(exc.body), self._secret))
            return RequestRejected(
                f"the Cohere server at {self.url} refused the request (HTTP {status}): {detail}",
                status=status,
                detail=detail,
                url=self.url,
                endpoint="/v2/chat",
            )
        if isinstance(exc, (ValueError, TypeError)):  # unparsable body
            return TransientError("malformed response")
        return exc

    async def close(self) -> None:
        client = getattr(self._client, "_client_wrapper", None)
        httpx_client = getattr(getattr(client, "httpx_client", None), "httpx_client", None)
        if httpx_client is not None:
            await httpx_client.aclose()


def _cohere_error_message(body) -> str:
    if isinstance(body, dict):
        return str(body.get("message") or body.get("error") or body)
    return str(body or "")


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
