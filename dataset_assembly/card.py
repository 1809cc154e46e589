"""The dataset card (README.md of a training folder), written from the manifest
alone so that the card and manifest.json can never disagree."""

from __future__ import annotations

from typing import Any

from dataset_assembly.layout import FILE_DESCRIPTIONS, TRAINED_FILES
from generation_functions.datasets import PLAIN_QA, SHAREGPT_NO_RAG

# How many source file names the card lists per folder (manifest.json has all).
LISTED_SOURCE_FILES = 25


def dataset_card(manifest: dict[str, Any]) -> str:
    lines = (
        _title(manifest)
        + _files_section(manifest)
        + _method_section(manifest)
        + _sources_section(manifest)
        + _prompts_section(manifest)
    )
    lines.append("")
    return "\n".join(lines)


def _fmt(number: int) -> str:
    return f"{number:,}"


def _title(manifest: dict[str, Any]) -> list[str]:
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
    return lines


def _files_section(manifest: dict[str, Any]) -> list[str]:
    files = manifest["files"]
    lines = ["## Files", "", "| file | rows | tokens | what it is |", "|---|---:|---:|---|"]
    for name, what in FILE_DESCRIPTIONS.items():
        entry = files.get(name)
        if entry:
            lines.append(f"| `{name}` | {_fmt(entry['rows'])} | {_fmt(entry['tokens'])} | {what} |")
        else:
            lines.append(f"| `{name}` | 0 | 0 | {what} (empty, not written) |")
    train_tokens = sum(files.get(n, {}).get("tokens", 0) for n in TRAINED_FILES)
    lines += [
        "",
        f"Tokens: {manifest['token_count_method']}. Conversations are counted as rendered through the "
        "Llama 3 chat template (special tokens included). The three files the axolotl config trains on hold "
        f"about {_fmt(train_tokens)} tokens per epoch before packing.",
        "",
    ]
    return lines


def _method_section(manifest: dict[str, Any]) -> list[str]:
    opts, totals = manifest["options"], manifest["totals"]
    lines = [
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
    ]
    return lines


def _funnel_text(source: dict[str, Any]) -> str:
    funnel = source.get("run_funnel") or {}
    if not funnel:
        return "no run_report.json"
    return " → ".join(str(funnel.get(k, "?")) for k in ("chunks", "pairs_generated", "passed_checks", "conversations"))


def _sources_section(manifest: dict[str, Any]) -> list[str]:
    lines = [
        "## Sources",
        "",
        "| output folder | documents | pairs read | conversations read | run funnel (chunks → pairs → passed → conversations) |",
        "|---|---:|---:|---:|---|",
    ]
    for source in manifest["sources"]:
        rows = source["rows_read"]
        lines.append(
            f"| `{source['path']}` | {_fmt(source['documents'])} | {_fmt(rows.get(PLAIN_QA, 0))} | "
            f"{_fmt(rows.get(SHAREGPT_NO_RAG, 0))} | {_funnel_text(source)} |"
        )
    for source in manifest["sources"]:
        lines += _source_notes(source)
    return lines


def _source_notes(source: dict[str, Any]) -> list[str]:
    notes = []
    names = source["source_files_with_pairs"]
    if names:
        listed = ", ".join(f"`{n}`" for n in names[:LISTED_SOURCE_FILES])
        extra = len(names) - LISTED_SOURCE_FILES
        more = f" and {extra} more (see manifest.json)" if extra > 0 else ""
        notes.append(f"\nDocuments with pairs in `{source['label']}`: {listed}{more}.")
    if source["malformed_rows_skipped"]:
        skipped = ", ".join(f"{k}: {v}" for k, v in source["malformed_rows_skipped"].items())
        notes.append(f"\nMalformed rows skipped in `{source['label']}`: {skipped}.")
    return notes


def _prompts_section(manifest: dict[str, Any]) -> list[str]:
    lines = [
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
        if "calls" in entry:
            used += f" ({_fmt(entry['calls'])} calls)"
        lines.append(f"| {entry['step']} | `{entry['file']}` | {used} | {first} |")
    if not manifest["prompts"]:
        lines.append("| (none found: the folders hold no calls/ records or conversations) | | | |")
    return lines
