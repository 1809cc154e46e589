"""The questions to evaluate on, with their reference answers and (where known) source chunks.

Accepted: a training folder made by assemble_training_data.py (its eval/plain_qa_list.jsonl),
a pipeline OUTPUT folder (its plain_qa_list.jsonl), or any jsonl whose rows hold "question"
and "answer", optionally "chunk" (or "context") and "source_filename" (or "source").
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from generation_functions.errors import InputError
from generation_functions.store import work_key

# Where a folder keeps its pairs, in the order looked for.
FOLDER_FILES = ("eval/plain_qa_list.jsonl", "plain_qa_list.jsonl")


@dataclass(frozen=True)
class EvalItem:
    id: str  # stable across runs: a hash of the question and reference
    question: str
    reference: str
    chunk: Optional[str]
    source: str


def resolve_eval_file(path: Path) -> Path:
    if path.is_dir():
        for name in FOLDER_FILES:
            if (path / name).is_file():
                return path / name
        raise InputError(f"{path} holds no {' or '.join(FOLDER_FILES)}: give a training folder, an OUTPUT folder or a jsonl file")
    if not path.is_file():
        raise InputError(f"evaluation set {path} does not exist")
    return path


def load_eval_set(path: Path, limit: Optional[int] = None) -> list[EvalItem]:
    """The items in file order, each question once; errors name the file and line."""
    source_file = resolve_eval_file(path)
    items: dict[str, EvalItem] = {}
    try:
        lines = source_file.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read evaluation set {source_file}: {exc}") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        item = _item(json_row(line, source_file, number), source_file, number)
        items.setdefault(" ".join(item.question.split()).casefold(), item)
        if limit is not None and len(items) >= limit:
            break
    if not items:
        raise InputError(f"evaluation set {source_file} holds no question")
    return list(items.values())


def json_row(line: str, path: Path, number: int) -> dict:
    try:
        row = json.loads(line)
    except ValueError as exc:
        raise InputError(f"{path}, line {number}: not valid JSON ({exc})") from None
    if not isinstance(row, dict):
        raise InputError(f"{path}, line {number}: expected a JSON object")
    return row


def _item(row: dict, path: Path, number: int) -> EvalItem:
    question, reference = row.get("question"), row.get("answer")
    for name, value in (("question", question), ("answer", reference)):
        if not isinstance(value, str) or not value.strip():
            raise InputError(f"{path}, line {number}: needs a non-empty text field {name!r}")
    chunk = row.get("chunk", row.get("context"))
    chunk = chunk if isinstance(chunk, str) and chunk.strip() else None
    source = row.get("source_filename", row.get("source", ""))
    return EvalItem(work_key(question, reference)[:16], question.strip(), reference.strip(), chunk, str(source or ""))
