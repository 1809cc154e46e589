"""Read a finished pipeline OUTPUT folder into memory.

Loads its pretraining documents, question/answer pairs, conversations (no-RAG
and RAG forms linked through master_list.jsonl), run report and stored prompt
templates, and counts the rows it had to skip. Nothing is deduplicated or
written here; that is the assembly's job (assembly.py).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Optional

from dataset_assembly.chat_template import check_conversation_shape
from generation_functions.datasets import (
    MASTER_LIST,
    PLAIN_QA,
    PRETRAINING_JSONL,
    RUN_REPORT,
    SHAREGPT_NO_RAG,
    SHAREGPT_RAG,
)
from generation_functions.errors import VerusToolkitError
from generation_functions.near_duplicates import normalise
from generation_functions.store import CALLS_DIR, TEMPLATES_DIR, count_calls

# The files a folder must hold at least one of to count as an OUTPUT folder.
INPUT_DATASETS = (PLAIN_QA, SHAREGPT_NO_RAG, SHAREGPT_RAG, PRETRAINING_JSONL)


class TrainingDataError(VerusToolkitError):
    """An input folder, option or destination the assembler cannot work with."""


@dataclass
class Conversation:
    """One conversation as the pipeline wrote it, in its no-RAG and RAG forms."""

    no_rag: Optional[list[dict]]
    rag: Optional[list[dict]]
    questions: list[str]  # the pairs it was built from (master_list), when known
    source: str
    folder: str

    @property
    def turns(self) -> list[dict]:
        return (self.no_rag or self.rag)[1:]

    def human_turns(self) -> list[str]:
        return [turn["value"] for turn in self.turns if turn["from"] == "human"]

    def dedup_key(self) -> str:
        text = "\x1e".join(f"{turn['from']}\x1f{normalise(turn['value'])}" for turn in self.turns)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass
class PromptUse:
    folder: str
    step: str
    calls: int  # the step's calls in the folder's call log (each names its template)
    text: str  # the prompt template, placeholders unfilled

    @property
    def digest(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()[:12]


@dataclass
class OutputFolder:
    path: Path
    label: str
    qa_pairs: list[dict] = field(default_factory=list)
    conversations: list[Conversation] = field(default_factory=list)
    documents: list[str] = field(default_factory=list)
    run_report: Optional[dict] = None
    rows_read: dict[str, int] = field(default_factory=dict)
    malformed: Counter = field(default_factory=Counter)
    no_rag_prompts: Counter = field(default_factory=Counter)
    rag_templates: Counter = field(default_factory=Counter)
    prompts: list[PromptUse] = field(default_factory=list)
    aligned: bool = True


def _read_jsonl(path: Path) -> Iterator[tuple[int, Any]]:
    try:
        handle = path.open(encoding="utf-8")
    except OSError as exc:
        raise TrainingDataError(f"cannot read {path}: {exc}") from exc
    with handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                yield number, json.loads(line)
            except ValueError as exc:
                raise TrainingDataError(f"{path}:{number}: not a JSON line ({exc})") from exc


def _read_rows(path: Path) -> list[Any]:
    return [row for _, row in _read_jsonl(path)] if path.is_file() else []


def _prompt_text(prompt: Any) -> str:
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list):
        parts = []
        for message in prompt:
            if isinstance(message, dict):
                parts.append(f"[{message.get('role', '?')}]\n{message.get('content', '')}")
        return "\n\n".join(parts)
    return ""


def read_prompt_uses(folder: Path, label: str) -> list[PromptUse]:
    """The prompts each step used, from the templates the run stored.

    A run stores each step's prompt template once (calls/<step>/templates/) and
    every call refers to one; a template's text is the prompt as written, its
    placeholders unfilled.
    """
    root = folder / CALLS_DIR
    uses: list[PromptUse] = []
    if not root.is_dir():
        return uses
    for step_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        calls = count_calls(step_dir)
        for path in sorted((step_dir / TEMPLATES_DIR).glob("*.json")):
            try:
                record = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                continue
            if isinstance(record, dict) and "prompt" in record:
                uses.append(PromptUse(label, step_dir.name, calls, _prompt_text(record["prompt"])))
    return uses


def load_output_folder(path: Path, label: Optional[str] = None) -> OutputFolder:
    """Read one OUTPUT folder; TrainingDataError when it is missing or holds no datasets."""
    path = Path(path)
    if not path.exists():
        raise TrainingDataError(f"no such folder: {path}")
    if not path.is_dir():
        raise TrainingDataError(f"not a folder: {path}")
    if not any((path / name).is_file() for name in INPUT_DATASETS):
        raise TrainingDataError(
            f"{path} holds no datasets: expected at least one of {', '.join(INPUT_DATASETS)} "
            "(the files a finished `python processing.py` run writes into OUTPUT)"
        )
    out = OutputFolder(path=path, label=label or path.name)

    for row in _read_rows(path / PRETRAINING_JSONL):
        if isinstance(row, dict) and isinstance(row.get("text"), str) and row["text"].strip():
            out.documents.append(row["text"])
        else:
            out.malformed[PRETRAINING_JSONL] += 1
    out.rows_read[PRETRAINING_JSONL] = len(out.documents) + out.malformed[PRETRAINING_JSONL]

    qa_rows = _read_rows(path / PLAIN_QA)
    for row in qa_rows:
        if isinstance(row, dict) and isinstance(row.get("question"), str) and isinstance(row.get("answer"), str) \
                and row["question"].strip() and row["answer"].strip():
            out.qa_pairs.append(row)
        else:
            out.malformed[PLAIN_QA] += 1
    out.rows_read[PLAIN_QA] = len(qa_rows)

    no_rag = _read_rows(path / SHAREGPT_NO_RAG)
    rag = _read_rows(path / SHAREGPT_RAG)
    master = _read_rows(path / MASTER_LIST)
    out.rows_read.update({SHAREGPT_NO_RAG: len(no_rag), SHAREGPT_RAG: len(rag), MASTER_LIST: len(master)})
    # write_datasets writes the three files row for row together; rely on that
    # only when the counts agree (a hand-edited folder falls back to unlinked rows).
    out.aligned = len(no_rag) == len(rag) == len(master)
    if out.aligned:
        rows = list(zip(no_rag, rag, master))
    else:
        rows = [(r, None, None) for r in no_rag] + [(None, r, None) for r in rag]
    for plain, with_rag, meta in rows:
        plain_turns = _turns_or_none(plain, out, SHAREGPT_NO_RAG)
        rag_turns = _turns_or_none(with_rag, out, SHAREGPT_RAG)
        if plain_turns is None and rag_turns is None:
            continue
        if plain_turns is not None and rag_turns is not None and plain_turns[1:] != rag_turns[1:]:
            # Not the same conversation after all: keep them apart.
            out.conversations.append(Conversation(plain_turns, None, [], "", out.label))
            out.conversations.append(Conversation(None, rag_turns, [], "", out.label))
            continue
        questions: list[str] = []
        source = ""
        if isinstance(meta, dict):
            questions = [p["question"] for p in meta.get("qa_pairs", []) if isinstance(p, dict) and p.get("question")]
            source = str(meta.get("source_filename", ""))
            chunk = meta.get("rag_context")
            if rag_turns is not None and isinstance(chunk, str) and chunk and chunk in rag_turns[0]["value"]:
                out.rag_templates[rag_turns[0]["value"].replace(chunk, "{data}", 1)] += 1
        if plain_turns is not None:
            out.no_rag_prompts[plain_turns[0]["value"]] += 1
        out.conversations.append(Conversation(plain_turns, rag_turns, questions, source, out.label))

    report = path / RUN_REPORT
    if report.is_file():
        try:
            out.run_report = json.loads(report.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            out.run_report = None
    out.prompts = read_prompt_uses(path, out.label)
    return out


def _turns_or_none(row: Any, out: OutputFolder, name: str) -> Optional[list[dict]]:
    if row is None:
        return None
    turns = row.get("conversations") if isinstance(row, dict) else None
    if check_conversation_shape(turns) is not None:
        out.malformed[name] += 1
        return None
    return [{"from": t["from"], "value": t["value"]} for t in turns]
