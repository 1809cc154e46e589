"""Assemble a training folder from one or more pipeline OUTPUT folders.

A run of the pipeline writes its datasets into one OUTPUT folder; a model is
usually trained on several (say the wiki, the docs and the API reference, each
run separately). This module combines folders read by output_folders into the
rows of one folder that axolotl can train on directly; writing.py writes it:

    DEST/
      README.md                     dataset card: sizes, sources, tokens, prompts
      manifest.json                 the same facts for programs
      pretraining.jsonl             {"text"} per source document (completion data)
      simplified_data_no_rag.jsonl  ShareGPT conversations, plain system prompt
      simplified_data_rag.jsonl     the same conversations, system prompt + chunk
      plain_qa_list.jsonl           the question/answer pairs themselves
      eval/                         what training never sees (see below)
      prompts_used/                 the generation prompts, one file per prompt

What happens on the way, in order:

1. Combine. Folders are read in the order given; rows keep that order until the
   final shuffle, so "first" below means first folder, first row.
2. Deduplicate. Identical documents and conversations are kept once. A pair
   whose question is a near-duplicate (see generation_functions.near_duplicates) of an earlier kept
   question is dropped, and so is a conversation whose every question was
   already asked in an earlier kept conversation.
3. Hold out. Pairs and the conversations built from them are linked; the
   linked groups are drawn at random (seeded) until about `eval_fraction` of
   the pairs are held out. A held-out group leaves training as a whole: its
   pairs and its conversations go to eval/. Afterwards every remaining training
   conversation is checked once more and removed if one of its human turns or
   source questions is a near-duplicate of, or literally contains, a held-out
   question. The source documents stay in pretraining.jsonl: the evaluation asks
   whether the model learned the facts, not whether it memorised the pairs.
4. Shuffle each file with the seed. writing.py then writes everything, the card last.
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from dataset_assembly.holdout import HeldOutGuard, draw_held_out, eval_target, linked_groups
from dataset_assembly.layout import EVAL_DIR, EVAL_QA_CHAT
from dataset_assembly.output_folders import Conversation, OutputFolder, TrainingDataError
from generation_functions.datasets import PLAIN_QA, PRETRAINING_JSONL, SHAREGPT_NO_RAG, SHAREGPT_RAG
from generation_functions.near_duplicates import NearDuplicateIndex, word_set

# System prompt of eval/qa_chat.jsonl when no input folder has a conversation to
# take the real one from (config.yaml's FINAL_ASSISTANT_PROMPT_NO_RAG, shortened).
FALLBACK_SYSTEM_PROMPT = "You are a helpful AI assistant who knows the Verus project well."


@dataclass
class AssembleOptions:
    eval_fraction: float = 0.05
    seed: int = 42
    similarity: float = 0.8
    prefer_tiktoken: bool = True
    tokenizer: Path | None = None  # the base model's tokenizer (file or folder) for exact token counts


@dataclass
class _Pair:
    row: dict
    words: frozenset[str]


@dataclass
class _Split:
    train_pairs: list[_Pair]
    eval_pairs: list[_Pair]
    train_conversations: list[Conversation]
    eval_conversations: list[Conversation]
    target: int


def assemble(folders: Sequence[OutputFolder], options: AssembleOptions) -> dict[str, Any]:
    """Combine, deduplicate and split; returns the rows of every output file and
    the statistics for the card (nothing is written here)."""
    _check_options(options)
    removed: Counter = Counter()
    documents = _unique_documents(folders, removed)
    pairs_in = [_Pair({**row, "source_output": folder.label}, word_set(row["question"]))
                for folder in folders for row in folder.qa_pairs]
    conversations_in = [c for folder in folders for c in folder.conversations]
    conversation_words = [[word_set(q) for q in (c.questions or c.human_turns())] for c in conversations_in]
    frequencies = _word_frequencies(pairs_in, conversation_words)
    pairs, question_index = _unique_questions(pairs_in, options.similarity, frequencies, removed)
    conversations, kept_words = _new_conversations(
        conversations_in, conversation_words, options.similarity, frequencies, removed
    )
    rng = random.Random(options.seed)
    split = _split(pairs, conversations, kept_words, question_index, options, frequencies, rng, removed)
    for rows in (documents, split.train_pairs, split.train_conversations, split.eval_pairs, split.eval_conversations):
        rng.shuffle(rows)
    no_rag_prompt = _training_system_prompt(folders)
    stats: dict[str, Any] = {
        "removed": removed,
        "pairs_in": len(pairs_in),
        "conversations_in": len(conversations_in),
        "documents_in": sum(len(f.documents) for f in folders),
        "eval_pairs": len(split.eval_pairs),
        "eval_target": split.target,
        "no_rag_prompt": no_rag_prompt,
    }
    return {"files": _output_files(documents, split, no_rag_prompt), "stats": stats}


def _check_options(options: AssembleOptions) -> None:
    if not 0.0 <= options.eval_fraction < 1.0:
        raise TrainingDataError("--eval-fraction must be at least 0 and below 1")
    if not 0.0 < options.similarity <= 1.0:
        raise TrainingDataError("--similarity must be above 0 and at most 1")


def _unique_documents(folders: Sequence[OutputFolder], removed: Counter) -> list[str]:
    """Pretraining documents: exact duplicates (after whitespace trimming) once."""
    documents, seen = [], set()
    for folder in folders:
        for text in folder.documents:
            digest = hashlib.sha256(text.strip().encode("utf-8")).hexdigest()
            if digest in seen:
                removed["duplicate documents"] += 1
                continue
            seen.add(digest)
            documents.append(text)
    return documents


def _word_frequencies(pairs: list[_Pair], conversation_words: list[list[frozenset[str]]]) -> Counter:
    """One global word order for every index (rarest first) needs one count over
    every question the indexes will see."""
    frequencies: Counter = Counter()
    for pair in pairs:
        frequencies.update(pair.words)
    for sets in conversation_words:
        for words in sets:
            frequencies.update(words)
    return frequencies


def _unique_questions(pairs_in: list[_Pair], similarity: float, frequencies: Counter,
                      removed: Counter) -> tuple[list[_Pair], NearDuplicateIndex]:
    """Near-duplicate questions: the first of a family is kept. The index of the
    kept questions is returned too; the hold-out links conversations through it."""
    index = NearDuplicateIndex(similarity, frequencies)
    pairs: list[_Pair] = []
    for pair in pairs_in:
        if index.first_similar(pair.words) is not None:
            removed["near-duplicate questions"] += 1
            continue
        index.add(pair.words, len(pairs))
        pairs.append(pair)
    return pairs, index


def _new_conversations(conversations_in: list[Conversation], conversation_words: list[list[frozenset[str]]],
                       similarity: float, frequencies: Counter,
                       removed: Counter) -> tuple[list[Conversation], list[list[frozenset[str]]]]:
    """Identical turns once; then drop a conversation whose every question was
    already asked in an earlier kept conversation."""
    asked = NearDuplicateIndex(similarity, frequencies)
    conversations: list[Conversation] = []
    kept_words: list[list[frozenset[str]]] = []
    seen: set[str] = set()
    for conversation, sets in zip(conversations_in, conversation_words):
        key = conversation.dedup_key()
        if key in seen:
            removed["duplicate conversations"] += 1
            continue
        if sets and all(asked.first_similar(words) is not None for words in sets):
            removed["conversations repeating earlier questions"] += 1
            continue
        seen.add(key)
        for words in sets:
            asked.add(words, len(conversations))
        conversations.append(conversation)
        kept_words.append(sets)
    return conversations, kept_words


def _split(pairs: list[_Pair], conversations: list[Conversation], kept_words: list[list[frozenset[str]]],
           question_index: NearDuplicateIndex, options: AssembleOptions, frequencies: Counter,
           rng: random.Random, removed: Counter) -> _Split:
    """Hold out whole groups of linked pairs and conversations, then remove any
    training conversation that still asks a held-out question."""
    n_pairs, n_conv = len(pairs), len(conversations)
    target = eval_target(options.eval_fraction, n_pairs)
    held = draw_held_out(linked_groups(n_pairs, kept_words, question_index), n_pairs, target, rng)
    eval_pairs = [pairs[i] for i in range(n_pairs) if i in held]
    guard = HeldOutGuard([(p.words, p.row["question"]) for p in eval_pairs], options.similarity, frequencies)
    train_conversations = []
    for i in range(n_conv):
        if n_pairs + i in held:
            continue
        if guard.asks_held_out(conversations[i], kept_words[i]):
            removed["training conversations asking a held-out question"] += 1
            continue
        train_conversations.append(conversations[i])
    return _Split(
        train_pairs=[pairs[i] for i in range(n_pairs) if i not in held],
        eval_pairs=eval_pairs,
        train_conversations=train_conversations,
        eval_conversations=[conversations[i] for i in range(n_conv) if n_pairs + i in held],
        target=target,
    )


def _training_system_prompt(folders: Sequence[OutputFolder]) -> str:
    """The no-RAG system prompt most conversations were written with: the held-out
    pairs become chats with the system prompt the model trains with."""
    prompts_seen = sum((f.no_rag_prompts for f in folders), Counter())
    return prompts_seen.most_common(1)[0][0] if prompts_seen else FALLBACK_SYSTEM_PROMPT


def _conversation_rows(conversations: list[Conversation], attr: str) -> list[dict]:
    return [{"conversations": getattr(c, attr)} for c in conversations if getattr(c, attr) is not None]


def _eval_chat_row(pair: _Pair, system_prompt: str) -> dict:
    return {"conversations": [
        {"from": "system", "value": system_prompt},
        {"from": "human", "value": pair.row["question"]},
        {"from": "gpt", "value": pair.row["answer"]},
    ]}


def _output_files(documents: list[str], split: _Split, no_rag_prompt: str) -> dict[str, list[dict]]:
    return {
        PRETRAINING_JSONL: [{"text": text} for text in documents],
        SHAREGPT_NO_RAG: _conversation_rows(split.train_conversations, "no_rag"),
        SHAREGPT_RAG: _conversation_rows(split.train_conversations, "rag"),
        PLAIN_QA: [p.row for p in split.train_pairs],
        f"{EVAL_DIR}/{PLAIN_QA}": [p.row for p in split.eval_pairs],
        f"{EVAL_DIR}/{EVAL_QA_CHAT}": [_eval_chat_row(p, no_rag_prompt) for p in split.eval_pairs],
        f"{EVAL_DIR}/{SHAREGPT_NO_RAG}": _conversation_rows(split.eval_conversations, "no_rag"),
        f"{EVAL_DIR}/{SHAREGPT_RAG}": _conversation_rows(split.eval_conversations, "rag"),
    }


def unique_labels(paths: Sequence[Path]) -> list[str]:
    """Short names for the folders: the folder name, with as many parent folders
    as it takes to tell two apart ("wiki/output", "docs/output")."""
    parts = [Path(p).resolve().parts for p in paths]
    depth = 1
    while True:
        labels = ["/".join(p[-depth:]) for p in parts]
        if len(set(labels)) == len(labels) or depth >= max(len(p) for p in parts):
            return labels
        depth += 1
