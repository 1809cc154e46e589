"""Write an assembled training folder: the datasets, prompts_used/, manifest.json
and the dataset card, into a staging folder that replaces DEST only once it is
complete (an interrupted run leaves DEST as it was)."""

from __future__ import annotations

import hashlib
import json
import shutil
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

from dataset_assembly.assembly import AssembleOptions, assemble
from dataset_assembly.card import dataset_card
from dataset_assembly.chat_template import render_llama3, sharegpt_to_messages
from dataset_assembly.layout import CARD, MANIFEST, PROMPTS_DIR
from dataset_assembly.output_folders import OutputFolder, TrainingDataError
from dataset_assembly.token_counting import TokenCounter
from generation_functions.datasets import atomic_text_file, jsonl_line


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
    counter = TokenCounter(options.prefer_tiktoken, tokenizer=options.tokenizer)
    result = assemble(folders, options)
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}-", dir=dest.parent))
    try:
        file_stats = _write_datasets(staging, result["files"], counter)
        prompt_files = _write_prompts(staging, folders)
        manifest = _manifest(folders, options, result["stats"], file_stats, prompt_files, counter, command)
        with atomic_text_file(staging / MANIFEST) as handle:
            handle.write(json.dumps(manifest, ensure_ascii=False, indent=2) + "\n")
        with atomic_text_file(staging / CARD) as handle:
            handle.write(dataset_card(manifest))
        _replace_destination(staging, dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest


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


def _replace_destination(staging: Path, dest: Path) -> None:
    if dest.exists():
        backup = dest.with_name(f".{dest.name}-old-{staging.name[-8:]}")
        dest.rename(backup)
        staging.rename(dest)
        shutil.rmtree(backup, ignore_errors=True)
    else:
        staging.rename(dest)


def text_for_tokens(row: dict) -> str:
    """What a row costs in tokens: a conversation as the Llama 3 template renders
    it (special tokens included), a document's text, or a pair's two texts."""
    if "conversations" in row:
        return render_llama3(sharegpt_to_messages(row["conversations"]))
    if "text" in row:
        return row["text"]
    return f"{row.get('question', '')}\n{row.get('answer', '')}"


def _write_datasets(staging: Path, files: dict[str, list[dict]], counter: TokenCounter) -> dict[str, dict[str, int]]:
    """Each non-empty file as JSON lines; returns its rows and tokens."""
    file_stats: dict[str, dict[str, int]] = {}
    for name, rows in files.items():
        if not rows:
            continue
        tokens = 0
        with atomic_text_file(staging / name) as handle:
            for row in rows:
                handle.write(jsonl_line(row))
                tokens += counter.count(text_for_tokens(row))
        file_stats[name] = {"rows": len(rows), "tokens": tokens}
    return file_stats


def _write_prompts(staging: Path, folders: Sequence[OutputFolder]) -> list[dict[str, Any]]:
    """prompts_used/: every generation prompt once, then the final system prompts."""
    written = _write_step_prompts(staging, folders)
    written.update(_write_system_prompts(staging, folders))
    return list(written.values())


def _write_step_prompts(staging: Path, folders: Sequence[OutputFolder]) -> dict[str, dict[str, Any]]:
    written: dict[str, dict[str, Any]] = {}
    for folder in folders:
        for use in folder.prompts:
            name = f"{use.step}-{use.digest}.txt"
            entry = written.get(name)
            if entry is None:
                with atomic_text_file(staging / PROMPTS_DIR / name) as handle:
                    handle.write(use.text)
                entry = written[name] = {"step": use.step, "file": f"{PROMPTS_DIR}/{name}", "sha256_12": use.digest,
                                         "folders": [], "calls": 0, "chars": len(use.text),
                                         "first_line": _first_line(use.text)}
            entry["folders"].append(folder.label)
            entry["calls"] += use.calls
    return written


def _write_system_prompts(staging: Path, folders: Sequence[OutputFolder]) -> dict[str, dict[str, Any]]:
    written: dict[str, dict[str, Any]] = {}
    system: dict[str, Counter] = {"no_rag": Counter(), "rag": Counter()}
    for folder in folders:
        system["no_rag"].update(folder.no_rag_prompts)
        system["rag"].update(folder.rag_templates)
    for kind, counts in system.items():
        for text, count in counts.most_common():
            digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]
            name = f"final_system_prompt_{kind}-{digest}.txt"
            with atomic_text_file(staging / PROMPTS_DIR / name) as handle:
                handle.write(text)
            written[name] = {"step": f"final system prompt ({'RAG, {data} = chunk' if kind == 'rag' else 'no RAG'})",
                             "file": f"{PROMPTS_DIR}/{name}", "sha256_12": digest, "conversations": count,
                             "chars": len(text), "first_line": _first_line(text)}
    return written


def _first_line(text: str) -> str:
    """The first line of a prompt that is not a role marker, shortened."""
    for line in text.splitlines():
        line = line.strip()
        if line and not (line.startswith("[") and line.endswith("]")):
            return line if len(line) <= 100 else line[:97] + "..."
    return ""


def _source_entry(folder: OutputFolder) -> dict[str, Any]:
    documents = Counter(str(row.get("source_filename", "")) for row in folder.qa_pairs)
    return {
        "label": folder.label,
        "path": str(folder.path.resolve()),
        "rows_read": folder.rows_read,
        "malformed_rows_skipped": dict(folder.malformed),
        "conversation_files_aligned": folder.aligned,
        "documents": len(folder.documents),
        "source_files_with_pairs": sorted(documents),
        "run_funnel": (folder.run_report or {}).get("funnel"),
    }


def _manifest(folders, options, stats, file_stats, prompt_files, counter, command) -> dict[str, Any]:
    return {
        "command": command,
        "options": {"eval_fraction": options.eval_fraction, "seed": options.seed, "similarity": options.similarity},
        "token_count_method": counter.method,
        "token_count_kind": counter.kind,
        "files": file_stats,
        "totals": {
            "documents_in": stats["documents_in"],
            "pairs_in": stats["pairs_in"],
            "conversations_in": stats["conversations_in"],
            "eval_pairs": stats["eval_pairs"],
            "eval_target": stats["eval_target"],
        },
        "removed": dict(stats["removed"]),
        "sources": [_source_entry(folder) for folder in folders],
        "prompts": prompt_files,
    }
