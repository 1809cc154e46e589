"""Reading a run's results back from OUTPUT: the report, each chunk's record, every
pair's fate, and the ShareGPT rows the datasets hold. Plain data; webui/rendering.py
turns it into HTML."""

from __future__ import annotations

import itertools
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional

from generation_functions.datasets import RUN_REPORT, SHAREGPT_NO_RAG, SHAREGPT_RAG, sharegpt_turns
from generation_functions.store import read_json

RESULTS_DIR = "chunk_results"  # as in control_flow_functions (not imported: it pulls in the engine)
CHUNK_INDEX = "chunk_index.json"
STAGE_NAMES = {
    "chunk_filter": "chunk filter",
    "question_generation": "question generation",
    "question_check": "question check",
    "answer_check": "answer check",
    "context_repair": "context repair",
    "conversation": "conversation",
}
ALL, KEPT, TOSSED = "all pairs", "kept", "tossed (any reason)"


def read_run_report(output_dir: Path) -> Optional[dict]:
    report = read_json(output_dir / RUN_REPORT)
    return report if isinstance(report, dict) and "funnel" in report else None


def chunk_keys(output_dir: Path) -> Optional[list[str]]:
    """The latest run's chunk keys in dataset order (None for an OUTPUT from before the index)."""
    index = read_json(output_dir / CHUNK_INDEX)
    if isinstance(index, dict) and isinstance(index.get("keys"), list):
        return [key for key in dict.fromkeys(index["keys"]) if isinstance(key, str) and _is_key(key)]
    return None


def _is_key(key: str) -> bool:
    return bool(re.fullmatch(r"[0-9A-Za-z_-]+", key or ""))  # keys are hashes; anything else could name another file


def load_chunk_results(output_dir: Path, in_dataset_order: bool = False) -> list[dict]:
    """The latest run's chunk results (every stored one for an older OUTPUT without a
    chunk index), by source file and chunk number, or in the datasets' order."""
    folder = output_dir / RESULTS_DIR
    if not folder.is_dir():
        return []
    keys = chunk_keys(output_dir)
    paths = [folder / f"{key}.json" for key in keys] if keys is not None else sorted(folder.glob("*.json"))
    results = [r for r in (read_json(path) for path in paths) if isinstance(r, dict) and "key" in r]
    if in_dataset_order and keys is not None:
        return results
    return sorted(results, key=lambda r: (str(r.get("source", "")), r.get("chunk_index", 0)))


def read_chunk_result(output_dir: Path, key: str) -> Optional[dict]:
    if not _is_key(key):
        return None
    result = read_json(output_dir / RESULTS_DIR / f"{key}.json")
    return result if isinstance(result, dict) else None


def conversation_choices(results: Iterable[dict]) -> list[tuple[str, str]]:
    """(label, key) of each chunk that has a conversation."""
    return [
        (f"{r.get('source', '?')} · chunk {r.get('chunk_index', 0)} · {len(r.get('pairs') or [])} pairs", r["key"])
        for r in results
        if r.get("conversation")
    ]


def chunk_text(result: Optional[dict]) -> str:
    return str(result.get("chunk", "")) if result else ""


# ---------------------------------------------------------------- every pair and its fate


@dataclass(frozen=True)
class PairFate:
    source: str
    chunk_index: int
    key: str
    question: str
    answer: str
    fate: str  # "kept", "kept (reworded)", "tossed at answer check: voted inaccurate", ...
    kept: bool
    before_repair: Optional[tuple[str, str]] = None  # the wording the checks saw, when reworded


def pair_fates(results: Iterable[dict]) -> list[PairFate]:
    fates = []
    for result in results:
        for record in result.get("vetted") or []:
            before = record.get("before_repair")
            fates.append(
                PairFate(
                    source=str(result.get("source", "")),
                    chunk_index=int(result.get("chunk_index", 0) or 0),
                    key=str(result.get("key", "")),
                    question=str(record.get("question", "")),
                    answer=str(record.get("answer", "")),
                    fate=_fate(record),
                    kept=bool(record.get("kept")),
                    before_repair=(str(before[0]), str(before[1])) if isinstance(before, list) and len(before) == 2 else None,
                )
            )
    return fates


def _fate(record: dict) -> str:
    if record.get("kept"):
        return "kept (reworded)" if record.get("before_repair") else KEPT
    stage = STAGE_NAMES.get(str(record.get("tossed_at", "")), str(record.get("tossed_at", "?")))
    return f"tossed at {stage}: {record.get('reason', '')}"


def fate_choices(fates: Iterable[PairFate]) -> list[str]:
    """The filter's choices: all, kept, tossed, then each fate that occurs, with its count."""
    counts: dict[str, int] = {}
    for item in fates:
        counts[item.fate] = counts.get(item.fate, 0) + 1
    return [ALL, KEPT, TOSSED, *sorted(counts)]


def filter_pairs(fates: Iterable[PairFate], text: str = "", fate: str = ALL) -> list[PairFate]:
    """Pairs whose question, answer or source contains `text` (any case), with the chosen fate."""
    needle = (text or "").strip().casefold()
    chosen = []
    for item in fates:
        if fate == KEPT and not item.kept or fate == TOSSED and item.kept:
            continue
        if fate not in (ALL, KEPT, TOSSED, None, "") and item.fate != fate:
            continue
        if needle and needle not in f"{item.question}\n{item.answer}\n{item.source}".casefold():
            continue
        chosen.append(item)
    return chosen


def failed_chunks(results: Iterable[dict]) -> list[tuple[str, int, str, str]]:
    """(source, chunk, stage, reason) of chunks without questions or whose conversation failed."""
    return [
        (
            str(r.get("source", "")),
            int(r.get("chunk_index", 0) or 0),
            STAGE_NAMES.get(str(r["failure"].get("stage", "")), str(r["failure"].get("stage", ""))),
            str(r["failure"].get("reason", "")),
        )
        for r in results
        if isinstance(r.get("failure"), dict)
    ]


# ---------------------------------------------------------------- the training rows


@dataclass(frozen=True)
class TrainingRows:
    no_rag: Optional[dict]
    rag: Optional[dict]
    note: str = ""


def training_rows(output_dir: Path, key: str) -> TrainingRows:
    """The ShareGPT rows the datasets hold for one chunk's conversation, read from the
    files themselves (what a user trains on), checked against the chunk's record."""
    result = read_chunk_result(output_dir, key)
    if not result or not result.get("conversation"):
        return TrainingRows(None, None, "This chunk has no conversation, so no training row.")
    row = _row_number(output_dir, key)
    if row is None:
        return TrainingRows(None, None, "The datasets do not list this chunk; finish a run to write them.")
    no_rag, rag = (_jsonl_line(output_dir / name, row) for name in (SHAREGPT_NO_RAG, SHAREGPT_RAG))
    expected = sharegpt_turns([tuple(turn) for turn in result["conversation"]])
    if not no_rag or no_rag.get("conversations", [])[1:] != expected:
        return TrainingRows(None, None, "The dataset files are from another run than these results; rerun to rebuild them.")
    return TrainingRows(no_rag, rag)


def _row_number(output_dir: Path, key: str) -> Optional[int]:
    """The row of a chunk's conversation in the ShareGPT files: they hold one row per
    chunk with a usable conversation, in the chunk index's order."""
    row = 0
    for result in load_chunk_results(output_dir, in_dataset_order=True):
        usable = bool(result.get("conversation")) and bool(sharegpt_turns([tuple(t) for t in result["conversation"]]))
        if result.get("key") == key:
            return row if usable else None
        row += usable
    return None


def _jsonl_line(path: Path, number: int) -> Optional[dict]:
    try:
        with open(path, encoding="utf-8") as handle:
            line = next(itertools.islice(handle, number, None), None)
    except OSError:
        return None
    try:
        row = json.loads(line) if line else None
    except ValueError:
        return None
    return row if isinstance(row, dict) else None
