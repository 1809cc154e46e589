"""HTML for the WebUI's views. Every piece of model or document text goes through
`text()`: escaped, shown as written (line breaks kept), never read as Markdown or
HTML, so an answer that starts with "# " is a line of text, not a heading, and a
"<script>" in a document is only shown."""

from __future__ import annotations

import html
from typing import Iterable, Optional, Sequence

from generation_functions.report import chunk_funnel, pair_funnel, summary_text
from webui.results import PairFate, TrainingRows
from webui.run_controller import STAGE_LABELS, RunSnapshot

CSS = """
.vt-stage { margin: 0.4em 0; }
.vt-stage-label { font-size: 0.95em; margin-bottom: 0.2em; }
.vt-bar { background: var(--block-border-color, #ddd); border-radius: 4px; height: 12px; overflow: hidden; }
.vt-bar-fill { background: var(--color-accent, #f97316); height: 100%; transition: width 0.3s; }
.vt-funnels { display: flex; gap: 2em; flex-wrap: wrap; }
.vt-funnel { flex: 1 1 320px; display: flex; flex-direction: column; align-items: center; gap: 6px; padding: 8px 0; }
.vt-funnel h4 { margin: 0 0 4px 0; }
.vt-funnel-row { width: 100%; display: flex; flex-direction: column; align-items: center; }
.vt-funnel-bar { background: var(--color-accent, #f97316); height: 22px; border-radius: 3px; opacity: 0.85; }
.vt-funnel-text { font-size: 0.9em; margin-top: 2px; }
.vt-text { white-space: pre-wrap; overflow-wrap: anywhere; font-family: inherit; margin: 0; }
.vt-chat { display: flex; flex-direction: column; gap: 8px; max-height: 520px; overflow-y: auto; }
.vt-turn { border-radius: 8px; padding: 8px 10px; border: 1px solid var(--block-border-color, #ddd); }
.vt-turn-user { background: var(--background-fill-secondary, #f4f4f5); margin-right: 15%; }
.vt-turn-assistant { margin-left: 15%; }
.vt-role { font-size: 0.8em; font-weight: 600; opacity: 0.8; margin-bottom: 2px; }
.vt-table { width: 100%; border-collapse: collapse; table-layout: fixed; }
.vt-table th, .vt-table td { border: 1px solid var(--block-border-color, #ddd); padding: 6px; vertical-align: top; text-align: left; }
.vt-table col.vt-narrow { width: 14%; }
.vt-table-wrap { max-height: 560px; overflow-y: auto; }
.vt-kept { color: #15803d; font-weight: 600; }
.vt-tossed { color: #b91c1c; font-weight: 600; }
.vt-check-problem { color: #b91c1c; }
.vt-invalid textarea, .vt-invalid input { border-color: #b91c1c !important; }
"""


def text(value: object) -> str:
    """Model or document text as inert HTML."""
    return f'<div class="vt-text">{html.escape(str(value))}</div>'


def progress_html(progress: dict[str, tuple[int, int]]) -> str:
    rows = []
    for stage, label in STAGE_LABELS.items():
        done, total = progress.get(stage, (0, 0))
        share = 100.0 * done / total if total else 0.0
        rows.append(
            f'<div class="vt-stage" data-stage="{stage}">'
            f'<div class="vt-stage-label">{html.escape(label)}: {done} / {total} {stage}</div>'
            f'<div class="vt-bar"><div class="vt-bar-fill" style="width:{share:.1f}%"></div></div></div>'
        )
    return '<div class="vt-progress">' + "".join(rows) + "</div>"


def status_markdown(snapshot: RunSnapshot) -> str:
    heading = {"idle": "Idle", "running": "Running", "finished": "Finished", "failed": "Failed", "cancelled": "Cancelled"}
    elapsed = f" ({snapshot.elapsed:.0f}s)" if snapshot.state != "idle" else ""
    body = _finished_line(snapshot.report) if snapshot.state == "finished" else snapshot.message
    return f"**{heading[snapshot.state]}**{elapsed}: " + body.replace("\n", "  \n")


def _finished_line(report: Optional[dict]) -> str:
    if not report:
        return "done."
    return f"conversations: {report['funnel']['conversations']}, datasets written to `{report['output_dir']}`."


def _funnel(title: str, rows: Sequence[tuple[str, int]], kind: str) -> str:
    largest = max((count for _, count in rows), default=0) or 1
    bars = []
    for label, count in rows:
        width = max(100.0 * count / largest, 2.0)
        bars.append(
            f'<div class="vt-funnel-row" data-step="{html.escape(label)}">'
            f'<div class="vt-funnel-bar" style="width:{width:.1f}%"></div>'
            f'<div class="vt-funnel-text">{html.escape(label)}: <b>{count}</b></div></div>'
        )
    return f'<div class="vt-funnel" data-funnel="{kind}"><h4>{html.escape(title)}</h4>' + "".join(bars) + "</div>"


def funnel_html(report: Optional[dict]) -> str:
    """Two funnels, never mixed: what became of the pairs, and chunks against conversations."""
    if not report:
        return '<div class="vt-funnel vt-empty">No run report yet.</div>'
    return (
        '<div class="vt-funnels">'
        + _funnel("Question/answer pairs", pair_funnel(report), "pairs")
        + _funnel("Chunks and conversations (one per chunk)", chunk_funnel(report), "chunks")
        + "</div>"
    )


def report_markdown(report: Optional[dict]) -> str:
    if not report:
        return "No run report yet."
    return "```\n" + summary_text(report) + "\n```"


def conversation_html(turns: Optional[Sequence[Sequence[str]]]) -> str:
    if not turns:
        return '<div class="vt-chat vt-empty">Choose a conversation.</div>'
    rows = []
    for speaker, message in turns:
        role = "user" if speaker == "User" else "assistant"
        rows.append(
            f'<div class="vt-turn vt-turn-{role}"><div class="vt-role">{html.escape(str(speaker))}</div>{text(message)}</div>'
        )
    return '<div class="vt-chat">' + "".join(rows) + "</div>"


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]], narrow: Sequence[bool]) -> str:
    cols = "".join('<col class="vt-narrow">' if small else "<col>" for small in narrow)
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>" for row in rows)
    return f'<div class="vt-table-wrap"><table class="vt-table"><colgroup>{cols}</colgroup><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def pairs_html(fates: Sequence[PairFate], total: int, limit: int = 300) -> str:
    """The pairs that match the filter, with their source and fate; the answer column is never cut."""
    if not fates:
        return f"<p>No pair matches ({total} in all).</p>"
    rows = []
    for item in fates[:limit]:
        css = "vt-kept" if item.kept else "vt-tossed"
        question = text(item.question)
        if item.before_repair:
            question += f'<details><summary>as checked, before repair</summary>{text(item.before_repair[0])}</details>'
        rows.append(
            [
                text(f"{item.source} · chunk {item.chunk_index}"),
                f'<span class="{css}">{html.escape(item.fate)}</span>',
                question,
                text(item.answer),
            ]
        )
    shown = f"<p>{len(fates)} of {total} pairs" + (f" (the first {limit} shown)" if len(fates) > limit else "") + ".</p>"
    return shown + _table(["chunk", "fate", "question", "answer"], rows, [True, True, False, False])


def failed_chunks_html(rows: Sequence[tuple[str, int, str, str]]) -> str:
    if not rows:
        return "<p>Every chunk produced questions and, where pairs were kept, a conversation.</p>"
    cells = [[text(source), str(index), html.escape(stage), text(reason)] for source, index, stage, reason in rows]
    return _table(["source", "chunk", "stage", "reason"], cells, [True, True, True, False])


def training_rows_html(rows: TrainingRows) -> str:
    """The ShareGPT rows as written in the datasets: system prompt, then the turns."""
    if rows.no_rag is None:
        return f"<p>{html.escape(rows.note)}</p>"
    parts = []
    for title, row in (("simplified_data_no_rag.jsonl", rows.no_rag), ("simplified_data_rag.jsonl (system prompt with the chunk)", rows.rag)):
        if not row:
            continue
        turns = "".join(
            f'<div class="vt-turn vt-turn-{"user" if t.get("from") == "human" else "assistant"}">'
            f'<div class="vt-role">{html.escape(str(t.get("from", "")))}</div>{text(t.get("value", ""))}</div>'
            for t in row.get("conversations", [])
        )
        parts.append(f'<details class="vt-row"><summary>{html.escape(title)}</summary><div class="vt-chat">{turns}</div></details>')
    return "".join(parts)


def check_html(lines: Sequence[str], problems: Sequence[str]) -> str:
    """What a server test or an estimate found, as preformatted lines (problems in red)."""
    shown = "".join(
        f'<div class="vt-text{" vt-check-problem" if "PROBLEM" in line else ""}">{html.escape(line)}</div>' for line in lines
    )
    verdict = f"<p><b>{len(problems)} problem(s).</b></p>" if problems else ""
    return verdict + shown
