"""A local fake OpenAI-compatible (and Cohere v2) model server for tests and benchmarks.

Real HTTP on 127.0.0.1, so the engine, its SDKs, retries and timeouts are
exercised exactly as against llama.cpp, vLLM or a cloud API. Responses are
deterministic functions of the request (so a killed and resumed run can be
compared with an uninterrupted one); tests can script any step, inject faults
in any proportion, and model latency.

Endpoints: GET /v1/models, POST /v1/chat/completions (streamed as server-sent
events when the request asks for `"stream": true`), POST /v1/completions,
POST /v1/embeddings (deterministic hashed bag-of-words vectors), POST /v2/chat
(Cohere), GET /v1/models for Cohere too.

Answers honour the request's max_tokens (cut, with finish_reason "length")
and stop sequences. Imperfection (tests/fake_imperfect.py) flaws a seeded share
of answers as a real model's are flawed.

Run standalone: python -m tests.fake_llm_server --port 8080 (--help lists every flag)
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import random
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field

import orjson
from aiohttp import web
from typing import Callable, Optional

from generation_functions.conversation_check import content_words, recall
from tests.fake_constraints import Refused, SentConstraint, constrained_answer, read_constraint
from tests.fake_imperfect import Imperfection
from generation_functions.steps import (
    ANSWER_CHECK,
    CHUNK_FILTER,
    JUDGE,
    CONTEXT_REPAIR,
    CONVERSATION,
    QUESTION_CHECK,
    QUESTION_GENERATION,
    classify_by_marker,
)

# Transport faults the client must retry, then content faults it must parse and
# reject: "cut" ends the connection halfway through the body, "truncated" sends a
# complete response whose text was cut short.
FAULTS = ("429", "500", "502", "503", "timeout", "drop", "cut", "empty", "truncated", "refusal", "noverdict")

_ENDPOINTS = frozenset({"/v1/chat/completions", "/v1/completions", "/v2/chat", "/v1/embeddings"})
_WORD = re.compile(r"\w+")
EMBEDDING_DIMENSIONS = 256
_FENCE = re.compile(r'"""\n?(.*?)\n?"""', re.DOTALL)
_QA = re.compile(r"\*\*QUESTION:\*\*\s*(.*?)\s*\*\*ANSWER:\*\*\s*(.*?)(?=\n\s*\*\*QUESTION:\*\*|\Z)", re.DOTALL)
_SENTENCE = re.compile(r"(?<=[.!?])\s+")


@dataclass
class Request:
    """What a test may inspect about one request."""

    path: str
    step: str
    body: dict
    system: str
    user: str  # the final input: last user message, or the last instruction in completion mode
    model: str
    max_pairs: int = 3  # how many pairs the default question generation writes
    knowledge: tuple[str, ...] = ()  # what the fake "knows" when asked a plain question (a finetuned model)
    prompt_tokens: int = 0  # estimated from the request size
    fault: str = ""  # the fault injected into this request, if any
    flaw: str = ""  # the imperfection given to this answer, if any (tests/fake_imperfect.py)
    response: Optional[str] = None  # the text sent back (None: no answer was sent)
    finish_reason: str = "stop"  # "length" when the answer was cut at the request's max_tokens
    constraint: Optional[SentConstraint] = None  # the decoding constraint the request carried (tests/fake_constraints.py)


Responder = Callable[[Request], str]


CHAT = "chat"  # a request that is no pipeline step: a candidate model asked a question (evaluate.py, chat.py)


def classify(system: str) -> str:
    """Tell the steps apart by the marker words their instructions carry (the table of steps names them)."""
    return classify_by_marker(system) or CHAT


def fenced_blocks(text: str) -> list[str]:
    return [block.strip() for block in _FENCE.findall(text)]


def qa_blocks(text: str) -> list[tuple[str, str]]:
    return [(q.strip(), a.strip()) for q, a in _QA.findall(text)]


# ---------------------------------------------------------------- default responses


def default_chunk_filter(request: Request) -> str:
    blocks = fenced_blocks(request.user)
    text = blocks[0] if blocks else request.user
    if "[unsuitable]" in text:
        return "The chunk is a list of links with nothing about any of them.\n\nUNSUITABLE: links or navigation"
    return "The chunk explains its subject in full sentences.\n\nSUITABLE"


def default_question_generation(request: Request) -> str:
    blocks = fenced_blocks(request.user)
    text = blocks[0] if blocks else request.user
    sentences = [s.strip() for s in _SENTENCE.split(" ".join(text.split())) if len(s.split()) >= 6]
    if not sentences:
        return "I could not find anything to ask about in this text."
    pairs = []
    for sentence in sentences[: request.max_pairs]:
        topic = " ".join(sentence.split()[:6]).rstrip(".,;:")
        pairs.append(f"**QUESTION:**\nWhat does Verus documentation explain about \"{topic}\"?\n\n**ANSWER:**\n{sentence}")
    return "\n\n".join(pairs)


def default_question_check(request: Request) -> str:
    blocks = fenced_blocks(request.user)
    question = blocks[1] if len(blocks) > 1 else ""
    verdict = "IRRELEVANT" if "[irrelevant]" in question else "RELEVANT"
    return (
        "## Reasoning:\nThe text is compared with the question step by step.\n"
        f"The question asks: {question[:80]}\n\n{verdict}"
    )


def default_answer_check(request: Request) -> str:
    blocks = fenced_blocks(request.user)
    answer = blocks[2] if len(blocks) > 2 else ""
    verdict = "INACCURATE" if "[inaccurate]" in answer else "ACCURATE"
    return f"## Reasoning:\nEach claim of the answer is checked against the text.\n\n{verdict}"


def default_context_repair(request: Request) -> str:
    pairs = qa_blocks(request.user)
    question, answer = pairs[-1] if pairs else ("", "")
    if "[fail]" in question:
        return "The question cannot stand on its own.\nFinal judgment: FAIL"
    if "the text" in question.lower():
        fixed = re.sub(r"(?i)according to the text,?\s*|\s*in the text", "", question).strip()
        return (
            "The question leans on the source.\nFinal judgment: REWORD\n\n### Question Rewording:\n"
            f"**QUESTION:**\n{fixed}\n\n**ANSWER:**\n{answer}"
        )
    return "Neither the question nor the answer leans on the source.\nFinal judgment: PASS"


def default_conversation(request: Request) -> str:
    pairs = qa_blocks(request.user)
    lines = ["## Conversation:", "**AI Assistant:**", "Hello! Ask me anything about Verus.", ""]
    for question, answer in pairs:
        lines += ["**User:**", question, "", "**AI Assistant:**", answer, ""]
    return "\n".join(lines)


def _best_sentence(question: str, sources: list[str]) -> Optional[str]:
    """The sentence of the sources that carries most of the question's content words (at least half)."""
    wanted = content_words(question) - {"verus"}
    best, best_score = None, 0.5
    for source in sources:
        for sentence in _SENTENCE.split(" ".join(source.split())):
            score = len(wanted & content_words(sentence)) / len(wanted) if wanted else 0.0
            if score > best_score:
                best, best_score = sentence, score
    return best


def default_chat(request: Request) -> str:
    """A candidate model asked a plain question: it answers from the context in its system
    prompt (RAG, oracle), else from what it was given to know, else it declines."""
    found = _best_sentence(request.user, [request.system, *request.knowledge])
    return found if found is not None else "I'm sorry, I don't know the answer to that."


def default_judge(request: Request) -> str:
    blocks = fenced_blocks(request.user)
    reference = blocks[1] if len(blocks) > 1 else ""
    pairs = qa_blocks(request.user)
    candidate = pairs[-1][1] if pairs else ""
    if "don't know" in candidate.lower() or "do not know" in candidate.lower():
        grade, reason = "DECLINED", "The candidate says it does not know."
    else:
        share = recall(reference, candidate)
        grade = "CORRECT" if share >= 0.6 else "PARTLY CORRECT" if share >= 0.3 else "WRONG"
        reason = f"The candidate carries {share:.0%} of the reference's content words."
    return f"The reference and the candidate are compared claim by claim.\n\nReason: {reason}\n{grade}"


DEFAULT_RESPONDERS: dict[str, Responder] = {
    CHAT: default_chat,
    JUDGE: default_judge,
    CHUNK_FILTER: default_chunk_filter,
    QUESTION_GENERATION: default_question_generation,
    QUESTION_CHECK: default_question_check,
    ANSWER_CHECK: default_answer_check,
    CONTEXT_REPAIR: default_context_repair,
    CONVERSATION: default_conversation,
}


# ---------------------------------------------------------------- the server


@dataclass
class FaultPlan:
    """Inject faults into a share of requests; the choice is random but seeded."""

    rate: float = 0.0
    kinds: tuple[str, ...] = FAULTS
    seed: int = 0
    timeout_seconds: float = 3.0  # how long a "timeout" fault stalls
    _rng: random.Random = field(default_factory=random.Random, repr=False)

    def __post_init__(self) -> None:
        self._rng.seed(self.seed)

    def pick(self) -> Optional[str]:
        if self.rate <= 0 or self._rng.random() >= self.rate:
            return None
        return self._rng.choice(self.kinds)


def _new_loop() -> asyncio.AbstractEventLoop:
    """uvloop where installed: the fake server should cost the benchmark little."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


class FakeLLMServer:
    """The server runs an aiohttp application on its own event loop in a
    background thread, so one process can hold hundreds of slow requests open
    at once (as a real batched model server does) without a thread each."""

    def __init__(
        self,
        responders: Optional[dict[str, Responder]] = None,
        api_key: Optional[str] = None,
        faults: Optional[FaultPlan] = None,
        latency: float = 0.0,
        per_token_latency: float = 0.0,
        port: int = 0,
        capacity: int = 0,
        max_pairs: int = 3,
        cancel_on_disconnect: bool = False,
        knowledge: tuple[str, ...] = (),
        models: Optional[list[str]] = None,
        streaming: bool = True,
        stream_delay: float = 0.0,
        break_stream_after: Optional[int] = None,
        break_stream_with: str = "error",
        imperfect: Optional[Imperfection] = None,
        honours: tuple[str, ...] = (),
        refuse_unknown: bool = False,
        fails: tuple[str, ...] = (),
    ):
        self.responders = {**DEFAULT_RESPONDERS, **(responders or {})}
        # Decoding constraints: the kinds ("grammar", "json_schema") whose answers keep to them;
        # others are ignored, or refused with HTTP 400 when refuse_unknown (as OpenAI does).
        self.honours = tuple(honours)  # kinds, or field names ("json_object") for one form of a kind
        self.refuse_unknown = refuse_unknown
        self.fails = tuple(fails)  # constraint fields answered with HTTP 500, as llama-cpp-python does
        # A seeded share of answers flawed as a real model's are (None: every answer is good).
        self.imperfect = imperfect or Imperfection()
        self.api_key = api_key
        self.faults = faults or FaultPlan()
        self.latency = latency
        self.per_token_latency = per_token_latency
        self.requests: list[Request] = []
        self.faults_injected: Counter = Counter()
        self.in_flight = 0
        self.peak_in_flight = 0
        self.max_pairs = max_pairs
        self.knowledge = tuple(knowledge)
        # The models the server lists; when given, a request for another model gets a 404
        # "model not found" as vLLM, Ollama and OpenAI send (None: any model is served).
        self.models = models
        self.streaming = streaming  # False: answer "stream": true with one JSON body, as some servers do
        self.stream_delay = stream_delay  # seconds between streamed pieces
        # A stream that breaks after this many content pieces (None: never), with an error
        # event as llama.cpp and vLLM send ("error") or by hanging up ("drop"). Read per
        # request, so a test can set it on a running server.
        self.break_stream_after = break_stream_after
        self.break_stream_with = break_stream_with
        # Server capacity: at most this many requests are served at once; the
        # rest queue, as on a GPU server with a fixed batch size (0: unlimited).
        self._capacity_limit = capacity
        # Whether a request the client gave up on stops being served, as vLLM,
        # llama.cpp and Ollama do; otherwise it keeps its place until done.
        self._cancel_on_disconnect = cancel_on_disconnect
        self._capacity: Optional[asyncio.Semaphore] = None
        self.service_seconds = 0.0  # sum of modelled service times
        self.service_by_step: dict[str, float] = {}
        self._in_flight_area = 0.0  # integral of in_flight over time
        self._last_change = time.monotonic()
        self.first_request_at: Optional[float] = None
        self.last_response_at: Optional[float] = None
        self._lock = threading.Lock()
        self._requested_port = port
        self._port = 0
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._runner: Optional[web.AppRunner] = None
        self._thread: Optional[threading.Thread] = None

    # lifecycle
    @property
    def port(self) -> int:
        return self._port

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def cohere_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "FakeLLMServer":
        ready = threading.Event()
        failure: list[BaseException] = []
        self._loop = _new_loop()
        self._thread = threading.Thread(target=self._serve, args=(ready, failure), daemon=True)
        self._thread.start()
        ready.wait(10)
        if failure:
            raise failure[0]
        return self

    def _serve(self, ready: threading.Event, failure: list) -> None:
        loop = self._loop
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._start_site())
        except BaseException as exc:  # reported to start()
            failure.append(exc)
            ready.set()
            return
        ready.set()
        loop.run_forever()
        loop.run_until_complete(self._runner.cleanup())
        loop.close()

    async def _start_site(self) -> None:
        if self._capacity_limit:
            self._capacity = asyncio.Semaphore(self._capacity_limit)
        app = web.Application(client_max_size=256 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(
            app, access_log=None, handle_signals=False, handler_cancellation=self._cancel_on_disconnect
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self._requested_port, backlog=1024, reuse_address=True)
        await site.start()
        self._port = self._runner.addresses[0][1]

    def stop(self) -> None:
        if self._loop is not None and self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)

    def __enter__(self) -> "FakeLLMServer":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop()

    # inspection
    def count(self, step: Optional[str] = None) -> int:
        with self._lock:
            return sum(1 for r in self.requests if step is None or r.step == step)

    def steps_seen(self) -> Counter:
        with self._lock:
            return Counter(r.step for r in self.requests)

    def stats(self) -> dict:
        """Counters for benchmarks: requests, service time, mean requests in flight."""
        with self._lock:
            span = (self.last_response_at or 0) - (self.first_request_at or 0)
            return {
                "requests": len(self.requests),
                "by_step": dict(Counter(r.step for r in self.requests)),
                "service_seconds": self.service_seconds,
                "service_by_step": dict(self.service_by_step),
                "busy_span_seconds": span,
                "first_request_at": self.first_request_at,
                "last_response_at": self.last_response_at,
                "mean_in_flight": self._in_flight_area / span if span > 0 else 0.0,
                "peak_in_flight": self.peak_in_flight,
                "faults": dict(self.faults_injected),
            }

    def reset_stats(self) -> None:
        """Forget what came before (a benchmark's warm-up)."""
        with self._lock:
            self.requests.clear()
            self.faults_injected.clear()
            self.service_seconds = 0.0
            self.service_by_step.clear()
            self._in_flight_area = 0.0
            self._last_change = time.monotonic()
            self.first_request_at = self.last_response_at = None
            self.peak_in_flight = self.in_flight

    # bookkeeping (called on the server loop; the lock guards readers in other threads)
    def respond(self, request: Request) -> str:
        text = self.responders[request.step](request)
        flaw = self.imperfect.flaw_for(request.step, f"{request.system}\x00{request.user}")
        if flaw is None:
            return text
        request.flaw, rewrite = flaw
        return rewrite(text, request.user)

    def _account(self, now: float) -> None:
        self._in_flight_area += self.in_flight * (now - self._last_change)
        self._last_change = now

    def _enter(self, request: Request) -> None:
        with self._lock:
            now = time.monotonic()
            self.requests.append(request)
            self._account(now)
            if self.first_request_at is None:
                self.first_request_at = now
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)

    def _leave(self) -> None:
        with self._lock:
            now = time.monotonic()
            self._account(now)
            self.in_flight -= 1
            self.last_response_at = now

    async def _serve_delay(self, seconds: float, step: str) -> None:
        if self._capacity is None:
            await asyncio.sleep(seconds)
        else:
            async with self._capacity:
                await asyncio.sleep(seconds)
        with self._lock:
            self.service_seconds += seconds
            self.service_by_step[step] = self.service_by_step.get(step, 0.0) + seconds

    # HTTP
    def _authorized(self, http: web.Request) -> bool:
        return self.api_key is None or http.headers.get("Authorization", "") == f"Bearer {self.api_key}"

    async def _handle(self, http: web.Request) -> web.StreamResponse:
        if not self._authorized(http):
            return web.json_response({"error": {"message": "invalid api key"}}, status=401)
        if http.method == "GET":
            if http.path == "/stats":
                return web.json_response(self.stats())
            if http.path == "/stats/reset":
                self.reset_stats()
                return web.json_response({"reset": True})
            if http.path.rstrip("/").endswith("/models"):
                names = self.models if self.models is not None else []  # None: serves any name, lists none
                return web.json_response({"object": "list", "data": [{"id": name, "object": "model"} for name in names]})
            return web.json_response({"error": {"message": "not found"}}, status=404)
        if http.path not in _ENDPOINTS:
            return web.json_response({"error": {"message": f"no endpoint {http.path}"}}, status=404)
        try:
            raw = await http.read()
            body = orjson.loads(raw)
            request = _parse_request(http.path, body)
            request.prompt_tokens = _tokens_of_size(len(raw))
        except (ValueError, KeyError, IndexError, TypeError):
            return web.json_response({"error": {"message": "malformed request"}}, status=400)
        try:
            request.constraint = read_constraint(body)
        except Refused as exc:
            return web.json_response({"error": {"message": str(exc), "type": "invalid_request_error"}}, status=400)
        if request.constraint is not None and request.constraint.field in self.fails:
            return web.json_response({"error": {"message": "Internal Server Error"}}, status=500)
        if request.constraint is not None and not self._honours(request.constraint) and self.refuse_unknown:
            message = f"Unrecognized request argument supplied: {request.constraint.field}"
            return web.json_response({"error": {"message": message, "type": "invalid_request_error"}}, status=400)
        request.max_pairs = self.max_pairs
        request.knowledge = self.knowledge
        if self.models is not None and request.model not in self.models:
            message = f"The model `{request.model}` does not exist."
            return web.json_response({"error": {"message": message, "code": "model_not_found"}}, status=404)
        self._enter(request)
        try:
            return await self._answer(http, request)
        finally:
            self._leave()

    def _honours(self, constraint) -> bool:
        return constraint.kind in self.honours or constraint.field in self.honours

    @staticmethod
    async def _cut_short(http: web.Request, body: bytes) -> web.StreamResponse:
        """Promise the whole body, send half of it, and hang up."""
        response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        response.content_length = len(body)
        await response.prepare(http)
        await response.write(body[: len(body) // 2])
        http.transport.close()
        raise asyncio.CancelledError()

    async def _stream(self, http: web.Request, request: Request, text: str) -> web.StreamResponse:
        """Server-sent events as OpenAI sends them: a role chunk, content pieces, a finish chunk, [DONE]."""
        response = web.StreamResponse(status=200, headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(http)
        ident = hashlib.sha1(text.encode()).hexdigest()[:12]
        deltas = [{"role": "assistant", "content": ""}] + [{"content": piece} for piece in _stream_pieces(text)]
        for number, delta in enumerate(deltas):
            if number and self.stream_delay:
                await asyncio.sleep(self.stream_delay)
            if self.break_stream_after is not None and number > self.break_stream_after:
                return await self._break_stream(http, response)
            chunk = {"id": ident, "object": "chat.completion.chunk", "created": 0, "model": request.model,
                     "choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
            await response.write(b"data: " + orjson.dumps(chunk) + b"\n\n")
        final = {"id": ident, "object": "chat.completion.chunk", "created": 0, "model": request.model,
                 "choices": [{"index": 0, "delta": {}, "finish_reason": request.finish_reason}]}
        await response.write(b"data: " + orjson.dumps(final) + b"\n\ndata: [DONE]\n\n")
        await response.write_eof()
        return response

    async def _break_stream(self, http: web.Request, response: web.StreamResponse) -> web.StreamResponse:
        """End a stream mid-answer: an error event then [DONE], or a dropped connection."""
        if self.break_stream_with == "drop":
            http.transport.close()
            raise asyncio.CancelledError()
        error = {"error": {"message": "injected mid-stream failure: the model ran out of memory", "type": "server_error"}}
        await response.write(b"data: " + orjson.dumps(error) + b"\n\ndata: [DONE]\n\n")
        await response.write_eof()
        return response

    async def _answer(self, http: web.Request, request: Request) -> web.StreamResponse:
        fault = self.faults.pick()
        if fault:
            request.fault = fault
            with self._lock:
                self.faults_injected[fault] += 1
        if fault == "400":
            return web.json_response({"error": {"message": "injected 400: prompt too long"}}, status=400)
        if fault in ("429", "500", "502", "503"):
            headers = {"Retry-After": "0"} if fault == "429" else {}
            return web.json_response({"error": {"message": f"injected {fault}"}}, status=int(fault), headers=headers)
        if fault in ("timeout", "drop"):
            if fault == "timeout":
                await asyncio.sleep(self.faults.timeout_seconds)
            http.transport.close()
            raise asyncio.CancelledError()
        if request.path == "/v1/embeddings":
            return web.json_response(_embeddings_payload(request))
        text = self.respond(request)
        if fault == "empty":
            text = ""
        elif fault == "truncated":
            text = text[: len(text) // 3]
        elif fault == "refusal":
            text = "I'm sorry, but I can't help with that request."
        elif fault == "noverdict":
            text = "Let me think about this carefully. The text discusses several things."
        if request.constraint is not None and self._honours(request.constraint):
            text = constrained_answer(request.constraint, request.step, text, lambda: self.responders[request.step](request))
        text, request.finish_reason = within_limits(text, request)
        delay = self.latency + self.per_token_latency * _tokens(text)
        if delay:
            await self._serve_delay(delay, request.step)
        request.response = text
        if fault == "cut":
            request.response = None
            return await self._cut_short(http, orjson.dumps(_completion_payload(request, text)))
        if self.streaming and request.body.get("stream") and request.path.endswith("/chat/completions"):
            return await self._stream(http, request, text)
        return web.Response(body=orjson.dumps(_completion_payload(request, text)), content_type="application/json")


def _parse_request(path: str, body: dict) -> Request:
    if path == "/v1/embeddings":
        texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
        if not all(isinstance(text, str) for text in texts):
            raise TypeError("input must be text")
        return Request(path, "embeddings", body, "", "\n".join(texts), body.get("model", ""))
    if "messages" in body:
        messages = body["messages"]
        system = next((m["content"] for m in messages if m.get("role") == "system"), messages[0]["content"])
        user = next((m["content"] for m in reversed(messages) if m.get("role") == "user"), "")
        if isinstance(user, list):  # content parts
            user = "".join(part.get("text", "") for part in user)
        if isinstance(system, list):
            system = "".join(part.get("text", "") for part in system)
    else:
        prompt = body.get("prompt", "")
        head, _, _ = prompt.partition("### Instruction:")
        system = head
        last = prompt.rsplit("### Instruction:", 1)[-1]
        user = last.rsplit("### Response:", 1)[0]
    return Request(path, classify(system), body, system, user, body.get("model", ""))


def within_limits(text: str, request: Request) -> tuple[str, str]:
    """The answer as a server that honours the request sends it, and its finish reason.

    Generation ends at the first stop sequence (which is not sent), or after
    max_tokens tokens (a token being 4 characters here, as everywhere in this
    fake), whichever comes first; "length" says the answer was cut."""
    body = request.body
    stops = body.get("stop") if "stop" in body else body.get("stop_sequences")
    stops = [stops] if isinstance(stops, str) else [stop for stop in stops or [] if isinstance(stop, str) and stop]
    limit = body.get("max_tokens", body.get("max_completion_tokens"))
    cut = min((text.find(stop) for stop in stops if stop in text), default=len(text))
    if isinstance(limit, int) and not isinstance(limit, bool) and limit >= 0 and _tokens(text[:cut]) > limit:
        return text[: limit * 4], "length"
    return text[:cut], "stop"


def _stream_pieces(text: str) -> list[str]:
    """The answer in pieces of a few words, whitespace kept, as a model streams tokens."""
    words = re.findall(r"\S+\s*|\s+", text)
    return ["".join(words[i : i + 3]) for i in range(0, len(words), 3)]


def embedding_of(text: str, dimensions: int = EMBEDDING_DIMENSIONS) -> list[float]:
    """A deterministic unit vector: each word adds 1 to a dimension picked by its hash.
    Texts sharing words point the same way, as real embeddings of related texts do."""
    vector = [0.0] * dimensions
    for word in _WORD.findall(text.lower()):
        vector[int.from_bytes(hashlib.sha256(word.encode()).digest()[:4], "big") % dimensions] += 1.0
    norm = sum(value * value for value in vector) ** 0.5 or 1.0
    return [value / norm for value in vector]


def _embeddings_payload(request: Request) -> dict:
    texts = request.body["input"] if isinstance(request.body["input"], list) else [request.body["input"]]
    data = [{"object": "embedding", "index": n, "embedding": embedding_of(text)} for n, text in enumerate(texts)]
    tokens = sum(_tokens(text) for text in texts)
    return {"object": "list", "model": request.model, "data": data, "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}


def _tokens(text: str) -> int:
    return max(1, len(text) // 4)


def _tokens_of_size(size: int) -> int:
    return max(1, size // 4)


def _completion_payload(request: Request, text: str) -> dict:
    prompt_tokens = request.prompt_tokens
    completion_tokens = _tokens(text) if text else 0
    ident = hashlib.sha1(text.encode()).hexdigest()[:12]
    if request.path == "/v2/chat":
        return {
            "id": ident,
            "finish_reason": "MAX_TOKENS" if request.finish_reason == "length" else "COMPLETE",
            "message": {"role": "assistant", "content": [{"type": "text", "text": text}]},
            "usage": {
                "billed_units": {"input_tokens": prompt_tokens, "output_tokens": completion_tokens},
                "tokens": {"input_tokens": prompt_tokens, "output_tokens": completion_tokens},
            },
        }
    usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
             "total_tokens": prompt_tokens + completion_tokens}
    if request.path.endswith("/chat/completions"):
        choice = {"index": 0, "finish_reason": request.finish_reason, "message": {"role": "assistant", "content": text}}
        kind = "chat.completion"
    else:
        choice = {"index": 0, "finish_reason": request.finish_reason, "text": text, "logprobs": None}
        kind = "text_completion"
    return {"id": ident, "object": kind, "created": 0, "model": request.model, "choices": [choice], "usage": usage}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tests.fake_llm_server",
        description=(
            "Run the fake OpenAI-compatible (and Cohere) model server in the foreground, for trying a run "
            "without a model. It answers every pipeline step in the protocol the prompts ask for, honours "
            "max_tokens (finish_reason \"length\", the answer cut) and stop sequences, and can inject faults "
            "and answer imperfectly. A token is 4 characters of answer text."
        ),
    )
    parser.add_argument("--port", metavar="PORT", type=int, default=8080, help="TCP port to listen on, on 127.0.0.1 (0: any free port; default 8080)")
    parser.add_argument("--latency", metavar="SECONDS", type=float, default=0.0, help="seconds added to every answer (default 0)")
    parser.add_argument(
        "--per-token-latency", metavar="SECONDS", type=float, default=0.0, help="seconds added per token of the answer (default 0)"
    )
    parser.add_argument(
        "--fault-rate",
        metavar="SHARE",
        type=float,
        default=0.0,
        help=f"share of requests, 0 to 1, that get a fault: one of {', '.join(FAULTS)} (default 0)",
    )
    parser.add_argument(
        "--faults",
        metavar="KINDS",
        default=",".join(FAULTS),
        help="comma-separated fault kinds that --fault-rate draws from (default: all of them)",
    )
    parser.add_argument(
        "--timeout-seconds", metavar="SECONDS", type=float, default=3.0, help="seconds a 'timeout' fault stalls before hanging up (default 3)"
    )
    parser.add_argument(
        "--imperfect",
        metavar="SHARE",
        type=float,
        default=0.0,
        help="share of pipeline answers, 0 to 1, flawed as a real model's are: no verdict, a wrong verdict, "
        "no markers, a conversation that skips a question (default 0: every answer is good)",
    )
    parser.add_argument(
        "--seed", metavar="N", type=int, default=0, help="integer that picks the faulty and the imperfect answers (default 0)"
    )
    parser.add_argument("--api-key", metavar="KEY", default=None, help="the Bearer key every request must carry (default: none needed)")
    parser.add_argument("--capacity", metavar="REQUESTS", type=int, default=0, help="requests served at once; the rest queue (0: unlimited; default 0)")
    parser.add_argument("--max-pairs", metavar="PAIRS", type=int, default=3, help="question/answer pairs per chunk in question generation (default 3)")
    parser.add_argument(
        "--models", metavar="NAMES", default="", help="comma-separated model names served; others get HTTP 404 (default: any model)"
    )
    parser.add_argument("--stream-delay", metavar="SECONDS", type=float, default=0.0, help="seconds between streamed pieces of an answer (default 0)")
    return parser


def main(argv: Optional[list[str]] = None) -> None:
    args = build_parser().parse_args(argv)
    kinds = tuple(kind.strip() for kind in args.faults.split(",") if kind.strip())
    unknown = sorted(set(kinds) - set(FAULTS) - {"400"})
    if unknown:
        build_parser().error(f"--faults: unknown kind(s) {', '.join(unknown)}; known: {', '.join(FAULTS)}, 400")
    server = FakeLLMServer(
        api_key=args.api_key,
        faults=FaultPlan(rate=args.fault_rate, kinds=kinds, seed=args.seed, timeout_seconds=args.timeout_seconds),
        latency=args.latency,
        per_token_latency=args.per_token_latency,
        port=args.port,
        capacity=args.capacity,
        max_pairs=args.max_pairs,
        models=[name.strip() for name in args.models.split(",") if name.strip()] or None,
        stream_delay=args.stream_delay,
        imperfect=Imperfection(rate=args.imperfect, seed=args.seed),
    )
    server.start()
    print(f"fake model server on {server.base_url}", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
