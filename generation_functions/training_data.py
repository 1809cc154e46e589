"""Assemble a training folder from one or more pipeline OUTPUT folders.

A run of the pipeline writes its datasets into one OUTPUT folder; a model is
usually trained on several (say the wiki, the docs and the API reference, each
run separately). This module combines folders read by output_folders and writes
one folder that axolotl can train on directly:

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
   whose question is a near-duplicate (see near_duplicates) of an earlier kept
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
4. Shuffle each file with the seed and write everything, the card last.
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
import tempfile
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from generation_functions.chat_template import render_llama3, sharegpt_to_messages
from generation_functions.datasets import (
    PLAIN_QA,
    PRETRAINING_JSONL,
    SHAREGPT_NO_RAG,
    SHAREGPT_RAG,
    atomic_text_file,
    jsonl_line,
)
from generation_functions.near_duplicates import ContainmentIndex, NearDuplicateIndex, normalise, word_set
from generation_functions.output_folders import Conversation, OutputFolder, TrainingDataError
from generation_functions.token_counting import TokenCounter

EVAL_DIR = "eval"
PROMPTS_DIR = "prompts_used"
CARD = "README.md"
MANIFEST = "manifest.json"
EVAL_QA_CHAT = "qa_chat.jsonl"

# System prompt of eval/qa_chat.jsonl when no input folder has a conversation to
# take the real one from (config.yaml's FINAL_ASSISTANT_PROMPT_NO_RAG, shortened).
FALLBACK_SYSTEM_PROMPT = "You are a helpful AI assistant who knows the Verus project well."


# ------------------------------------------------------------------ assembling


@dataclass
class AssembleOptions:
    eval_fraction: float = 0.05
    seed: int = 42
    similarity: float = 0.8
    prefer_tiktoken: bool = True


@dataclass
class _Pair:
    row: dict
    words: frozenset[str]


def _train_conversation_rows(conversations: list[Conversation], attr: str) -> list[dict]:
    return [{"conversations": getattr(c, attr)} for c in conversations if getattr(c, attr) is not None]


def _union_find(size: int):
    parent = list(range(size))

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(a: int, b: int) -> None:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)

    return find, union


def assemble(folders: Sequence[OutputFolder], options: AssembleOptions) -> dict[str, Any]:
    """Combine, deduplicate and split; returns the rows of every output file and
    the statistics for the card (nothing is written here)."""
    if not 0.0 <= options.eval_fraction < 1.0:
        raise TrainingDataError("--eval-fraction must be at least 0 and below 1")
    if not 0.0 < options.similarity <= 1.0:
        raise TrainingDataError("--similarity must be above 0 and at most 1")
    stats: dict[str, Any] = {"removed": Counter()}
    removed: Counter = stats["removed"]

    # Pretraining documents: exact duplicates (after whitespace trimming) once.
    documents, seen_docs = [], set()
    for folder in folders:
        for text in folder.documents:
            digest = hashlib.sha256(text.strip().encode("utf-8")).hexdigest()
            if digest in seen_docs:
                removed["duplicate documents"] += 1
                continue
            seen_docs.add(digest)
            documents.append(text)

    # One global word order for every index: rarest first.
    frequencies: Counter = Counter()
    pairs_in = [(_Pair({**row, "source_output": folder.label}, word_set(row["question"])))
                for folder in folders for row in folder.qa_pairs]
    for pair in pairs_in:
        frequencies.update(pair.words)
    conversations_in = [c for folder in folders for c in folder.conversations]
    conv_words = [[word_set(q) for q in (c.questions or c.human_turns())] for c in conversations_in]
    for sets in conv_words:
        for words in sets:
            frequencies.update(words)

    # Near-duplicate questions: the first of a family is kept.
    question_index = NearDuplicateIndex(options.similarity, frequencies)
    pairs: list[_Pair] = []
    for pair in pairs_in:
        if question_index.first_similar(pair.words) is not None:
            removed["near-duplicate questions"] += 1
            continue
        question_index.add(pair.words, len(pairs))
        pairs.append(pair)

    # Conversations: identical turns once; then drop a conversation whose every
    # question was already asked in an earlier kept conversation.
    asked = NearDuplicateIndex(options.similarity, frequencies)
    conversations: list[Conversation] = []
    kept_words: list[list[frozenset[str]]] = []
    seen_conv: set[str] = set()
    for conversation, sets in zip(conversations_in, conv_words):
        key = conversation.dedup_key()
        if key in seen_conv:
            removed["duplicate conversations"] += 1
            continue
        if sets and all(asked.first_similar(words) is not None for words in sets):
            removed["conversations repeating earlier questions"] += 1
            continue
        seen_conv.add(key)
        for words in sets:
            asked.add(words, len(conversations))
        conversations.append(conversation)
        kept_words.append(sets)

    # Link pairs with the conversations that ask them, then hold out whole groups.
    n_pairs, n_conv = len(pairs), len(conversations)
    find, union = _union_find(n_pairs + n_conv)
    for c_index, sets in enumerate(kept_words):
        for words in sets:
            for p_index in question_index.similar(words):
                union(n_pairs + c_index, p_index)
    groups: dict[int, list[int]] = defaultdict(list)
    for node in range(n_pairs + n_conv):
        groups[find(node)].append(node)
    group_list = [nodes for _, nodes in sorted(groups.items()) if any(n < n_pairs for n in nodes)]
    target = round(options.eval_fraction * n_pairs)
    if options.eval_fraction > 0 and n_pairs >= 2:
        target = max(target, 1)
    target = min(target, max(n_pairs - 1, 0))  # training keeps at least one pair
    rng = random.Random(options.seed)
    order = list(range(len(group_list)))
    rng.shuffle(order)
    held_nodes: set[int] = set()
    held_pair_count = 0
    sizes = [sum(1 for n in nodes if n < n_pairs) for nodes in group_list]
    skipped: list[int] = []
    for g in order:
        if held_pair_count >= target:
            break
        # A group much larger than what is still missing would overshoot: later.
        if held_pair_count + sizes[g] > max(target * 1.5, target + 1) and sizes[g] > 1:
            skipped.append(g)
            continue
        held_nodes.update(group_list[g])
        held_pair_count += sizes[g]
    for g in sorted(skipped, key=lambda g: sizes[g]):  # still short: smallest groups first
        if held_pair_count >= target or held_pair_count + sizes[g] > n_pairs - 1:
            break
        held_nodes.update(group_list[g])
        held_pair_count += sizes[g]
    eval_pairs = [pairs[i] for i in range(n_pairs) if i in held_nodes]
    train_pairs = [pairs[i] for i in range(n_pairs) if i not in held_nodes]
    eval_conversations = [conversations[i] for i in range(n_conv) if n_pairs + i in held_nodes]
    train_candidates = [(conversations[i], kept_words[i]) for i in range(n_conv) if n_pairs + i not in held_nodes]

    # Last guard: no training conversation may ask a held-out question.
    held_similar = NearDuplicateIndex(options.similarity, frequencies)
    held_contained = ContainmentIndex(options.similarity, frequencies)
    held_norm: list[str] = []
    for index, pair in enumerate(eval_pairs):
        held_similar.add(pair.words, index)
        held_contained.add(pair.words, index)
        held_norm.append(" " + normalise(pair.row["question"]) + " ")
    train_conversations: list[Conversation] = []
    for conversation, sets in train_candidates:
        if eval_pairs and _asks_held_out(conversation, sets, held_similar, held_contained, held_norm):
            removed["training conversations asking a held-out question"] += 1
            continue
        train_conversations.append(conversation)

    for rows in (documents, train_pairs, train_conversations, eval_pairs, eval_conversations):
        rng.shuffle(rows)

    prompts_seen = sum((f.no_rag_prompts for f in folders), Counter())
    # The held-out pairs become chats with the system prompt the model trains with.
    no_rag_prompt = prompts_seen.most_common(1)[0][0] if prompts_seen else FALLBACK_SYSTEM_PROMPT
    eval_chat = []
    for pair in eval_pairs:
        eval_chat.append({"conversations": [
            {"from": "system", "value": no_rag_prompt},
            {"from": "human", "value": pair.row["question"]},
            {"from": "gpt", "value": pair.row["answer"]},
        ]})

    files = {
        PRETRAINING_JSONL: [{"text": text} for text in documents],
        SHAREGPT_NO_RAG: _train_conversation_rows(train_conversations, "no_rag"),
        SHAREGPT_RAG: _train_conversation_rows(train_conversations, "rag"),
        PLAIN_QA: [p.row for p in train_pairs],
        f"{EVAL_DIR}/{PLAIN_QA}": [p.row for p in eval_pairs],
        f"{EVAL_DIR}/{EVAL_QA_CHAT}": eval_chat,
        f"{EVAL_DIR}/{SHAREGPT_NO_RAG}": _train_conversation_rows(eval_conversations, "no_rag"),
        f"{EVAL_DIR}/{SHAREGPT_RAG}": _train_conversation_rows(eval_conversations, "rag"),
    }
    stats.update(
        pairs_in=len(pairs_in),
        conversations_in=len(conversations_in),
        documents_in=sum(len(f.documents) for f in folders),
        eval_pairs=len(eval_pairs),
        eval_target=target,
        no_rag_prompt=no_rag_prompt,
    )
    return {"files": files, "stats": stats}


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


def _asks_held_out(conversation, sets, similar, contained, held_norm) -> bool:
    for words in sets:
        if similar.first_similar(words) is not None:
            return True
    for turn in conversation.human_turns():
        words = word_set(turn)
        if similar.first_similar(words) is not None:
            return True
        text = " " + normalise(turn) + " "
        for index in contained.candidates(words):
            if held_norm[index] in text:
                return True
    return False


# ------------------------------------------------------------------ writing


def _jsonl_text_for_tokens(name: str, row: dict) -> str:
    if "conversations" in row:
        return render_llama3(sharegpt_to_messages(row["conversations"]))
    if "text" in row:
        return row["text"]
    return f"{row.get('question', '')}\n{row.get('answer', '')}"


def _prepare_destination(dest: Path, sources: Sequence[Path]) -> None:
    dest = dest.resolve()
    for source in sources:
        source = source.resolve()
        if dest == source or source in dest.parents or dest in source.parents:
            raise TrainingDataError(f"--dest {dest} must be outside the input folder {source}")
    if dest.exists():
        if not dest.is_dir():
            raise TrainingDataError(f"--dest {dest} exists and is not a folder")
        if any(dest.iterdir()) and not (dest / MANIFEST).is_file():
            raise TrainingDataError(
                f"--dest {dest} is not empty and was not written by this script (no {MANIFEST}); "
                "choose another folder or empty it"
            )


def write_training_folder(
    folders: Sequence[OutputFolder],
    dest: Path,
    options: AssembleOptions,
    command: str = "",
) -> dict[str, Any]:
    """Assemble and write DEST; returns the manifest. An earlier assembly in DEST
    is replaced only once the new one is complete."""
    dest = Path(dest)
    _prepare_destination(dest, [f.path for f in folders])
    result = assemble(folders, options)
    files, stats = result["files"], result["stats"]
    counter = TokenCounter(options.prefer_tiktoken)

    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=dest.parent))
    try:
        file_stats: dict[str, dict[str, int]] = {}
        for name, rows in files.items():
            if not rows:
                continue
            tokens = 0
            with atomic_text_file(staging / name) as handle:
                for row in rows:
                    handle.write(jsonl_line(row))
                    tokens += counter.count(_jsonl_text_for_tokens(name, row))
            file_stats[name] = {"rows": len(rows), "tokens": tokens}
        prompt_files = _write_prompts(staging, folders)
        manifest = _manifest(folders, options, stats, file_stats, prompt_files, counter, command)
        with atomic_text_file(staging / MANIFEST) as handle:
            handle.write(json.dumps(manifest, ensure_ascii=False, indent=2) + "\n")
        with atomic_text_file(staging / CARD) as handle:
            handle.write(dataset_card(manifest))
        if dest.exists():
            backup = dest.with_name(f".{dest.name}-old-{staging.name[-8:]}")
            dest.rename(backup)
            staging.rename(dest)
            shutil.rmtree(backup, ignore_errors=True)
        else:
            staging.rename(dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest


def _write_prompts(staging: Path, folders: Sequence[OutputFolder]) -> list[dict[str, Any]]:
    written: dict[str, dict[str, Any]] = {}
    for folder in folders:
        for use in folder.prompts:
            name = f"{use.step}-{use.digest}.txt"
            entry = written.get(name)
            if entry is None:
                with atomic_text_file(staging / PROMPTS_DIR / name) as handle:
                    handle.write(use.text)
                entry = written[name] = {"step": use.step, "file": f"{PROMPTS_DIR}/{name}", "sha256_12": use.digest,
                                         "folders": [], "calls_read": 0, "calls_total": 0, "chars": len(use.text),
                                         "first_line": _first_line(use.text)}
            entry["folders"].append(folder.label)
            entry["calls_read"] += use.calls_read
            entry["calls_total"] += use.calls_total
    system: dict[str, Counter] = {"no_rag": Counter(), "rag": Counter()}
    for folder in folders:
        system["no_rag"].update(folder.no_rag_prompts)
        system["rag"].update(folder.rag_templates)
    for kind, counts in system.items():
        for index, (text, count) in enumerate(counts.most_common()):
            digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]
            name = f"final_system_prompt_{kind}-{digest}.txt"
            with atomic_text_file(staging / PROMPTS_DIR / name) as handle:
                handle.write(text)
            written[name] = {"step": f"final system prompt ({'RAG, {data} = chunk' if kind == 'rag' else 'no RAG'})",
                             "file": f"{PROMPTS_DIR}/{name}", "sha256_12": digest, "conversations": count,
                             "chars": len(text), "first_line": _first_line(text)}
    return list(written.values())


def _manifest(folders, options, stats, file_stats, prompt_files, counter, command) -> dict[str, Any]:
    sources = []
    for folder in folders:
        documents = Counter(str(row.get("source_filename", "")) for row in folder.qa_pairs)
        funnel = (folder.run_report or {}).get("funnel")
        sources.append({
            "label": folder.label,
            "path": str(folder.path.resolve()),
            "rows_read": folder.rows_read,
            "malformed_rows_skipped": dict(folder.malformed),
            "conversation_files_aligned": folder.aligned,
            "documents": len(folder.documents),
            "source_files_with_pairs": sorted(documents),
            "run_funnel": funnel,
        })
    return {
        "command": command,
        "options": {"eval_fraction": options.eval_fraction, "seed": options.seed, "similarity": options.similarity},
        "token_count_method": counter.method,
        "files": file_stats,
        "totals": {
            "documents_in": stats["documents_in"],
            "pairs_in": stats["pairs_in"],
            "conversations_in": stats["conversations_in"],
            "eval_pairs": stats["eval_pairs"],
            "eval_target": stats["eval_target"],
        },
        "removed": dict(stats["removed"]),
        "sources": sources,
        "prompts": prompt_files,
    }


def _fmt(number: int) -> str:
    return f"{number:,}"


def dataset_card(manifest: dict[str, Any]) -> str:
    files = manifest["files"]
    opts = manifest["options"]
    totals = manifest["totals"]
    lines = [
        "# Verus training data",
        "",
        "Assembled by `assemble_training_data.py` from "
        f"{len(manifest['sources'])} Verustoolkit output folder(s). Train on it with the axolotl "
        "configuration in `_model_training_configs_and_data/`.",
        "",
    ]
    if manifest.get("command"):
        lines += ["```", manifest["command"], "```", ""]
    lines += [
        "## Files",
        "",
        "| file | rows | tokens | what it is |",
        "|---|---:|---:|---|",
    ]
    described = {
        PRETRAINING_JSONL: "source documents, one per row (`completion` data)",
        SHAREGPT_NO_RAG: "conversations, plain system prompt (`chat_template` data)",
        SHAREGPT_RAG: "the same conversations, system prompt + source chunk",
        PLAIN_QA: "the question/answer pairs (not in the axolotl config; for your own use)",
        f"{EVAL_DIR}/{PLAIN_QA}": "held-out pairs",
        f"{EVAL_DIR}/{EVAL_QA_CHAT}": "held-out pairs as one-exchange conversations (axolotl `test_datasets`)",
        f"{EVAL_DIR}/{SHAREGPT_NO_RAG}": "held-out conversations, plain system prompt",
        f"{EVAL_DIR}/{SHAREGPT_RAG}": "held-out conversations with source chunk",
    }
    for name, what in described.items():
        entry = files.get(name)
        if entry:
            lines.append(f"| `{name}` | {_fmt(entry['rows'])} | {_fmt(entry['tokens'])} | {what} |")
        else:
            lines.append(f"| `{name}` | 0 | 0 | {what} (empty, not written) |")
    train_tokens = sum(files.get(n, {}).get("tokens", 0) for n in (PRETRAINING_JSONL, SHAREGPT_NO_RAG, SHAREGPT_RAG))
    lines += [
        "",
        f"Tokens: {manifest['token_count_method']}. Conversations are counted as rendered through the "
        "Llama 3 chat template (special tokens included). The three files the axolotl config trains on hold "
        f"about {_fmt(train_tokens)} tokens per epoch before packing.",
        "",
        "## How it was made",
        "",
        f"- Read {_fmt(totals['documents_in'])} documents, {_fmt(totals['pairs_in'])} question/answer pairs "
        f"and {_fmt(totals['conversations_in'])} conversations.",
        f"- Questions were compared after lowercasing, dropping punctuation and collapsing whitespace; "
        f"two questions whose word sets have Jaccard similarity of at least {opts['similarity']} count as "
        "near-duplicates and only the first is kept.",
    ]
    for reason, count in sorted(manifest["removed"].items()):
        lines.append(f"- Removed {_fmt(count)} {reason}.")
    lines += [
        f"- Held out {_fmt(totals['eval_pairs'])} pairs (target {opts['eval_fraction']:.0%} = "
        f"{_fmt(totals['eval_target'])}) together with every conversation built from them; no training "
        "conversation asks a held-out question (near-duplicate or literal). The source documents stay in "
        "`pretraining.jsonl`, so the evaluation measures whether the model learned the facts, not the wording.",
        f"- Every file was shuffled with seed {opts['seed']}; the same inputs and options give the same folder.",
        "",
        "## Sources",
        "",
        "| output folder | documents | pairs read | conversations read | run funnel (chunks → pairs → passed → conversations) |",
        "|---|---:|---:|---:|---|",
    ]
    for source in manifest["sources"]:
        rows = source["rows_read"]
        funnel = source.get("run_funnel") or {}
        shown = " → ".join(str(funnel.get(k, "?")) for k in ("chunks", "pairs_generated", "passed_checks", "conversations")) \
            if funnel else "no run_report.json"
        lines.append(
            f"| `{source['path']}` | {_fmt(source['documents'])} | {_fmt(rows.get(PLAIN_QA, 0))} | "
            f"{_fmt(rows.get(SHAREGPT_NO_RAG, 0))} | {shown} |"
        )
    for source in manifest["sources"]:
        names = source["source_files_with_pairs"]
        if names:
            listed = ", ".join(f"`{n}`" for n in names[:25])
            more = f" and {len(names) - 25} more (see manifest.json)" if len(names) > 25 else ""
            lines.append(f"\nDocuments with pairs in `{source['label']}`: {listed}{more}.")
        if source["malformed_rows_skipped"]:
            skipped = ", ".join(f"{k}: {v}" for k, v in source["malformed_rows_skipped"].items())
            lines.append(f"\nMalformed rows skipped in `{source['label']}`: {skipped}.")
    lines += [
        "",
        "## Prompts used",
        "",
        "Recovered from each run: the final system prompts from the conversation files, and each generation "
        "step's prompt template as the run stored it (`calls/<step>/templates/`), placeholders unfilled. "
        "Full texts are in `prompts_used/`.",
        "",
        "| step | file | used by | first line |",
        "|---|---|---|---|",
    ]
    for entry in manifest["prompts"]:
        first = entry.get("first_line", "").replace("|", "\\|")
        used = ", ".join(entry.get("folders", [])) or f"{_fmt(entry.get('conversations', 0))} conversations"
        if "calls_total" in entry:
            used += f" ({_fmt(entry['calls_total'])} calls)"
        lines.append(f"| {entry['step']} | `{entry['file']}` | {used} | {first} |")
    if not manifest["prompts"]:
        lines.append("| (none found: the folders hold no calls/ records or conversations) | | | |")
    lines.append("")
    return "\n".join(lines)


def _first_line(text: str) -> str:
    """The first line of a prompt that is not a role marker, shortened."""
    for line in text.splitlines():
        line = line.strip()
        if line and not (line.startswith("[") and line.endswith("]")):
            return line if len(line) <= 100 else line[:97] + "..."
    return ""
