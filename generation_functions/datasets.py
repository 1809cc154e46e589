"""The dataset files a run writes into OUTPUT.

Every file is assembled from the per-chunk result records in chunk order, so a
run that was killed and resumed writes byte-identical datasets to one that ran
straight through. Each file is written atomically.
"""

from __future__ import annotations

from pathlib import Path
import hashlib
from typing import Iterable, Optional, Sequence

import orjson

from generation_functions.conversation_check import merge_turns
from generation_functions.rag_rows import RagRows, RagRowSettings
from generation_functions.store import atomic_text_file

PLAIN_QA = "plain_qa_list.jsonl"
SHAREGPT_NO_RAG = "simplified_data_no_rag.jsonl"
SHAREGPT_RAG = "simplified_data_rag.jsonl"
MASTER_LIST = "master_list.jsonl"
PRETRAINING_JSONL = "pretraining.jsonl"
PRETRAINING_JSON = "pretraining.json"
RUN_REPORT = "run_report.json"
# Not a file: the RAG rows whose context leaves the source chunk out (counted in the report's outputs).
RAG_WITHOUT_ANSWER = "simplified_data_rag.jsonl rows without the answer"
DATASET_FILES = (PLAIN_QA, SHAREGPT_NO_RAG, SHAREGPT_RAG, MASTER_LIST, PRETRAINING_JSONL, PRETRAINING_JSON)

_SPEAKER_TO_SHAREGPT = {"User": "human", "AI Assistant": "gpt"}


def jsonl_line(row: dict) -> str:
    # orjson: several times faster than json on chunk-sized strings, same UTF-8 text.
    return orjson.dumps(row, option=orjson.OPT_APPEND_NEWLINE).decode("utf-8")


def sharegpt_turns(turns: list[tuple[str, str]]) -> list[dict[str, str]]:
    """Alternating human/gpt turns, as chat templates require (see merge_turns)."""
    result = [{"from": _SPEAKER_TO_SHAREGPT[speaker], "value": message} for speaker, message in merge_turns(turns)]
    if result and result[-1]["from"] == "human":
        result.pop()  # an unanswered last question teaches nothing
    return result


def join_context(chunks: Sequence[str]) -> str:
    """Several retrieved chunks as one {data}: the form RAG rows and RAG questions share."""
    return "\n\n".join(chunk.strip() for chunk in chunks)


def rag_system_prompt(template: str, chunk_text: str) -> str:
    # Only {data} is replaced; any other brace in the prompt or chunk is literal.
    return template.replace("{data}", chunk_text)


def pick_prompt(prompts: Sequence[str], turns: list[dict[str, str]]) -> str:
    """One of the system prompts for this conversation, chosen by its content: the same
    conversation always gets the same prompt, and a model does not learn one fixed wording."""
    if len(prompts) == 1:
        return prompts[0]
    digest = hashlib.sha256(turns[0]["value"].encode("utf-8")).digest()
    return prompts[int.from_bytes(digest[:8], "big") % len(prompts)]


def write_datasets(
    output_dir: Path,
    results: Iterable[dict],
    no_rag_prompts: str | Sequence[str],
    rag_prompts: str | Sequence[str],
    rag_rows: Optional[RagRows] = None,
) -> dict[str, int]:
    """Write the QA list, ShareGPT sets and master list; returns rows per file.

    The prompts are one system prompt each, or several to pick from per conversation.
    rag_rows gives each RAG row its retrieved context (by default: the chunk alone)."""
    rag_rows = rag_rows or RagRows(RagRowSettings(0, 0.0), None)
    no_rag_prompts = (no_rag_prompts,) if isinstance(no_rag_prompts, str) else tuple(no_rag_prompts)
    rag_prompts = (rag_prompts,) if isinstance(rag_prompts, str) else tuple(rag_prompts)
    counts = {PLAIN_QA: 0, SHAREGPT_NO_RAG: 0, SHAREGPT_RAG: 0, MASTER_LIST: 0, RAG_WITHOUT_ANSWER: 0}
    with atomic_text_file(output_dir / PLAIN_QA) as qa, atomic_text_file(
        output_dir / SHAREGPT_NO_RAG
    ) as no_rag, atomic_text_file(output_dir / SHAREGPT_RAG) as rag, atomic_text_file(
        output_dir / MASTER_LIST
    ) as master:
        for result in results:
            kinds = result.get("pair_kinds") or [None] * len(result["pairs"])
            for (question, answer), kind in zip(result["pairs"], kinds):
                qa.write(jsonl_line(_qa_row(result, question, answer, kind)))
                counts[PLAIN_QA] += 1
            conversation = result.get("conversation")
            if not conversation:
                continue
            turns = sharegpt_turns([tuple(turn) for turn in conversation])
            if not turns:
                continue
            no_rag_prompt = pick_prompt(no_rag_prompts, turns)
            no_rag.write(jsonl_line({"conversations": [{"from": "system", "value": no_rag_prompt}, *turns]}))
            row = rag_rows.build(result["key"], result["chunk"], turns)
            system = rag_system_prompt(pick_prompt(rag_prompts, turns), join_context(row.context))
            rag.write(jsonl_line({"conversations": [{"from": "system", "value": system}, *row.turns]}))
            counts[RAG_WITHOUT_ANSWER] += not row.holds_answer
            master.write(jsonl_line(_master_row(result, conversation, row.context)))
            counts[SHAREGPT_NO_RAG] += 1
            counts[SHAREGPT_RAG] += 1
            counts[MASTER_LIST] += 1
    return counts


def _qa_row(result: dict, question: str, answer: str, kind: str | None) -> dict:
    row = {
        "question": question,
        "answer": answer,
        "source_filename": result["source"],
        "chunk_index": result["chunk_index"],
        "chunk": result["chunk"],
    }
    if kind is not None:  # the question's kind, where the prompt asked for one
        row["kind"] = kind
    return row


def _master_row(result: dict, conversation: list, rag_chunks: list[str]) -> dict:
    return {
        "conversation": [{"speaker": speaker, "message": message} for speaker, message in conversation],
        "qa_pairs": [{"question": q, "answer": a} for q, a in result["pairs"]],
        "rag_context": result["chunk"],  # the source chunk
        "rag_row_chunks": rag_chunks,  # the chunks the RAG row's {data} holds, in order
        "source_filename": result["source"],
    }


class PretrainingWriter:
    """pretraining.jsonl (one {"text"} row per document, axolotl's completion type)
    and pretraining.json ({"text": every document joined}), streamed document by
    document so a large corpus is never held in memory at once."""

    def __init__(self, output_dir: Path):
        self._jsonl_cm = atomic_text_file(output_dir / PRETRAINING_JSONL)
        self._json_cm = atomic_text_file(output_dir / PRETRAINING_JSON)
        self._jsonl = self._jsonl_cm.__enter__()
        self._json = self._json_cm.__enter__()
        self._json.write('{"text": "')
        self._first = True
        self.documents = 0

    def add(self, text: str) -> None:
        self._jsonl.write(jsonl_line({"text": text}))
        piece = text if self._first else "\n\n" + text
        self._json.write(orjson.dumps(piece).decode("utf-8")[1:-1])
        self._first = False
        self.documents += 1

    def close(self, ok: bool = True) -> None:
        if ok:
            self._json.write('"}\n')
            self._jsonl_cm.__exit__(None, None, None)
            self._json_cm.__exit__(None, None, None)
        else:
            error = RuntimeError("pretraining corpus abandoned")
            for cm in (self._jsonl_cm, self._json_cm):
                try:
                    cm.__exit__(RuntimeError, error, None)
                except RuntimeError:
                    pass
