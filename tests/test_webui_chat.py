"""The WebUI's Chat tab without a browser: its handler against the fake server over real HTTP.

What is checked: the prompt is the training format (system prompt with the chunks,
then the history as alternating turns), answers stream into the page, sources come
with each answer, RAG off and top-k, which model and where the key goes, the index
built on first use and kept up to date, and what the page says when something fails.
"""

from __future__ import annotations

import asyncio
import html
from pathlib import Path

import pytest

from generation_functions.config import load_config
from tests.conftest import write_config
from tests.fake_llm_server import CHAT, FakeLLMServer
from tests.test_retrieval_index import DOCUMENTS, write_documents
from webui.chat_tab import BROKEN, CUSTOM, DONE, FAILED, SMALL, STOPPED, ChatOptions, ChatService, ChatTurn, model_choices, stopped
from webui.chat_view import chat_html, page_values

SECRET = "sk-chat-tab-secret-2290"


def questions_asked(server) -> list:
    return [r for r in server.requests if r.step == CHAT and r.body.get("stream")]


def chat_config(tmp_path: Path, server: FakeLLMServer, documents: dict | None = DOCUMENTS, **sections) -> Path:
    folder = tmp_path / "input"
    folder.mkdir(exist_ok=True)
    if documents:
        write_documents(folder, documents)
    sections.setdefault("PATH", {})["INPUT"] = str(folder)
    return write_config(tmp_path / "config.yaml", server.base_url, **sections)


async def ask(service: ChatService, questions, options: ChatOptions = ChatOptions(), turns=None):
    """Ask each question in turn; return the session's turns and every page value yielded."""
    turns = [] if turns is None else turns
    pages = []
    for question in questions:
        async for page in page_values(service.ask(question, options, turns)):
            pages.append(page)
    return turns, pages


def run(coroutine):
    return asyncio.run(coroutine)


# ---------------------------------------------------------------- the prompt


def test_the_prompt_is_the_training_format_with_the_history(tmp_path):
    """System message = FINAL_ASSISTANT_PROMPT_RAG with {data} = the answer's chunks joined as in the RAG
    rows; then the earlier question and answer, then the new question."""
    with FakeLLMServer() as server:
        config_path = chat_config(tmp_path, server)
        turns, _ = run(ask(ChatService(config_path), ["What is the average block time?", "And the transaction fee?"], ChatOptions(top_k=2)))
        sent = [request.body["messages"] for request in questions_asked(server)]
        responses = [request.response for request in questions_asked(server)]
    template = load_config(config_path).system.FINAL_ASSISTANT_PROMPT_RAG
    first, second = turns
    assert first.state == second.state == DONE and len(first.sources) == 2 and second.sources
    assert first.sources[0].label == "coin.md, chunk 0"
    assert [first.answer, second.answer] == responses
    data = "\n\n".join(hit.text.strip() for hit in second.sources)
    assert sent[1] == [
        {"role": "system", "content": template.replace("{data}", data)},
        {"role": "user", "content": "What is the average block time?"},
        {"role": "assistant", "content": first.answer},
        {"role": "user", "content": "And the transaction fee?"},
    ]
    assert sent[0][0]["content"] == template.replace("{data}", "\n\n".join(hit.text.strip() for hit in first.sources))
    assert all(request.model == "large-model" for request in questions_asked(server))


def test_one_chunk_gives_the_rag_training_row_s_system_prompt_exactly(tmp_path):
    with FakeLLMServer() as server:
        config_path = chat_config(tmp_path, server)
        turns, _ = run(ask(ChatService(config_path), ["Is there a minimum amount of VRSC needed to stake?"], ChatOptions(top_k=1)))
        system = questions_asked(server)[0].body["messages"][0]["content"]
    (hit,) = turns[0].sources
    assert hit.source == "staking.md" and hit.text == DOCUMENTS["staking.md"]
    assert system == load_config(config_path).system.FINAL_ASSISTANT_PROMPT_RAG.replace("{data}", DOCUMENTS["staking.md"])


def test_rag_off_sends_the_no_rag_prompt_shows_no_sources_and_builds_no_index(tmp_path):
    with FakeLLMServer() as server:
        config_path = chat_config(tmp_path, server)
        service = ChatService(config_path)
        turns, pages = run(ask(service, ["What is the average block time?", "Why?"], ChatOptions(rag=False)))
        sent = [request.body["messages"] for request in questions_asked(server)]
    config = load_config(config_path)
    assert [messages[0] for messages in sent] == [{"role": "system", "content": config.system.FINAL_ASSISTANT_PROMPT_NO_RAG}] * 2
    assert [m["role"] for m in sent[1]] == ["system", "user", "assistant", "user"]
    assert all(turn.sources == () and turn.state == DONE for turn in turns)
    final = pages[-1][0]
    assert final.count('data-sources="off"') == 2 and "<details" not in final
    assert not config.retrieval_index_path.exists() and not service.keeper.built


def test_top_k_sets_how_many_chunks_are_given(tmp_path):
    with FakeLLMServer() as server:
        service = ChatService(chat_config(tmp_path, server))
        turns, pages = run(ask(service, ["staking wallet block time mining vault"] * 2, ChatOptions(top_k=3)))
        turns_1, _ = run(ask(service, ["staking wallet block time mining vault"], ChatOptions(top_k=1)))
    assert len(turns[0].sources) == 3 and len(turns_1[0].sources) == 1
    assert pages[-1][0].count('class="vt-source"') == 6  # each answer shows its own sources


# ---------------------------------------------------------------- streaming and the page


def test_the_answer_streams_into_the_page_piece_by_piece(tmp_path):
    with FakeLLMServer(stream_delay=0.08) as server:
        turns, pages = run(ask(ChatService(chat_config(tmp_path, server)), ["What is the average block time?"]))
        answer = questions_asked(server)[0].response
    shown = []
    for page, _ in pages:
        if 'class="vt-answer"' in page:
            text = html.unescape(page.split('<div class="vt-answer"><div class="vt-text">', 1)[1].split("</div>", 1)[0])
            if not shown or shown[-1] != text:
                shown.append(text)
    assert shown[-1] == answer == turns[0].answer
    assert len(shown) >= 4 and all(answer.startswith(part) and len(part) < len(answer) for part in shown[:-1])
    assert turns[0].first_word_seconds is not None and turns[0].first_word_seconds < turns[0].total_seconds


def test_each_answer_shows_its_sources_with_their_text(tmp_path):
    with FakeLLMServer() as server:
        turns, pages = run(ask(ChatService(chat_config(tmp_path, server)), ["How can a revoke authority stop a thief?"], ChatOptions(top_k=2)))
    page = pages[-1][0]
    assert "[1] vault.md, chunk 0" in page and "Sources given to the model (1)" in page
    assert html.escape("a revoke authority can stop a thief who stole the keys", quote=True) in page


def test_model_and_document_text_is_shown_as_text(tmp_path):
    documents = {"tricky.md": "# Tricky\n\nThe <script>alert('x')</script> tag and <b>bold</b> text and ${1+1} and {{value}} appear in the Verus wiki."}
    with FakeLLMServer() as server:
        turns, pages = run(ask(ChatService(chat_config(tmp_path, server, documents)), ["Which tag and bold text appear in the Verus wiki? <img src=x onerror=alert(1)>"]))
    page = pages[-1][0]
    assert "<script" not in page and "<b>" not in page and "<img" not in page
    assert "&lt;script&gt;" in page and "&lt;b&gt;bold&lt;/b&gt;" in page and "&lt;img src=x" in page
    assert "<script>" in turns[0].answer  # the model did say it: it is shown, not run


def test_chat_html_escapes_every_field():
    from retrieval.index import Hit

    hit = Hit("k", "docs/<x>.md", "t", 0, "<i>chunk</i>", 1.0)
    turn = ChatTurn("<q>", model="<m>", answer="<a>", sources=(hit,), state=BROKEN, note="<n>", search_seconds=0.01)
    page = chat_html([turn, ChatTurn("q2", state=FAILED, note="<f>\nline two", search_seconds=0.0)])
    for raw in ("<q>", "<m>", "<a>", "<x>", "<i>", "<n>", "<f>"):
        assert raw not in page and html.escape(raw) in page


# ---------------------------------------------------------------- the index


def test_the_index_is_built_on_the_first_question_and_kept_up_to_date(tmp_path):
    with FakeLLMServer() as server:
        config_path = chat_config(tmp_path, server)
        index_path = load_config(config_path).retrieval_index_path
        service = ChatService(config_path)
        assert not index_path.exists() and "built or updated at the first question" in service.intro_status()

        async def scenario():
            _, first = await ask(service, ["What is the average block time?"])
            _, unchanged = await ask(service, ["And the fee?"])
            (tmp_path / "input" / "fees.md").write_text("# Fees\n\nA conversion between currencies costs 0.025 percent.\n")
            turns, added = await ask(service, ["What does a conversion between currencies cost?"], ChatOptions(top_k=1))
            return first, unchanged, added, turns

        first, unchanged, added, turns = run(scenario())
    statuses = [status for _, status in first]
    assert "Building the search index of the documents in" in statuses[0]
    assert "4 chunks from 4 documents (4 indexed now" in statuses[-1] and index_path.exists()
    assert not any("Building" in status or "Updating" in status for _, status in unchanged)
    assert any("Updating the search index" in status for _, status in added)
    assert "5 chunks from 5 documents (1 indexed now, 4 unchanged" in added[-1][1]
    assert turns[-1].sources[0].source == "fees.md"


def test_the_update_button_builds_the_index_before_any_question(tmp_path):
    with FakeLLMServer() as server:
        service = ChatService(chat_config(tmp_path, server))
        built = run(service.update_index())
        again = run(service.update_index())
        assert server.count() == 0
    assert not built.problem and "4 chunks from 4 documents (4 indexed now" in built.status
    assert again.status.startswith("The search index is up to date.")


def test_no_documents_says_where_to_add_them_and_asks_nothing(tmp_path):
    with FakeLLMServer() as server:
        service = ChatService(chat_config(tmp_path, server, documents=None))
        turns, pages = run(ask(service, ["What is VerusID?"]))
        assert server.count() == 0
        off, _ = run(ask(service, ["What is VerusID?"], ChatOptions(rag=False)))
    assert turns[0].state == FAILED and "no documents to search" in turns[0].note and "Documents tab" in turns[0].note
    assert "holds no readable document" in turns[0].note and "No answer:" in pages[-1][0]
    assert off[0].state == DONE  # the model alone still answers


# ---------------------------------------------------------------- which model, and the key


def test_the_model_comes_from_the_saved_config_or_the_custom_fields(tmp_path):
    with FakeLLMServer(api_key=SECRET) as server, FakeLLMServer(api_key=SECRET) as elsewhere:
        config_path = chat_config(tmp_path, server, API={"API_KEY": SECRET})
        service = ChatService(config_path)
        small, _ = run(ask(service, ["What is the average block time?"], ChatOptions(model_choice=SMALL)))
        same, _ = run(ask(service, ["What is the average block time?"], ChatOptions(model_choice=CUSTOM, model="verus-8b")))
        typed, _ = run(ask(service, ["Block time?"], ChatOptions(model_choice=CUSTOM, base_url=server.base_url + "/", model="m2")))
        other, pages = run(ask(service, ["Block time?"], ChatOptions(model_choice=CUSTOM, base_url=elsewhere.base_url, model="verus-8b")))
        nameless, _ = run(ask(service, ["Block time?"], ChatOptions(model_choice=CUSTOM)))
        models = [request.model for request in questions_asked(server)]
        assert elsewhere.count() == 0  # refused before it counted: no key was sent
    assert models == ["small-model", "verus-8b", "m2"] and small[0].model == "small-model"
    assert all(turns[0].state == DONE for turns in (small, same, typed))
    # The saved key goes to the saved server only: a URL typed in the browser does not receive it.
    assert other[0].state == FAILED and "no API key was given" in other[0].note and SECRET not in pages[-1][0]
    assert nameless[0].state == FAILED and "type the name of the model" in nameless[0].note
    labels = [label for label, _ in model_choices(load_config(config_path))]
    assert labels[:2] == ["large-model (API.LARGE_LOGICAL_MODEL)", "small-model (API.LOGICAL_MODEL)"]


def test_the_key_is_never_in_the_page(tmp_path):
    with FakeLLMServer(api_key=SECRET) as server:
        service = ChatService(chat_config(tmp_path, server, API={"API_KEY": SECRET}))
        turns, pages = run(ask(service, ["What is the average block time?"]))
        server.stop()
        down, down_pages = run(ask(service, ["What is the average block time?"]))
    assert turns[0].state == DONE and down[0].state == FAILED
    assert all(SECRET not in page + status for page, status in pages + down_pages)


# ---------------------------------------------------------------- what the page says when something fails


def test_a_server_that_is_down_is_reported_in_the_answer(tmp_path):
    server = FakeLLMServer().start()
    config_path = chat_config(tmp_path, server)
    server.stop()
    turns, pages = run(ask(ChatService(config_path), ["What is the average block time?"]))
    assert turns[0].state == FAILED and "no model server answers at" in turns[0].note
    assert "the chat's Base URL field" in turns[0].note and "--base-url" not in turns[0].note
    assert "No answer: " in pages[-1][0] and turns[0].sources  # the search did run


def test_an_unknown_model_names_the_served_ones(tmp_path):
    with FakeLLMServer(models=["verus-8b"]) as server:
        turns, _ = run(ask(ChatService(chat_config(tmp_path, server)), ["What is the average block time?"]))
    assert turns[0].state == FAILED and "It serves: verus-8b" in turns[0].note and "the chat's Model field" in turns[0].note


@pytest.mark.parametrize("how", ["error", "drop"])
def test_an_answer_that_breaks_off_is_kept_marked_and_left_out_of_the_history(tmp_path, how):
    with FakeLLMServer(break_stream_after=2, break_stream_with=how) as server:
        service = ChatService(chat_config(tmp_path, server))

        async def scenario():
            turns, pages = await ask(service, ["What is the average block time?"])
            server.break_stream_after = None
            await ask(service, ["And the transaction fee?"], turns=turns)
            return turns, pages

        turns, pages = run(scenario())
        requests = questions_asked(server)
    broken, fine = turns
    assert broken.state == BROKEN and fine.state == DONE
    pieces = requests[0].response.split(" ")
    assert broken.answer and requests[0].response.startswith(broken.answer) and broken.answer != requests[0].response
    assert len(broken.answer.split()) <= 6 and pieces  # two pieces of three words
    expected = "the model server reported an error mid-answer" if how == "error" else "broke mid-answer"
    assert expected in broken.note
    assert 'data-note="broken"' in pages[-1][0] and "The answer broke off" in pages[-1][0]
    # The next question is sent without the broken exchange.
    assert [m["role"] for m in requests[1].body["messages"]] == ["system", "user"]


def test_a_config_problem_or_cohere_mode_is_said_plainly(tmp_path):
    with FakeLLMServer() as server:
        config_path = chat_config(tmp_path, server, SYSTEM={"MODE": "cohere"})
        turns, _ = run(ask(ChatService(config_path), ["What is the average block time?"]))
        config_path.write_text(config_path.read_text() + "\nRETRIEVAL:\n  TOPK: 3\n")
        bad, pages = run(ask(ChatService(config_path), ["What is the average block time?"]))
        assert server.count() == 0
    assert turns[0].state == FAILED and "SYSTEM.MODE is cohere" in turns[0].note
    assert bad[0].state == FAILED and "the saved config has a problem" in bad[0].note and "TOPK" in bad[0].note
    assert 'vt-chat-status-problem' in pages[-1][1]


def test_an_empty_question_asks_nothing(tmp_path):
    with FakeLLMServer() as server:
        turns, pages = run(ask(ChatService(chat_config(tmp_path, server)), ["   "]))
        assert server.count() == 0
    assert turns == [] and "Type a question first." in pages[-1][1]


# ---------------------------------------------------------------- clients, and the benchmark


def test_a_chat_client_is_kept_between_questions_and_the_oldest_closed():
    from retrieval.chat_client import ChatSettings
    from webui.chat_tab import ClientPool

    async def scenario():
        pool = ClientPool(size=2)
        first = await pool.get(ChatSettings("http://127.0.0.1:9/v1", "a"))
        again = await pool.get(ChatSettings("http://127.0.0.1:9/v1", "a"))
        second = await pool.get(ChatSettings("http://127.0.0.1:9/v1", "b"))
        await pool.get(ChatSettings("http://127.0.0.1:9/v1", "a"))  # "a" is now the most recent
        await pool.get(ChatSettings("http://127.0.0.1:9/v1", "c"))  # so "b" goes
        closed = (first._client.is_closed, second._client.is_closed)
        await pool.close()
        return first is again, closed, first._client.is_closed

    same, closed, closed_at_end = run(scenario())
    assert same and closed == (False, True) and closed_at_end


def test_the_benchmark_runs_and_reports_its_figures(tmp_path):
    import json
    import subprocess
    import sys

    from tests.conftest import REPO

    pairs = "\n\n".join(f"**QUESTION:**\nWhat does Verus question {i} ask about staking?\n\n**ANSWER:**\nAnswer {i}." for i in range(5))
    row = {"step": "question_generation", "last_user_message": 'Text:\n"""\nVerus staking text.\n"""', "response": pairs}
    (tmp_path / "question_generation.jsonl").write_text(json.dumps(row) + "\n")
    result = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "bench_chat_tab.py"), "--corpus", str(REPO / "raw_text_input"),
         "--generations", str(tmp_path), "--questions", "4", "--turns", "2", "--json", str(tmp_path / "figures.json")],
        capture_output=True, text=True, timeout=120, cwd=REPO,
    )
    assert result.returncode == 0, result.stderr
    figures = json.loads((tmp_path / "figures.json").read_text())
    assert figures["questions"] == 4 and "indexed now" in figures["index"]
    for numbers in (figures["rag"]["first_word"], figures["rag"]["search"], figures["no_rag"]["first_word"]):
        assert 0 < numbers["min_ms"] <= numbers["median_ms"] <= numbers["max_ms"]
    assert "first streamed word, RAG on" in result.stdout


def test_clearing_the_conversation_stops_the_answer_that_streams(tmp_path):
    with FakeLLMServer(stream_delay=0.1) as server:
        service = ChatService(chat_config(tmp_path, server))

        async def scenario():
            turns, pages, cleared = [], [], []
            async for page in page_values(service.ask("What is the average block time?", ChatOptions(), turns)):
                pages.append(page)
                if turns and turns[0].answer:
                    cleared = [turn for turn in turns if turn.active]
                    turns.clear()  # what the Clear button does to the session's list
            return turns, pages, cleared, await stopped(cleared, timeout=0.1)

        turns, pages, cleared, done = run(scenario())
    assert turns == [] and len(pages) <= 3  # status, sources, the first words: then it stopped
    assert done and [turn.state for turn in cleared] == [STOPPED]


def test_temperature_and_answer_length_reach_the_server(tmp_path):
    with FakeLLMServer() as server:
        service = ChatService(chat_config(tmp_path, server))
        turns, _ = run(ask(service, ["What is the average block time?"], ChatOptions(temperature=0.0, max_tokens=64)))
        wrong, _ = run(ask(service, ["What is the average block time?"], ChatOptions(temperature=3.0)))
        body = questions_asked(server)[0].body
    assert turns[0].state == DONE and (body["temperature"], body["max_tokens"]) == (0.0, 64)
    assert wrong[0].state == FAILED and "temperature must be between 0 and 2" in wrong[0].note


def test_with_rag_off_the_page_waits_for_the_model_not_for_a_search(tmp_path):
    with FakeLLMServer() as server:
        _, pages = run(ask(ChatService(chat_config(tmp_path, server)), ["What is the average block time?"], ChatOptions(rag=False)))
    assert "Searching the documents" not in pages[0][0] and "Waiting for the model" in pages[0][0]
    assert "Search is off" in pages[0][1]
