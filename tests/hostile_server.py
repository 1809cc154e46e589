"""A small OpenAI-compatible HTTP server that misbehaves on purpose, for tests.

Every POST is answered by a function of the request, `reply(exchange) -> Reply`,
which may return anything: a body that is not a completion, any status, any
header. With an `upstream` FakeLLMServer the request is first forwarded there,
and `reply` sees the fake's realistic answer (`exchange.upstream`) and may pass
it on, change it (negative usage, the API key echoed) or replace it: a whole
pipeline run can then go through a server that is wrong in one precise way.

GET .../models lists `models` (None: answers 404, as a server without a listing).
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import aiohttp
import orjson
from aiohttp import web

from tests.fake_llm_server import FakeLLMServer


@dataclass
class Reply:
    status: int = 200
    body: Any = None  # bytes and str are sent as they are; anything else as JSON
    headers: dict[str, str] = field(default_factory=dict)

    def payload(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode("utf-8")
        return orjson.dumps(self.body)

    def json(self) -> Any:
        return orjson.loads(self.payload())


@dataclass
class Exchange:
    path: str
    body: Any  # the request's JSON (None when it was not JSON)
    authorization: str
    number: int  # 0 for the first POST
    upstream: Optional[Reply] = None  # the fake server's answer, when forwarding


def completion(text: str = "OK", usage: Any = None, finish_reason: Any = "stop") -> dict:
    """A well-formed chat completion body (usage: what to report; None: a plausible one)."""
    if usage is None:
        usage = {"prompt_tokens": 10, "completion_tokens": max(1, len(text) // 4)}
    return {
        "id": "x",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish_reason}],
        "usage": usage,
    }


class HostileServer:
    def __init__(
        self,
        reply: Callable[[Exchange], Reply],
        upstream: Optional[FakeLLMServer] = None,
        models: Optional[list[str]] = [],  # noqa: B006 - never mutated
    ):
        self.reply = reply
        self.upstream = upstream
        self.models = models
        self.exchanges: list[Exchange] = []
        self._lock = threading.Lock()
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._runner: Optional[web.AppRunner] = None
        self._session: Optional[aiohttp.ClientSession] = None
        self._thread: Optional[threading.Thread] = None
        self.port = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def count(self) -> int:
        with self._lock:
            return len(self.exchanges)

    # ------------------------------------------------------------ lifecycle

    def start(self) -> "HostileServer":
        ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(ready,), daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the hostile server did not start")
        return self

    def _serve(self, ready: threading.Event) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._start_site())
        ready.set()
        self._loop.run_forever()

    async def _start_site(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]

    def stop(self) -> None:
        if self._loop is None:
            return

        async def shutdown() -> None:
            if self._session is not None:
                await self._session.close()
            await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop = None

    def __enter__(self) -> "HostileServer":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    # ------------------------------------------------------------ HTTP

    async def _handle(self, http: web.Request) -> web.StreamResponse:
        if http.method == "GET":
            if http.path.rstrip("/").endswith("/models") and self.models is not None:
                return web.json_response({"object": "list", "data": [{"id": m, "object": "model"} for m in self.models]})
            return web.json_response({"error": {"message": "not found"}}, status=404)
        raw = await http.read()
        try:
            body = orjson.loads(raw)
        except ValueError:
            body = None
        with self._lock:
            exchange = Exchange(http.path, body, http.headers.get("Authorization", ""), len(self.exchanges))
            self.exchanges.append(exchange)
        if self.upstream is not None:
            exchange.upstream = await self._forward(http, raw)
        reply = self.reply(exchange)
        headers = {"Content-Type": "application/json", **reply.headers}
        return web.Response(status=reply.status, body=reply.payload(), headers=headers)

    async def _forward(self, http: web.Request, raw: bytes) -> Reply:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        url = f"http://127.0.0.1:{self.upstream.port}{http.path}"
        headers = {"Content-Type": "application/json"}
        if "Authorization" in http.headers:
            headers["Authorization"] = http.headers["Authorization"]
        async with self._session.post(url, data=raw, headers=headers) as response:
            return Reply(response.status, await response.read(), {})
