"""A local fake OpenAI-compatible (and Cohere v2) model server for tests and benchmarks.

Real HTTP on 127.0.0.1, so the engine, its SDKs, retries and timeouts are
exercised exactly as against llama.cpp, vLLM or a cloud API. Responses are
deterministic functions of the request (so a killed and resumed run can be
compared with an uninterrupted one); tests can script any step, inject faults
in any proportion, and model latency.

Endpoints: GET /v1/models, POST /v1/chat/completions, POST /v1/completions,
POST /v2/chat (Cohere), GET /v1/models for Cohere too.

Run standalone: python -m tests.fake_llm_server --port 8080
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Optional

QUESTION_GENERATION = "qatuples_gen_no_filenames"
QUESTION_CHECK = "check_question"
ANSWER_CHECK = "check_answer"
CONTEXT_REPAIR = "check_qatuple_context_no_filenames"
CONVERSATION = "multi_turn_assistant_conversation"

FAULTS = ("429", "500", "502", "503", "timeout", "drop", "empty", "truncated", "refusal", "noverdict")

_ENDPOINTS = frozenset({"/v1/chat/completions", "/v1/completions", "/v2/chat"})
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


Responder = Callable[[Request], str]


def classify(system: str) -> str:
    """Tell the steps apart by the marker words their instructions carry."""
    if "**AI Assistant:**" in system:
        return CONVERSATION
    if "Final judgment" in system:
        return CONTEXT_REPAIR
    if "INACCURATE" in system:
        return ANSWER_CHECK
    if "IRRELEVANT" in system:
        return QUESTION_CHECK
    return QUESTION_GENERATION


def fenced_blocks(text: str) -> list[str]:
    return [block.strip() for block in _FENCE.findall(text)]


def qa_blocks(text: str) -> list[tuple[str, str]]:
    return [(q.strip(), a.strip()) for q, a in _QA.findall(text)]


# ---------------------------------------------------------------- default responses


def default_question_generation(request: Request) -> str:
    blocks = fenced_blocks(request.user)
    text = blocks[0] if blocks else request.user
    sentences = [s.strip() for s in _SENTENCE.split(" ".join(text.split())) if len(s.split()) >= 6]
    if not sentences:
        return "I could not find anything to ask about in this text."
    pairs = []
    for sentence in sentences[:3]:
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


DEFAULT_RESPONDERS: dict[str, Responder] = {
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


class FakeLLMServer:
    def __init__(
        self,
        responders: Optional[dict[str, Responder]] = None,
        api_key: Optional[str] = None,
        faults: Optional[FaultPlan] = None,
        latency: float = 0.0,
        per_token_latency: float = 0.0,
        port: int = 0,
    ):
        self.responders = {**DEFAULT_RESPONDERS, **(responders or {})}
        self.api_key = api_key
        self.faults = faults or FaultPlan()
        self.latency = latency
        self.per_token_latency = per_token_latency
        self.requests: list[Request] = []
        self.faults_injected: Counter = Counter()
        self.in_flight = 0
        self.peak_in_flight = 0
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", port), _make_handler(self))
        self._httpd.daemon_threads = True
        self._thread: Optional[threading.Thread] = None

    # lifecycle
    @property
    def port(self) -> int:
        return self._httpd.server_address[1]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def cohere_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "FakeLLMServer":
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

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

    # request handling
    def respond(self, request: Request) -> str:
        return self.responders[request.step](request)

    def record(self, request: Request) -> None:
        with self._lock:
            self.requests.append(request)

    def enter(self) -> None:
        with self._lock:
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)

    def leave(self) -> None:
        with self._lock:
            self.in_flight -= 1


def _parse_request(path: str, body: dict) -> Request:
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


def _tokens(text: str) -> int:
    return max(1, len(text) // 4)


def _make_handler(server: FakeLLMServer):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:  # keep test output clean
            pass

        def _send_json(self, status: int, payload: dict, headers: Optional[dict] = None) -> None:
            data = json.dumps(payload).encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(data)

        def _authorized(self) -> bool:
            if server.api_key is None:
                return True
            header = self.headers.get("Authorization", "")
            return header == f"Bearer {server.api_key}"

        def do_GET(self) -> None:
            if not self._authorized():
                self._send_json(401, {"error": {"message": "invalid api key"}})
                return
            if self.path.rstrip("/").endswith("/models"):
                self._send_json(200, {"object": "list", "data": [{"id": "fake-model", "object": "model"}]})
            else:
                self._send_json(404, {"error": {"message": "not found"}})

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            raw = self.rfile.read(length)
            if self.path not in _ENDPOINTS:
                self._send_json(404, {"error": {"message": f"no endpoint {self.path}"}})
                return
            if not self._authorized():
                self._send_json(401, {"error": {"message": "invalid api key"}})
                return
            try:
                body = json.loads(raw)
                request = _parse_request(self.path, body)
            except (ValueError, KeyError, IndexError, TypeError):
                self._send_json(400, {"error": {"message": "malformed request"}})
                return
            server.record(request)
            server.enter()
            try:
                self._answer(request)
            finally:
                server.leave()

        def _answer(self, request: Request) -> None:
            fault = server.faults.pick()
            if fault:
                with server._lock:
                    server.faults_injected[fault] += 1
            if fault == "400":
                self._send_json(400, {"error": {"message": "injected 400: prompt too long"}})
                return
            if fault in ("429", "500", "502", "503"):
                headers = {"Retry-After": "0"} if fault == "429" else {}
                self._send_json(int(fault), {"error": {"message": f"injected {fault}"}}, headers)
                return
            if fault == "timeout":
                time.sleep(server.faults.timeout_seconds)
                self.close_connection = True
                return
            if fault == "drop":
                self.close_connection = True
                return
            text = server.respond(request)
            if fault == "empty":
                text = ""
            elif fault == "truncated":
                text = text[: len(text) // 3]
            elif fault == "refusal":
                text = "I'm sorry, but I can't help with that request."
            elif fault == "noverdict":
                text = "Let me think about this carefully. The text discusses several things."
            delay = server.latency + server.per_token_latency * _tokens(text)
            if delay:
                time.sleep(delay)
            self._send_completion(request, text)

        def _send_completion(self, request: Request, text: str) -> None:
            prompt_tokens = _tokens(json.dumps(request.body.get("messages") or request.body.get("prompt", "")))
            completion_tokens = _tokens(text) if text else 0
            ident = hashlib.sha1(text.encode()).hexdigest()[:12]
            if request.path.startswith("/v2/chat"):
                self._send_json(200, {
                    "id": ident,
                    "finish_reason": "COMPLETE",
                    "message": {"role": "assistant", "content": [{"type": "text", "text": text}]},
                    "usage": {
                        "billed_units": {"input_tokens": prompt_tokens, "output_tokens": completion_tokens},
                        "tokens": {"input_tokens": prompt_tokens, "output_tokens": completion_tokens},
                    },
                })
                return
            usage = {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                     "total_tokens": prompt_tokens + completion_tokens}
            if request.path.endswith("/chat/completions"):
                choice = {"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}
                kind = "chat.completion"
            else:
                choice = {"index": 0, "finish_reason": "stop", "text": text, "logprobs": None}
                kind = "text_completion"
            self._send_json(200, {"id": ident, "object": kind, "created": 0, "model": request.model,
                                  "choices": [choice], "usage": usage})

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description="Run the fake model server in the foreground.")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--per-token-latency", type=float, default=0.0)
    parser.add_argument("--fault-rate", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--api-key", default=None)
    args = parser.parse_args()
    server = FakeLLMServer(
        api_key=args.api_key,
        faults=FaultPlan(rate=args.fault_rate, seed=args.seed),
        latency=args.latency,
        per_token_latency=args.per_token_latency,
        port=args.port,
    )
    print(f"fake model server on {server.base_url}", flush=True)
    server.start()
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
