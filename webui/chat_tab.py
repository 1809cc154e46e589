"""The Chat tab's logic: ask the model about the documents, as chat.py does, from the browser.

The pieces are chat.py's (retrieval/): the same index (open_retriever), the same
prompt (ChatSession builds FINAL_ASSISTANT_PROMPT_RAG with the chunks, or the
no-RAG prompt, then the earlier turns), the same streaming client. What the tab
adds:

- the model is one of the saved config's (API.LARGE_LOGICAL_MODEL or
  API.LOGICAL_MODEL at the first API.BASE_URL), or a base URL and model typed
  in the tab. The API key stays on the server: it is read from the saved config
  or the environment, and sent only to the servers of API.BASE_URL, so that a
  URL typed in the browser cannot collect it;
- one search index per app (IndexKeeper), built on the first question that needs
  it and brought up to date before a question when a document was added,
  changed or removed (a size or modification time differs);
- each browser session keeps its own exchanges (ChatTurn); only finished answers
  are part of the conversation the model sees next, as in chat.py.

`ChatService.ask` yields the exchanges after every change; webui/chat_view.py
turns them into the page.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import AsyncIterator, Optional

from generation_functions.config import Config, load_config
from generation_functions.documents import iter_document_files
from generation_functions.errors import ConfigError, EngineError, InputError
from retrieval.chat_client import ChatClient, ChatSettings
from retrieval.chat_session import Answered, ChatSession, Exchange, Piece, Sources
from retrieval.index import Hit, UpdateStats
from retrieval.search import Retriever, open_retriever

log = logging.getLogger("verustoolkit.webui")

LARGE, SMALL, CUSTOM = "large", "small", "custom"
# What a turn is doing; the view shows each differently.
SEARCHING, STREAMING, DONE, BROKEN, FAILED, STOPPED = "searching", "streaming", "done", "broken", "failed", "stopped"
STREAM_INTERVAL = 0.05  # seconds between page updates while an answer streams (the first piece goes at once)
BASE_URL_HINT = "the chat's Base URL field (Model: another server or model)"
MODEL_HINT = "the chat's Model field"


@dataclass
class ChatTurn:
    """One question of a browser session and what became of it."""

    question: str
    rag: bool = True
    model: str = ""  # the model's name, as shown
    answer: str = ""
    sources: tuple[Hit, ...] = ()
    state: str = SEARCHING
    note: str = ""  # why it failed or broke off
    search_seconds: Optional[float] = None  # index check and search
    first_word_seconds: Optional[float] = None  # from the question to the first piece of the answer
    total_seconds: Optional[float] = None

    @property
    def in_history(self) -> bool:
        """Only a finished answer is part of the conversation the model sees next."""
        return self.state == DONE

    @property
    def active(self) -> bool:
        return self.state in (SEARCHING, STREAMING)


def history(turns: list[ChatTurn]) -> list[Exchange]:
    return [Exchange(turn.question, turn.answer, turn.sources) for turn in turns if turn.in_history]


@dataclass(frozen=True)
class ChatOptions:
    """What the tab's widgets say about how to ask."""

    model_choice: str = LARGE
    base_url: str = ""  # with CUSTOM: empty is the first API.BASE_URL
    model: str = ""  # with CUSTOM: the model's name
    rag: bool = True
    top_k: Optional[int] = None  # None: RETRIEVAL.TOP_K
    temperature: float = 0.7  # chat.py's defaults
    max_tokens: int = 1024


# ---------------------------------------------------------------- which model


def model_choices(config: Optional[Config]) -> list[tuple[str, str]]:
    """(label, value) of the Model dropdown: the config's two models, then another server or model."""
    if config is None:
        large, small = "API.LARGE_LOGICAL_MODEL", "API.LOGICAL_MODEL"
    else:
        large = f"{config.api.LARGE_LOGICAL_MODEL} (API.LARGE_LOGICAL_MODEL)"
        small = f"{config.api.LOGICAL_MODEL} (API.LOGICAL_MODEL)"
    return [(large, LARGE), (small, SMALL), ("Another server or model (type below)", CUSTOM)]


def _same_server(url: str, configured: list[str]) -> bool:
    return url.strip().rstrip("/").lower() in {other.strip().rstrip("/").lower() for other in configured}


def chat_settings(config: Config, options: ChatOptions) -> ChatSettings:
    """The client settings for the chosen model; raises ValueError with what to change."""
    if not 0 <= options.temperature <= 2 or options.max_tokens < 1:
        raise ValueError("the temperature must be between 0 and 2, and the longest answer at least 1 token")
    hints = dict(
        base_url_hint=BASE_URL_HINT, model_hint=MODEL_HINT, temperature=options.temperature, max_tokens=options.max_tokens
    )
    if options.model_choice != CUSTOM:
        if config.system.MODE == "cohere":
            raise ValueError(
                "the chat speaks the OpenAI-compatible chat API, and SYSTEM.MODE is cohere: choose "
                "'Another server or model' and give a base URL (Cohere's compatible API is "
                "https://api.cohere.com/compatibility/v1)"
            )
        model = config.api.LOGICAL_MODEL if options.model_choice == SMALL else config.api.LARGE_LOGICAL_MODEL
        return ChatSettings.from_config(config, model=model, **hints)
    model = options.model.strip()
    if not model:
        raise ValueError("type the name of the model to chat with (Model name), or choose one of the config's models")
    url = options.base_url.strip() or config.base_urls[0]
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"the base URL must start with http:// or https:// (got {url!r})")
    settings = ChatSettings.from_config(config, base_url=url, model=model, **hints)
    if not _same_server(url, config.base_urls):
        settings = dataclasses.replace(settings, api_key="")  # the saved key goes to the saved servers only
    return settings


# ---------------------------------------------------------------- the search index


def source_signature(config: Config) -> object:
    """Cheap to compute (names, sizes and times, nothing read): it changes when the index's source does."""
    if config.retrieval.SOURCE == "output":
        try:
            stat = (config.output_dir / "chunk_index.json").stat()
            return ("output", stat.st_size, stat.st_mtime_ns)
        except OSError:
            return ("output", None)
    if not config.input_dir.is_dir():
        return ("input", None)
    files = []
    for path, relative in iter_document_files(config.input_dir):
        try:
            stat = path.stat()
        except OSError:
            continue
        files.append((relative, stat.st_size, stat.st_mtime_ns))
    return ("input", tuple(files))


def _index_identity(config: Config) -> tuple:
    settings = config.retrieval
    where = config.output_dir if settings.SOURCE == "output" else config.input_dir
    return (
        str(config.retrieval_index_path), settings.SOURCE, str(where), config.system.CHUNK_SIZE,
        settings.EMBEDDING_BASE_URL, settings.EMBEDDING_MODEL,
    )


def index_source_text(config: Config) -> str:
    if config.retrieval.SOURCE == "output":
        return f"the chunks of the finished run in {config.output_dir} (RETRIEVAL.SOURCE: output)"
    return f"the documents in {config.input_dir} (PATH.INPUT)"


@dataclass
class _OpenIndex:
    identity: tuple
    signature: object
    loop: asyncio.AbstractEventLoop  # an embedding client belongs to the loop it was opened on
    retriever: Retriever
    stats: UpdateStats


class IndexKeeper:
    """The app's one Retriever, opened on first use and reopened (an incremental update)
    when the documents or the retrieval settings changed. Shared by every browser session."""

    def __init__(self) -> None:
        self._open: Optional[_OpenIndex] = None
        self._lock: Optional[tuple[asyncio.AbstractEventLoop, asyncio.Lock]] = None
        self.status = ""  # the last thing learnt about the index, for pages opened later

    def _loop_lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        if self._lock is None or self._lock[0] is not loop:
            self._lock = (loop, asyncio.Lock())
        return self._lock[1]

    def _is_current(self, config: Config, signature: object) -> bool:
        current = self._open
        return (
            current is not None
            and current.identity == _index_identity(config)
            and current.signature == signature
            and (current.retriever.embedder is None or current.loop is asyncio.get_running_loop())
        )

    async def check(self, config: Config) -> tuple[bool, object]:
        """Whether the index needs building or updating (for the status line), and the signature
        of its source now, to hand to retriever()."""
        signature = await asyncio.to_thread(source_signature, config)
        return not self._is_current(config, signature), signature

    @property
    def built(self) -> bool:
        return self._open is not None

    async def retriever(self, config: Config, signature: object = None) -> tuple[Retriever, Optional[UpdateStats]]:
        """The retriever over an up-to-date index, and the update's figures when one was made now.
        `signature`: the source's, if check() just computed it.

        Raises InputError (no documents, no folder) and EngineError (the embedding server)."""
        async with self._loop_lock():
            if signature is None:
                signature = await asyncio.to_thread(source_signature, config)
            if self._is_current(config, signature):
                return self._open.retriever, None
            try:
                retriever, stats = await open_retriever(config)
            except InputError as exc:
                self.status = f"No search index: {exc}"
                raise
            previous, self._open = self._open, _OpenIndex(
                _index_identity(config), signature, asyncio.get_running_loop(), retriever, stats
            )
            if previous is not None:
                await previous.retriever.close()
            mode = "lexical + embeddings" if retriever.dense else "lexical"
            self.status = f"Search index of {index_source_text(config)}: {stats.summary()}; search: {mode}."
            return retriever, stats

    async def close(self) -> None:
        if self._open is not None:
            await self._open.retriever.close()
            self._open = None


# ---------------------------------------------------------------- asking


@dataclass(frozen=True)
class ChatUpdate:
    """The session's exchanges after a change, and the status line."""

    turns: list[ChatTurn]
    status: str
    problem: bool = False


class ClientPool:
    """Chat clients kept between questions: making one costs about 30 ms (httpx loads the TLS
    certificates), and a kept one reuses its open connection to the server."""

    def __init__(self, size: int = 4):
        self.size = size
        self._clients: dict[ChatSettings, ChatClient] = {}
        self._loop: Optional[asyncio.AbstractEventLoop] = None

    async def get(self, settings: ChatSettings) -> ChatClient:
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # a client's connections belong to the loop that opened them
            self._clients, self._loop = {}, loop
        client = self._clients.pop(settings, None)
        if client is None:
            client = ChatClient(settings)
            while len(self._clients) >= self.size:
                await self._clients.pop(next(iter(self._clients))).close()  # the least recently used
        self._clients[settings] = client
        return client

    async def close(self) -> None:
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.close()


class ChatService:
    """One per app: reads the saved config for every question, so a saved change applies at once."""

    def __init__(self, config_path: Path, keeper: Optional[IndexKeeper] = None):
        self.config_path = Path(config_path)
        self.keeper = keeper or IndexKeeper()
        self.clients = ClientPool()

    def saved_config(self) -> Config:
        return load_config(self.config_path, check_input=False)

    def intro_status(self) -> str:
        """What the status line says before a question, read off the saved config (nothing is indexed)."""
        if self.keeper.status:
            return self.keeper.status
        try:
            config = self.saved_config()
        except ConfigError as exc:
            return f"The saved config has a problem: {exc}"
        return f"The search index of {index_source_text(config)} is built or updated at the first question."

    async def update_index(self) -> ChatUpdate:
        """The "Build or update the search index now" button."""
        try:
            config = self.saved_config()
            _, stats = await self.keeper.retriever(config)
        except ConfigError as exc:
            return ChatUpdate([], f"The saved config has a problem: {exc}", True)
        except (InputError, EngineError) as exc:
            return ChatUpdate([], _index_problem(exc), True)
        return ChatUpdate([], self.keeper.status if stats else "The search index is up to date. " + self.keeper.status)

    async def ask(self, question: str, options: ChatOptions, turns: list[ChatTurn]) -> AsyncIterator[ChatUpdate]:
        """Append the question to `turns` and yield them as the answer comes (the list is changed in place)."""
        started = time.perf_counter()
        question = question.strip()
        if not question:
            yield ChatUpdate(turns, "Type a question first.", True)
            return
        earlier = history(turns)
        turn = ChatTurn(question, rag=options.rag)
        turns.append(turn)
        try:
            async for update in self._answer(turn, options, turns, earlier, started):
                yield update
        finally:
            if turn.active:
                turn.state = STOPPED  # cancelled (Clear), or its conversation was cleared

    async def _answer(self, turn, options, turns, earlier, started) -> AsyncIterator[ChatUpdate]:
        status = self.keeper.status
        try:
            config = self.saved_config()
            settings = chat_settings(config, options)
        except (ConfigError, ValueError) as exc:
            yield self._fail(turns, turn, f"the saved config has a problem: {exc}" if isinstance(exc, ConfigError) else str(exc))
            return
        turn.model = settings.model
        retriever = None
        if options.rag:
            checked = time.perf_counter()
            stale, signature = await self.keeper.check(config)
            if stale:
                what = "Updating" if self.keeper.built else "Building"
                yield ChatUpdate(turns, f"{what} the search index of {index_source_text(config)}…")
            try:
                retriever, stats = await self.keeper.retriever(config, signature)
            except (InputError, EngineError) as exc:
                yield self._fail(turns, turn, _index_problem(exc))
                return
            status = self.keeper.status
            # An update's time is the index's, shown in the status line; the question's own search time is not.
            check_seconds = 0.0 if stats else time.perf_counter() - checked
        else:
            check_seconds = 0.0
            turn.state = STREAMING  # nothing to search: waiting for the model
            status = status or "Search is off: the questions go to the model without documents."
            yield ChatUpdate(turns, status)
        async for update in self._stream(turns, turn, settings, config, retriever, options, earlier, status, started, check_seconds):
            yield update

    async def _stream(self, turns, turn, settings, config, retriever, options, earlier, status, started, check_seconds):
        client = await self.clients.get(settings)
        top_k = options.top_k or config.retrieval.TOP_K
        session = ChatSession(client, config.system, retriever, top_k, history=earlier)
        searching = time.perf_counter()
        last_shown = 0.0
        try:
            async with contextlib.aclosing(session.ask(turn.question)) as events:
                async for event in events:
                    if not any(shown is turn for shown in turns):
                        return  # Clear emptied the conversation: stop, and close the answer's connection
                    if isinstance(event, Sources):
                        turn.sources = event.hits
                        turn.search_seconds = check_seconds + time.perf_counter() - searching if retriever else None
                        turn.state = STREAMING
                        yield ChatUpdate(turns, status)
                    elif isinstance(event, Piece):
                        now = time.perf_counter()
                        if turn.first_word_seconds is None:
                            turn.first_word_seconds = now - started
                        turn.answer += event.text
                        if turn.answer and (now - last_shown >= STREAM_INTERVAL or last_shown == 0.0):
                            last_shown = now
                            yield ChatUpdate(turns, status)
                    elif isinstance(event, Answered):
                        turn.answer = event.exchange.answer
                        turn.state = DONE
                        turn.total_seconds = time.perf_counter() - started
                        yield ChatUpdate(turns, status)
        except EngineError as exc:
            if turn.answer:
                turn.state, turn.note = BROKEN, str(exc)
                yield ChatUpdate(turns, status, True)
            else:
                yield self._fail(turns, turn, str(exc), status)
        except Exception as exc:  # noqa: BLE001 - the page must say what happened, not hang
            log.exception("the chat failed")
            message = f"unexpected error ({type(exc).__name__}: {exc})"
            if turn.answer:
                turn.state, turn.note = BROKEN, message
                yield ChatUpdate(turns, status, True)
            else:
                yield self._fail(turns, turn, message, status)

    @staticmethod
    def _fail(turns: list[ChatTurn], turn: ChatTurn, message: str, status: str = "") -> ChatUpdate:
        turn.state, turn.note = FAILED, message
        return ChatUpdate(turns, status or message, not status)


async def stopped(turns: list[ChatTurn], timeout: float = 1.5) -> bool:
    """Wait until none of these turns is still being answered (False: timed out).

    Clear waits for this before it shows the empty chat, so that no update of the
    answer it stopped can arrive after it and show the old conversation again."""
    deadline = time.monotonic() + timeout
    while any(turn.active for turn in turns):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


def _index_problem(exc: Exception) -> str:
    if isinstance(exc, InputError):
        return (
            f"no documents to search: {exc}. Add documents on the Documents tab, "
            "or switch off 'Search the documents' to ask the model alone"
        )
    return f"the search index could not be updated: {exc}"
