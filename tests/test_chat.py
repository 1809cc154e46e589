"""Chatting over the documents: the training format exactly, streaming over real HTTP, chat.py end to end."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from generation_functions.config import load_config
from generation_functions.errors import ServerUnreachable
from retrieval.chat_client import ChatClient, ChatSettings, UnknownModel
from retrieval.chat_session import Answered, ChatSession, Exchange, Piece, Sources, build_messages, system_message
from retrieval.search import open_retriever
from tests.conftest import REPO, run_processing, write_config
from tests.fake_llm_server import CHAT, FakeLLMServer, FaultPlan
from tests.test_retrieval_index import DOCUMENTS, write_documents

ROLES = {"system": "system", "human": "user", "gpt": "assistant"}


# ---------------------------------------------------------------- the training format


@pytest.fixture(scope="module")
def training_run(tmp_path_factory):
    """A real pipeline run over the sample input: its datasets are what the model is trained on."""
    folder = tmp_path_factory.mktemp("run")
    with FakeLLMServer() as server:
        config_path = write_config(folder / "config.yaml", server.base_url, SYSTEM={"CHUNK_SIZE": 400})
        result = run_processing(config_path)
    assert result.returncode == 0, result.stderr
    config = load_config(config_path)
    rows = lambda name: [json.loads(line) for line in (config.output_dir / name).read_text().splitlines()]  # noqa: E731
    return config, rows("simplified_data_rag.jsonl"), rows("simplified_data_no_rag.jsonl"), rows("master_list.jsonl")


def test_a_chat_prompt_is_a_training_row(training_run):
    """Given a row's chunk and its earlier turns, the chat sends exactly the row's messages."""
    config, rag_rows, no_rag_rows, master = training_run
    assert rag_rows and len(rag_rows) == len(no_rag_rows) == len(master)
    for rag, no_rag, record in zip(rag_rows, no_rag_rows, master):
        for row, context in ((rag, record["rag_row_chunks"]), (no_rag, None)):
            expected = [{"role": ROLES[turn["from"]], "content": turn["value"]} for turn in row["conversations"]]
            turns = expected[1:]
            history = [Exchange(turns[i]["content"], turns[i + 1]["content"]) for i in range(0, len(turns) - 2, 2)]
            sent = build_messages(config.system, turns[-2]["content"], context, history)
            assert sent == expected[:-1]


@pytest.mark.parametrize(
    "template, context, expected",
    [
        ("Use this:\n\n{data}", ["chunk one"], "Use this:\n\nchunk one"),
        ("Use this:\n\n{data}", ["first", "second"], "Use this:\n\nfirst\n\nsecond"),
        ("Data {data} and {question} stays", ["{x}"], "Data {x} and {question} stays"),
        ("Use this:\n\n{data}", [], "NO RAG"),
        ("Use this:\n\n{data}", None, "NO RAG"),
    ],
)
def test_system_message(template, context, expected):
    from generation_functions.config import SystemSection

    prompts = SystemSection(FINAL_ASSISTANT_PROMPT_RAG=template, FINAL_ASSISTANT_PROMPT_NO_RAG="NO RAG")
    assert system_message(prompts, context) == expected


# ---------------------------------------------------------------- the streaming client


def settings(server, **overrides) -> ChatSettings:
    return ChatSettings(base_url=server.base_url, model=overrides.pop("model", "large-model"), max_retry_seconds=10, **overrides)


async def collect(client_settings: ChatSettings, messages) -> list[str]:
    client = ChatClient(client_settings)
    try:
        return [piece async for piece in client.stream(messages)]
    finally:
        await client.close()


ANSWER = "Staking needs a synced wallet that stays online and connected all day."
QUESTION = [{"role": "system", "content": f"Use this.\n{ANSWER}"}, {"role": "user", "content": "Does staking need a synced wallet?"}]


def questions_asked(server) -> list:
    """The chat requests of questions (streamed), not chat.py's one-word check of the server."""
    return [r for r in server.requests if r.step == CHAT and r.body.get("stream")]


def test_the_answer_streams_in_pieces():
    with FakeLLMServer() as server:
        pieces = asyncio.run(collect(settings(server), QUESTION))
        request = server.requests[-1]
    assert request.step == CHAT and request.body["stream"] is True
    assert len(pieces) > 2 and "".join(pieces) == request.response == ANSWER


def test_a_server_that_does_not_stream_is_read_whole():
    with FakeLLMServer(streaming=False) as server:
        pieces = asyncio.run(collect(settings(server), QUESTION))
        assert pieces == [server.requests[-1].response]


def test_a_busy_server_is_retried_before_the_answer_starts():
    with FakeLLMServer(faults=FaultPlan(rate=0.5, kinds=("503", "429"), seed=2)) as server:
        for _ in range(4):
            assert "".join(asyncio.run(collect(settings(server), QUESTION))) == ANSWER
        assert sum(server.faults_injected.values()) > 0


def test_no_server_says_how_to_start_one():
    with FakeLLMServer() as server:
        stopped = settings(server)
    with pytest.raises(ServerUnreachable, match=r"(?s)no model server answers at http://127\.0\.0\.1:\d+/v1 .*llama-server"):
        asyncio.run(collect(stopped, QUESTION))


def test_an_unknown_model_lists_the_served_ones():
    with FakeLLMServer(models=["verus-8b", "llama-3-8b"]) as server:
        with pytest.raises(UnknownModel, match="does not serve model 'large-model'.*It serves: verus-8b, llama-3-8b"):
            asyncio.run(collect(settings(server), QUESTION))
        assert "".join(asyncio.run(collect(settings(server, model="verus-8b"), QUESTION)))


def test_a_refused_key_says_so_without_showing_it():
    with FakeLLMServer(api_key="the-right-key") as server:
        with pytest.raises(ServerUnreachable, match="no API key was given"):
            asyncio.run(collect(settings(server), QUESTION))
        with pytest.raises(ServerUnreachable, match="the API key was rejected") as caught:
            asyncio.run(collect(settings(server, api_key="a-wrong-key"), QUESTION))
        assert "a-wrong-key" not in str(caught.value)
        assert asyncio.run(collect(settings(server, api_key="the-right-key"), QUESTION))


# ---------------------------------------------------------------- the session


def chat_config(tmp_path, server, **sections):
    corpus = write_documents(tmp_path / "input", DOCUMENTS)
    sections.setdefault("PATH", {})["INPUT"] = str(corpus)
    return load_config(write_config(tmp_path / "config.yaml", server.base_url, **sections))


async def converse(config, questions, rag=True):
    retriever = (await open_retriever(config))[0] if rag else None
    client = ChatClient(ChatSettings.from_config(config))
    session = ChatSession(client, config.system, retriever)
    events = []
    try:
        for question in questions:
            events.append([event async for event in session.ask(question)])
    finally:
        await client.close()
        if retriever is not None:
            await retriever.close()
    return session, events


def test_a_session_sends_the_retrieved_chunks_and_the_history(tmp_path):
    with FakeLLMServer() as server:
        config = chat_config(tmp_path, server)
        session, events = asyncio.run(converse(config, ["What is the average block time?", "And the transaction fee?"]))
        sent = [r.body["messages"] for r in questions_asked(server)]
    first, second = events
    assert isinstance(first[0], Sources) and first[0].hits[0].source == "coin.md"
    assert isinstance(first[-1], Answered) and all(isinstance(event, Piece) for event in first[1:-1])
    answer = first[-1].exchange.answer
    assert answer == "".join(event.text for event in first[1:-1])
    hits = second[0].hits
    assert sent[1] == [
        {"role": "system", "content": system_message(config.system, [hit.text for hit in hits])},
        {"role": "user", "content": "What is the average block time?"},
        {"role": "assistant", "content": answer},
        {"role": "user", "content": "And the transaction fee?"},
    ]
    assert [hit.source for hit in hits] == ["coin.md"]  # the only chunk that mentions a transaction fee
    assert [exchange.question for exchange in session.history] == ["What is the average block time?", "And the transaction fee?"]
    session.reset()
    assert session.history == []


def test_without_retrieval_or_without_hits_the_prompt_is_the_no_rag_one(tmp_path):
    with FakeLLMServer() as server:
        config = chat_config(tmp_path, server)
        asyncio.run(converse(config, ["What is the average block time?"], rag=False))
        asyncio.run(converse(config, ["What is it?"], rag=True))
        systems = [r.body["messages"][0]["content"] for r in questions_asked(server)]
    assert systems == [config.system.FINAL_ASSISTANT_PROMPT_NO_RAG] * 2


# ---------------------------------------------------------------- chat.py


def run_chat(config: Path, stdin: str, *extra: str, env: dict | None = None) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if not k.endswith("API_KEY")}
    environment.update(env or {})
    return subprocess.run(
        [sys.executable, str(REPO / "chat.py"), "--config", str(config), *extra],
        input=stdin, capture_output=True, text=True, timeout=120, env=environment, cwd=str(config.parent),
    )


def chat_config_file(tmp_path, server, **sections) -> Path:
    if "INPUT" not in sections.get("PATH", {}):
        sections.setdefault("PATH", {})["INPUT"] = str(write_documents(tmp_path / "input", DOCUMENTS))
    return write_config(tmp_path / "config.yaml", server.base_url, **sections)


def test_chat_py_answers_from_stdin_with_sources(tmp_path):
    with FakeLLMServer(stream_delay=0.001) as server:
        config = chat_config_file(tmp_path, server, RETRIEVAL={"TOP_K": 2})
        result = run_chat(config, "What is the average block time?\nHow much is the transaction fee?\n/reset\n\nIs there a minimum amount to stake?\n")
        chats = questions_asked(server)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == chats[0].response and "**Average Block Time** | 1 minute" in chats[0].response
    assert all(chat.response in result.stdout for chat in chats)
    assert "sources:\n  [1] coin.md, chunk 0\n" in result.stdout
    assert "[1] staking.md, chunk 0" in result.stdout.split("(conversation forgotten)")[1]
    assert result.stdout.count("sources:") == 3 and all(r.body["stream"] for r in chats) and len(chats) == 3
    assert "index: 4 chunks from 4 documents (4 indexed now" in result.stderr
    assert [len(r.body["messages"]) for r in chats] == [2, 4, 2]  # /reset forgot the first two turns


def test_chat_py_without_retrieval_uses_the_no_rag_prompt(tmp_path):
    with FakeLLMServer() as server:
        config = chat_config_file(tmp_path, server)
        result = run_chat(config, "What is the average block time?\n", "--no-rag", "--model", "verus-8b")
        chat = questions_asked(server)[0]
    assert result.returncode == 0, result.stderr
    assert chat.body["messages"][0]["content"] == load_config(config).system.FINAL_ASSISTANT_PROMPT_NO_RAG
    assert chat.model == "verus-8b" and "sources: none (retrieval is off)" in result.stdout
    assert not (tmp_path / "output" / "retrieval.sqlite").exists()


def test_chat_py_keeps_its_index_between_runs(tmp_path):
    with FakeLLMServer() as server:
        config = chat_config_file(tmp_path, server)
        first = run_chat(config, "")
        second = run_chat(config, "")
    assert "4 indexed now" in first.stderr and "0 indexed now, 4 unchanged" in second.stderr
    assert (tmp_path / "output" / "retrieval.sqlite").exists()


@pytest.mark.parametrize(
    "case, message",
    [
        ("server down", "no model server answers at"),
        ("unknown model", "does not serve model 'large-model'.*It serves: verus-8b"),
        ("empty input", "the search index is empty: .* holds no readable document. Add documents, or chat without retrieval: --no-rag"),
        ("bad config", "RETRIEVAL.TOPK is not a known key \\(did you mean TOP_K\\?\\)"),
        ("key refused", "refused the request \\(HTTP 401\\): no API key was given"),
        ("cohere mode", "chat.py speaks the OpenAI-compatible chat API; with SYSTEM.MODE cohere, pass --base-url"),
    ],
)
def test_chat_py_explains_what_stops_it(tmp_path, case, message):
    import re

    server = FakeLLMServer(models=["verus-8b"] if case == "unknown model" else None, api_key="k" if case == "key refused" else None)
    server.start()
    try:
        sections = {}
        if case == "empty input":
            (tmp_path / "empty").mkdir()
            sections["PATH"] = {"INPUT": str(tmp_path / "empty")}
        if case == "bad config":
            sections["RETRIEVAL"] = {"TOPK": 3}
        if case == "cohere mode":
            sections["SYSTEM"] = {"MODE": "cohere"}
        config = chat_config_file(tmp_path, server, **sections)
        if case == "server down":
            server.stop()
        result = run_chat(config, "hello\n")
    finally:
        server.stop()
    assert result.returncode == 2
    assert re.search(message, result.stderr, re.DOTALL), result.stderr
    assert "Traceback" not in result.stderr


def test_chat_py_never_shows_the_api_key(tmp_path):
    with FakeLLMServer(api_key="sk-very-secret-key") as server:
        config = chat_config_file(tmp_path, server)
        result = run_chat(config, "What is the average block time?\n", "--verbose", env={"OPENAI_API_KEY": "sk-very-secret-key"})
    assert result.returncode == 0, result.stderr
    assert "sk-very-secret-key" not in result.stdout + result.stderr
    assert "**Average Block Time** | 1 minute" in result.stdout
