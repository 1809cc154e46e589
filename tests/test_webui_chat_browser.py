"""The Chat tab in a real browser: Debian's chromium driven by playwright, against `python app.py`
and the fake model server (the app and browser are started as in test_webui_browser.py).

One walk: the index is not built before the first question; a question's answer streams into the
page piece by piece with its sources beside it; switching RAG off sends the no-RAG prompt and shows
no sources; model text is shown, not run; Clear starts over; the key is never in the page."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest

from generation_functions.config import load_config
from tests.fake_llm_server import CHAT
from tests.test_webui_browser import CHROMIUM, SECRET, fetch, page, served_app  # noqa: F401 - fixtures

pytestmark = [
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium is not installed (apt-get install -y chromium)"),
    pytest.mark.timeout(300),
]
playwright_sync = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
expect = playwright_sync.expect

DOCUMENTS = {
    "coin.md": "# Coin Overview\n\nThe average block time of Verus is one minute, and a transaction fee is 0.0001 VRSC.\n",
    "staking.md": "# Staking\n\nStaking needs a wallet that stays online and synchronised. There is no minimum amount to stake.\n",
    "tricky.md": "# Tricky\n\nThe <script>window.pwned=1</script> tag and <b>bold</b> text and ${1+1} and {{value}} appear in the tricky wiki page.\n",
}


def questions_asked(server) -> list:
    return [r for r in server.requests if r.step == CHAT and r.body.get("stream")]


def ask(page, question: str) -> None:
    box = page.locator("#chat-question textarea, #chat-question input").first
    box.fill(question)
    box.press("Enter")


def watch_answer(page, turn: int, seconds: float = 60) -> list[str]:
    """The answer's text each time it changed, until the turn is done (or failed)."""
    exchange = page.locator(f'#chat-log [data-turn="{turn}"]')
    seen: list[str] = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if exchange.count():
            state = exchange.get_attribute("data-state")
            answer = exchange.locator(".vt-answer")
            text = answer.inner_text() if answer.count() else ""
            if text and (not seen or seen[-1] != text):
                seen.append(text)
            if state in ("done", "failed", "broken"):
                assert state == "done", exchange.inner_text()
                return seen
        time.sleep(0.03)
    pytest.fail(f"turn {turn} did not finish within {seconds}s")


def test_chat_streams_answers_with_sources_and_rag_can_be_switched_off(page, served_app, tmp_path):  # noqa: F811
    url, tmp, server = served_app
    config = load_config(tmp / "config.yaml", check_input=False)
    for name, text in DOCUMENTS.items():
        (tmp / "input" / name).write_text(text, encoding="utf-8")
    server.stream_delay = 0.15  # so that the pieces arrive visibly apart
    try:
        page.get_by_role("tab", name="Chat").click()
        expect(page.locator("#chat-status")).to_contain_text("built or updated at the first question")
        assert not config.retrieval_index_path.exists()  # opening the app and the tab builds nothing

        # ---- a question: the answer streams in, the sources are beside it
        asked_before = len(questions_asked(server))
        ask(page, "What is the average block time of Verus?")
        seen = watch_answer(page, 1)
        request = questions_asked(server)[asked_before]
        assert seen[-1] == request.response and "one minute" in seen[-1]
        partial = [text for text in seen[:-1] if seen[-1].startswith(text)]
        assert len(partial) >= 2, seen  # the answer was shown growing, not all at once
        first = page.locator('#chat-log [data-turn="1"]')
        expect(first.locator(".vt-source summary").first).to_have_text("[1] coin.md, chunk 0")
        first.locator(".vt-source summary").first.click()
        expect(first.locator(".vt-source").first).to_contain_text("transaction fee is 0.0001 VRSC")
        expect(page.locator("#chat-status")).to_contain_text("chunks from")
        assert config.retrieval_index_path.exists()
        assert request.body["messages"][0]["content"].startswith(config.system.FINAL_ASSISTANT_PROMPT_RAG.split("{data}")[0])
        assert request.model == "large-model"

        # ---- RAG off: the no-RAG prompt, the history, no sources
        page.locator("#chat-rag input[type=checkbox]").uncheck()
        ask(page, "Is there a minimum amount to stake?")
        watch_answer(page, 2)
        second = page.locator('#chat-log [data-turn="2"]')
        expect(second.locator('[data-sources="off"]')).to_be_visible()
        assert second.locator(".vt-source").count() == 0
        request = questions_asked(server)[-1]
        assert [m["role"] for m in request.body["messages"]] == ["system", "user", "assistant", "user"]
        assert request.body["messages"][0]["content"] == config.system.FINAL_ASSISTANT_PROMPT_NO_RAG

        # A source opened before the next answer streams in stays open.
        expect(first.locator(".vt-source").first).to_have_attribute("open", "")

        # ---- model and document text is text: nothing in it runs or renders
        page.locator("#chat-rag input[type=checkbox]").check()
        ask(page, "Which tag and bold text appear in the tricky wiki page?")
        watch_answer(page, 3)
        third = page.locator('#chat-log [data-turn="3"]')
        expect(third.locator(".vt-answer")).to_contain_text("<script>window.pwned=1</script> tag and <b>bold</b>")
        expect(third.locator(".vt-answer")).to_contain_text("${1+1} and {{value}}")
        assert page.locator("#chat-log script, #chat-log b").count() == 0
        assert page.evaluate("window.pwned") is None
        page.screenshot(path=str(tmp_path / "chat.png"), full_page=True)

        # ---- the key is never in the page
        assert SECRET not in page.content() and SECRET not in fetch(f"{url}/config")

        # ---- Clear starts a new conversation
        page.get_by_role("button", name="Clear").click()
        expect(page.locator("#chat-log")).to_contain_text("Ask a question about your documents")
        ask(page, "What is the average block time of Verus?")
        watch_answer(page, 1)
        assert [m["role"] for m in questions_asked(server)[-1].body["messages"]] == ["system", "user"]

        # ---- Clear during an answer stops it: nothing more arrives
        server.stream_delay = 0.4
        ask(page, "Is there a minimum amount to stake?")
        expect(page.locator('#chat-log [data-turn="2"] .vt-answer')).to_be_visible()
        page.get_by_role("button", name="Clear").click()
        expect(page.locator("#chat-log")).to_contain_text("Ask a question about your documents")
        time.sleep(2.0)  # longer than the rest of the answer takes to stream
        assert page.locator("#chat-log [data-turn]").count() == 0
    finally:
        server.stream_delay = 0.0
    if os.environ.get("VERUSTOOLKIT_SCREENSHOTS"):
        shutil.copy(tmp_path / "chat.png", Path(os.environ["VERUSTOOLKIT_SCREENSHOTS"]) / "chat.png")
