"""A streaming client for OpenAI-compatible chat completions (llama.cpp, Ollama, vLLM, OpenAI, ...).

It asks for a stream (`"stream": true`, server-sent events) and yields the
answer as it arrives; a server that answers with one JSON body instead is read
whole. Busy-server answers (408, 409, 429, 5xx) and timeouts before the first
word are retried with the engine's backoff. A server that is not there, that
refuses the key, or that does not serve the model raises an error that says
which, and how to fix it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import AsyncIterator, Optional

import httpx

from engine_wrapper_class import RETRYABLE_STATUS, RetryPolicy
from generation_functions.errors import EngineError, RequestRejected, ServerUnreachable
from retrieval.openai_http import Busy, error_detail, names_unknown_model, retry_after, with_retries

Messages = list[dict[str, str]]


class UnknownModel(RequestRejected):
    """The server answered, but does not serve the model asked for."""


@dataclass(frozen=True)
class ChatSettings:
    base_url: str
    model: str
    api_key: str = ""
    timeout: float = 180.0  # seconds for the whole answer to arrive
    max_retry_seconds: float = 60.0
    temperature: float = 0.7
    max_tokens: int = 1024
    stop: tuple[str, ...] = ()
    # Where the person chooses the server and the model, for the messages that say how to fix one
    # (chat.py's options; the WebUI names its fields).
    base_url_hint: str = "--base-url"
    model_hint: str = "--model"

    @classmethod
    def from_config(cls, config, base_url: Optional[str] = None, model: Optional[str] = None, **overrides) -> "ChatSettings":
        """The engine's client settings: first BASE_URL, the key from config or environment, timeouts."""
        return cls(
            base_url=base_url or config.base_urls[0],
            model=model or config.api.LARGE_LOGICAL_MODEL,
            api_key=config.api_key,
            timeout=config.system.REQUEST_TIMEOUT,
            max_retry_seconds=min(config.system.MAX_RETRY_SECONDS, 60.0),
            stop=tuple(config.system.STOP_SEQUENCES) if config.system.STOP else (),
            **overrides,
        )


class ChatClient:
    def __init__(self, settings: ChatSettings):
        self.settings = settings
        self.base_url = settings.base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {settings.api_key}"} if settings.api_key else {}
        self._client = httpx.AsyncClient(timeout=httpx.Timeout(settings.timeout, connect=min(settings.timeout, 10.0)))
        self._retry = RetryPolicy(max_seconds=settings.max_retry_seconds)

    async def stream(self, messages: Messages) -> AsyncIterator[str]:
        """The answer, piece by piece, as the server sends it."""
        response = await with_retries(
            lambda: self._open(self._body(messages, stream=True)), self._retry, f"the model server at {self.base_url}"
        )
        try:
            if response.headers.get("content-type", "").startswith("text/event-stream"):
                async for piece in _event_stream_pieces(response):
                    yield piece
            else:  # a server that does not stream sends the whole answer at once
                yield _message_text(json.loads(await response.aread()))
        except httpx.TimeoutException:
            raise EngineError(f"the model server at {self.base_url} stopped answering mid-answer (timeout)") from None
        except httpx.HTTPError as exc:
            raise EngineError(f"the connection to {self.base_url} broke mid-answer ({type(exc).__name__})") from None
        except ValueError:
            raise EngineError(f"the model server at {self.base_url} sent an answer that is not JSON") from None
        finally:
            await response.aclose()

    async def complete(self, messages: Messages, max_tokens: Optional[int] = None) -> str:
        """The whole answer at once (no streaming)."""
        body = self._body(messages, stream=False)
        if max_tokens is not None:
            body["max_tokens"] = max_tokens
        response = await with_retries(lambda: self._open(body), self._retry, f"the model server at {self.base_url}")
        try:
            return _message_text(json.loads(await response.aread()))
        except ValueError:
            raise EngineError(f"the model server at {self.base_url} sent an answer that is not JSON") from None
        finally:
            await response.aclose()

    async def check(self) -> None:
        """One tiny request: raises when the server is absent, refuses the key or lacks the model."""
        await self.complete([{"role": "user", "content": "Reply with the single word OK."}], max_tokens=1)

    async def served_models(self) -> list[str]:
        """The model names the server lists (empty when it lists none)."""
        try:
            response = await self._client.get(f"{self.base_url}/models", headers=self._headers)
            return [str(entry["id"]) for entry in response.json().get("data", []) if isinstance(entry, dict) and "id" in entry]
        except (httpx.HTTPError, ValueError, AttributeError, TypeError):
            return []

    async def close(self) -> None:
        await self._client.aclose()

    def _body(self, messages: Messages, stream: bool) -> dict:
        body = {
            "model": self.settings.model,
            "messages": messages,
            "temperature": self.settings.temperature,
            "max_tokens": self.settings.max_tokens,
            "stream": stream,
        }
        if self.settings.stop:
            body["stop"] = list(self.settings.stop)
        return body

    async def _open(self, body: dict) -> httpx.Response:
        request = self._client.build_request(
            "POST", f"{self.base_url}/chat/completions", json=body, headers=self._headers
        )
        try:
            response = await self._client.send(request, stream=True)
        except httpx.TimeoutException:
            raise Busy("timeout") from None
        except httpx.HTTPError as exc:
            raise ServerUnreachable(self._unreachable(type(exc).__name__)) from None
        if response.status_code == 200:
            return response
        await response.aread()
        await response.aclose()
        raise await self._status_error(response)

    async def _status_error(self, response: httpx.Response) -> Exception:
        status = response.status_code
        if status in RETRYABLE_STATUS:
            return Busy(f"HTTP {status}", retry_after(response))
        if status in (401, 403):
            state = "no API key was given" if not self.settings.api_key else "the API key was rejected"
            return ServerUnreachable(
                f"the model server at {self.base_url} refused the request (HTTP {status}): {state}. "
                "Put the key in the environment (VERUSTOOLKIT_API_KEY or OPENAI_API_KEY) or in config.yaml as API.API_KEY."
            )
        detail = error_detail(response)
        if names_unknown_model(status, detail):
            served = await self.served_models()
            listing = f" It serves: {', '.join(served)}." if served else ""
            return UnknownModel(
                f"the model server at {self.base_url} does not serve model {self.settings.model!r} ({detail}).{listing} "
                f"Choose one with {self.settings.model_hint}."
            )
        return RequestRejected(f"the model server at {self.base_url} refused the request (HTTP {status}): {detail}")

    def _unreachable(self, what: str) -> str:
        hint = self.settings.base_url_hint
        return (
            f"no model server answers at {self.base_url} ({what}). Start one, for example\n"
            f"  llama.cpp:  llama-server -m model.gguf --port 8080      -> {hint} http://127.0.0.1:8080/v1\n"
            f"  Ollama:     ollama serve                                -> {hint} http://127.0.0.1:11434/v1\n"
            f"  vLLM:       vllm serve MODEL --port 8000                -> {hint} http://127.0.0.1:8000/v1\n"
            f"or point {hint} (or API.BASE_URL) at the server you have."
        )


async def _event_stream_pieces(response: httpx.Response) -> AsyncIterator[str]:
    """The text pieces of a server-sent event stream of chat completion chunks."""
    async for line in response.aiter_lines():
        if not line.startswith("data:"):
            continue  # comments (": keep-alive"), event names, blank separators
        data = line[len("data:") :].strip()
        if data == "[DONE]":
            return
        try:
            event = json.loads(data)
        except ValueError:
            continue
        if isinstance(event, dict) and event.get("error"):
            error = event["error"]
            message = error.get("message", error) if isinstance(error, dict) else error
            raise EngineError(f"the model server reported an error mid-answer: {message}")
        piece = _delta_text(event)
        if piece:
            yield piece


def _delta_text(event) -> str:
    try:
        choice = event["choices"][0]
    except (KeyError, IndexError, TypeError):
        return ""  # e.g. a final usage-only chunk
    delta = choice.get("delta") or {}
    return delta.get("content") or choice.get("text") or ""


def _message_text(data) -> str:
    try:
        return data["choices"][0]["message"].get("content") or ""
    except (KeyError, IndexError, TypeError, AttributeError):
        raise EngineError("the model server sent an answer without a message") from None
