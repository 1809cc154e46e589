"""What the smoke run checks before and after axolotl runs.

Before: every dataset file the config names is there, not empty, and every row
is one the config can train on: a JSON object with the configured field, and
for chat data, turns whose roles the config maps, in an order the templates
accept (an optional system turn, then user and assistant alternating, ending
with the assistant), rendered through each chat template it will meet. Each
problem names its file and line, so a row is found before a GPU is paid for.

After: the losses and token counts axolotl recorded (trainer_state.json).

Pure: no axolotl, no torch. The templates to render with are passed in.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Iterator, Optional, Sequence

Renderer = tuple[str, Callable[[list[dict[str, str]]], Any]]  # (name, render(messages) -> text; raises to reject)

# Shown per run; the rest are counted.
MAX_PROBLEMS_SHOWN = 12


@dataclass
class DatasetFile:
    """One dataset entry of the config and what its file holds."""

    section: str  # "datasets" or "test_datasets"
    index: int
    entry: dict[str, Any]
    path: Path
    rows: int = 0

    @property
    def name(self) -> str:
        return self.entry["path"]

    @property
    def label(self) -> str:
        return f"{self.section}[{self.index}]"


@dataclass
class DataCheck:
    files: list[DatasetFile] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)

    @property
    def rows_checked(self) -> int:
        return sum(f.rows for f in self.files)


def relative_data_path(config_path: str, data_folder: str) -> PurePosixPath:
    """A dataset path of the config, relative to the data folder it names first."""
    path = PurePosixPath(config_path)
    if not path.parts or path.parts[0] != data_folder:
        raise ValueError(f"dataset path {config_path!r} does not start with {data_folder}/")
    return path.relative_to(data_folder)


def _json_lines(path: Path) -> Iterator[tuple[int, str]]:
    with path.open(encoding="utf-8", errors="replace") as handle:
        for number, line in enumerate(handle, 1):
            if line.strip():
                yield number, line


def role_order_problem(roles: Sequence[str]) -> Optional[str]:
    """None when the roles are an optional system turn, then user and assistant
    alternating from the user, ending with the assistant; else what is wrong."""
    turns = list(roles)
    start = 1 if turns and turns[0] == "system" else 0
    if len(turns) - start < 2:
        return "no user/assistant exchange"
    for offset, role in enumerate(turns[start:]):
        expected = "user" if offset % 2 == 0 else "assistant"
        if role != expected:
            return f"turn {start + offset} is {role!r} where {expected!r} must come (roles must alternate)"
    if turns[-1] != "assistant":
        return "the last turn is not the assistant's, so there is nothing to train on"
    return None


def _chat_messages(row: Any, entry: dict[str, Any]) -> tuple[Optional[list[dict[str, str]]], Optional[str]]:
    """The row's turns as {"role","content"} messages by the config's mappings, or what is wrong."""
    field_name = entry.get("field_messages", "messages")
    turns = row.get(field_name) if isinstance(row, dict) else None
    if not isinstance(turns, list) or not turns:
        return None, f"no list of turns under {field_name!r}"
    mapping = entry.get("message_property_mappings") or {"role": "role", "content": "content"}
    role_of = {source: role for role, sources in (entry.get("roles") or {}).items() for source in sources}
    messages = []
    for index, turn in enumerate(turns):
        if not isinstance(turn, dict):
            return None, f"turn {index} is not an object"
        source_role, content = turn.get(mapping["role"]), turn.get(mapping["content"])
        role = role_of.get(source_role, source_role if not role_of else None)
        if role is None:
            return None, f"turn {index} has role {source_role!r}, which the config's roles do not map"
        if not isinstance(content, str) or not content.strip():
            return None, f"turn {index} ({source_role}) has no text"
        messages.append({"role": role, "content": content})
    return messages, None


def _row_problem(row: Any, entry: dict[str, Any], renderers: Sequence[Renderer]) -> Optional[str]:
    kind = entry.get("type")
    if kind == "completion":
        name = entry.get("field", "text")
        text = row.get(name) if isinstance(row, dict) else None
        return None if isinstance(text, str) and text.strip() else f"no text under {name!r}"
    if kind != "chat_template":
        return None  # a type this check does not know: axolotl judges it
    messages, problem = _chat_messages(row, entry)
    if problem:
        return problem
    problem = role_order_problem([m["role"] for m in messages])
    if problem:
        return problem
    for name, render in renderers:
        try:
            render(messages)
        except Exception as exc:  # a template's raise_exception, or any jinja error
            return f"the {name} rejects it: {exc}"
    return None


def check_dataset_files(folder: Path, config: dict[str, Any], data_folder: str,
                        renderers: Sequence[Renderer] = ()) -> DataCheck:
    """Check every dataset file `config` names, read from `folder` (the data folder)."""
    result = DataCheck()
    for section in ("datasets", "test_datasets"):
        for index, entry in enumerate(config.get(section) or []):
            dataset = DatasetFile(section, index, entry, Path(folder) / relative_data_path(entry["path"], data_folder))
            result.files.append(dataset)
            result.problems += _file_problems(dataset, renderers)
    return result


def _file_problems(dataset: DatasetFile, renderers: Sequence[Renderer]) -> list[str]:
    use = "trains" if dataset.section == "datasets" else "evaluates"
    if not dataset.path.is_file():
        return [f"{dataset.path}: missing; the config {use} on it ({dataset.label}: {dataset.name}). "
                "assemble_training_data.py writes no file for a dataset that came out empty: check that the "
                "runs it was given produced pairs and conversations (their run_report.json)"]
    problems = []
    for number, line in _json_lines(dataset.path):
        dataset.rows += 1
        try:
            row = json.loads(line)
        except ValueError as exc:
            problems.append(f"{dataset.path}:{number}: not a JSON line ({exc})")
            continue
        problem = _row_problem(row, dataset.entry, renderers)
        if problem:
            problems.append(f"{dataset.path}:{number}: {problem}")
    if dataset.rows == 0:
        problems.append(f"{dataset.path}: empty; the config {use} on it ({dataset.label})")
    return problems


def write_sample(check: DataCheck, dest: Path, data_folder: str, train_rows: int, eval_rows: int) -> dict[str, int]:
    """The first rows of every checked file, written under dest with the same
    relative paths (the assembler shuffles, so the first rows are a random draw).
    Returns the rows written per config path."""
    written: dict[str, int] = {}
    for dataset in check.files:
        limit = train_rows if dataset.section == "datasets" else eval_rows
        target = Path(dest) / relative_data_path(dataset.name, data_folder)
        target.parent.mkdir(parents=True, exist_ok=True)
        count = 0
        with target.open("w", encoding="utf-8") as out:
            for _, line in _json_lines(dataset.path):
                if count >= limit:
                    break
                out.write(line if line.endswith("\n") else line + "\n")
                count += 1
        written[dataset.name] = count
    return written


@dataclass
class RunSummary:
    train_losses: list[tuple[int, float]]
    eval_losses: list[tuple[int, float]]
    tokens_total: Optional[int]
    tokens_trained: Optional[int]

    @property
    def eval_before(self) -> Optional[float]:
        return self.eval_losses[0][1] if self.eval_losses and self.eval_losses[0][0] == 0 else None

    @property
    def eval_after(self) -> Optional[float]:
        return self.eval_losses[-1][1] if self.eval_losses and self.eval_losses[-1][0] > 0 else None

    def problems(self) -> list[str]:
        """Why this run does not count as a pass (empty when it does)."""
        found = []
        if not self.train_losses:
            found.append("no training loss was logged")
        bad = [f"step {step}: {loss}" for step, loss in self.train_losses if not math.isfinite(loss)]
        bad += [f"eval at step {step}: {loss}" for step, loss in self.eval_losses if not math.isfinite(loss)]
        if bad:
            found.append("losses that are not finite: " + ", ".join(bad))
        return found


def summarise_trainer_state(state: dict[str, Any]) -> RunSummary:
    """The losses per step and the token counts from a checkpoint's trainer_state.json."""
    train, evals, total, trained = [], [], None, None
    for record in state.get("log_history", []):
        step = int(record.get("step", 0))
        if "loss" in record:
            train.append((step, float(record["loss"])))
        if "eval_loss" in record:
            evals.append((step, float(record["eval_loss"])))
        if "tokens/total" in record:  # axolotl counts these cumulatively
            total, trained = int(record["tokens/total"]), int(record.get("tokens/trainable", 0))
    return RunSummary(train, evals, total, trained)


_DROPPED = re.compile(r"Dropped (\d+) (?:long )?sequences")


def dropped_rows(log_text: str) -> int:
    """Rows axolotl dropped as too long (or empty), summed over its log lines."""
    return sum(int(count) for count in _DROPPED.findall(log_text))
