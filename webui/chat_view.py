"""HTML of the Chat tab: each exchange with its sources beside it, and the status line.

Questions, answers, chunk texts, file names and error messages all go through
rendering.text() or html.escape: the model's text is shown as written, never
read as Markdown or HTML (as everywhere in the WebUI).
"""

from __future__ import annotations

import html
from typing import AsyncIterator, Sequence

from webui.chat_tab import BROKEN, DONE, FAILED, SEARCHING, STOPPED, STREAMING, ChatTurn, ChatUpdate
from webui.rendering import text

CSS = """
.vt-chatlog { display: flex; flex-direction: column; gap: 14px; }
.vt-exchange { display: grid; grid-template-columns: minmax(0, 3fr) minmax(0, 2fr); gap: 12px; align-items: start; }
@media (max-width: 900px) { .vt-exchange { grid-template-columns: minmax(0, 1fr); } }
.vt-exchange-talk { display: flex; flex-direction: column; gap: 6px; }
.vt-sources { border-left: 3px solid var(--block-border-color, #ddd); padding-left: 10px; font-size: 0.92em; }
.vt-source summary { cursor: pointer; }
.vt-source .vt-text { max-height: 320px; overflow-y: auto; padding: 6px; margin: 4px 0 8px 0;
  background: var(--background-fill-secondary, #f4f4f5); border-radius: 4px; }
.vt-answer-note { margin-top: 6px; font-size: 0.9em; color: #b91c1c; }
.vt-answer-meta { margin-top: 4px; font-size: 0.8em; opacity: 0.7; }
.vt-waiting { opacity: 0.7; font-style: italic; }
.vt-chat-status-problem { color: #b91c1c; }
"""

# Every update re-renders the whole chat, which would close a source the person opened while
# another answer streams in: remember which ones are open, and open them again after each update.
KEEP_SOURCES_OPEN_JS = """
const open = new Set();
const name = (d) => (d.closest('[data-turn]') || {dataset: {}}).dataset.turn + ':' + d.dataset.source;
element.addEventListener('toggle', (event) => {
  const d = event.target;
  if (d.matches && d.matches('details.vt-source')) { d.open ? open.add(name(d)) : open.delete(name(d)); }
}, true);
watch('value', () => {
  if (!element.querySelector('[data-turn]')) { open.clear(); return; }
  element.querySelectorAll('details.vt-source').forEach((d) => { if (open.has(name(d))) d.open = true; });
});
"""

EMPTY = (
    '<div class="vt-chatlog vt-empty"><p>Ask a question about your documents. The answer streams in here, '
    "with the chunks the model was given beside it.</p></div>"
)


def chat_html(turns: Sequence[ChatTurn]) -> str:
    if not turns:
        return EMPTY
    return '<div class="vt-chatlog">' + "".join(_exchange(number, turn) for number, turn in enumerate(turns, 1)) + "</div>"


def _exchange(number: int, turn: ChatTurn) -> str:
    return (
        f'<div class="vt-exchange" data-turn="{number}" data-state="{html.escape(turn.state)}">'
        '<div class="vt-exchange-talk">'
        f'<div class="vt-turn vt-turn-user"><div class="vt-role">You</div>{text(turn.question)}</div>'
        f'<div class="vt-turn vt-turn-assistant"><div class="vt-role">{html.escape(turn.model or "model")}</div>'
        f"{_answer(turn)}</div></div>"
        f'<div class="vt-sources">{_sources(turn)}</div></div>'
    )


def _answer(turn: ChatTurn) -> str:
    if turn.state == SEARCHING:
        return '<div class="vt-waiting">Searching the documents…</div>'
    if turn.state == STREAMING and not turn.answer:
        return '<div class="vt-waiting">Waiting for the model…</div>'
    body = f'<div class="vt-answer">{text(turn.answer)}</div>' if turn.answer else ""
    if turn.state == BROKEN:
        body += (
            f'<div class="vt-answer-note" data-note="broken">⚠ The answer broke off: {html.escape(turn.note)}. '
            "What arrived is kept here, but the model will not see this exchange in the next question.</div>"
        )
    elif turn.state == FAILED:
        body += f'<div class="vt-answer-note" data-note="failed">⚠ No answer: {text(turn.note)}</div>'
    elif turn.state == STOPPED:
        body += '<div class="vt-answer-note" data-note="stopped">Stopped.</div>'
    elif turn.state == DONE:
        body += f'<div class="vt-answer-meta">{html.escape(_timing(turn))}</div>'
    return body


def _timing(turn: ChatTurn) -> str:
    parts = []
    if turn.first_word_seconds is not None:
        parts.append(f"first words after {turn.first_word_seconds:.2f} s")
    if turn.total_seconds is not None:
        parts.append(f"done in {turn.total_seconds:.1f} s")
    return " · ".join(parts)


def _sources(turn: ChatTurn) -> str:
    if not turn.rag:
        return '<div class="vt-role">Sources</div><p data-sources="off">None: search was off, the model answered from what it learned.</p>'
    if turn.state == SEARCHING or (turn.state == FAILED and turn.search_seconds is None):
        return '<div class="vt-role">Sources</div><p data-sources="pending">…</p>'
    if not turn.sources:
        return (
            '<div class="vt-role">Sources</div><p data-sources="none">Nothing in the documents matched, so the model was '
            "asked without documents (the no-RAG prompt).</p>"
        )
    found = f" · found in {turn.search_seconds * 1000:.0f} ms" if turn.search_seconds is not None else ""
    items = "".join(
        f'<details class="vt-source" data-source="{number}"><summary>[{number}] {html.escape(hit.label)}</summary>{text(hit.text)}</details>'
        for number, hit in enumerate(turn.sources, 1)
    )
    return f'<div class="vt-role">Sources given to the model ({len(turn.sources)}){found}</div>{items}'


def status_html(message: str, problem: bool = False) -> str:
    css = "vt-chat-status vt-chat-status-problem" if problem else "vt-chat-status"
    return f'<div class="{css}">{html.escape(message)}</div>' if message else ""


async def page_values(updates: AsyncIterator[ChatUpdate]) -> AsyncIterator[tuple[str, str]]:
    """The chat and the status line as HTML, after every update (what the tab's handler yields)."""
    async for update in updates:
        yield chat_html(update.turns), status_html(update.status, update.problem)
