"""What evaluate.py writes: eval_report.json for programs, eval_report.md for people, and
eval_answers.jsonl with every answer and verdict."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any, Sequence

from evaluation.stats import group, paired_difference, summarise
from generation_functions.datasets import jsonl_line
from generation_functions.store import atomic_text_file, atomic_write_json

REPORT_JSON = "eval_report.json"
REPORT_MARKDOWN = "eval_report.md"
ANSWERS = "eval_answers.jsonl"


def build_report(rows: list[dict], candidates: Sequence[str], conditions: Sequence[str], meta: dict) -> dict[str, Any]:
    by_model = group(rows, "candidate", "condition")
    results = {
        f"{name}/{condition}": summarise(by_model[(name, condition)])
        for name in candidates
        for condition in conditions
        if by_model.get((name, condition))
    }
    by_source = {
        f"{name}/{condition}/{source or '(unknown)'}": summarise(source_rows)
        for (name, condition, source), source_rows in sorted(group(rows, "candidate", "condition", "source").items())
    }
    comparisons = {
        f"{second} vs {first}/{condition}": paired_difference(by_model.get((first, condition), []), by_model.get((second, condition), []))
        for first, second in itertools.combinations(candidates, 2)
        for condition in conditions
    }
    return {**meta, "results": results, "by_source": by_source, "comparisons": comparisons}


def write_outputs(output_dir: Path, rows: list[dict], report: dict) -> None:
    output_dir.mkdir(parents=True, exist_ok=True)
    with atomic_text_file(output_dir / ANSWERS) as handle:
        for row in rows:
            handle.write(jsonl_line(row))
    atomic_write_json(output_dir / REPORT_JSON, report, durable=True)
    with atomic_text_file(output_dir / REPORT_MARKDOWN) as handle:
        handle.write(markdown(report))


def _percent(value: float) -> str:
    return f"{100 * value:.1f}%"


def markdown(report: dict) -> str:
    lines = [
        "# What the models know",
        "",
        f"Evaluation set: `{report['eval_set']}` ({report['questions']} questions). Judge: `{report['judge']}`, "
        f"{report['votes']} vote(s) per answer. Accuracy is correct / judged, with its 95 % interval; "
        "the score counts a partly correct answer as half.",
        "",
        "| model | condition | accuracy | 95 % interval | score | correct | partly | wrong | declined | unjudged |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for key, s in report["results"].items():
        model, condition = key.split("/", 1)
        low, high = s["accuracy_95"]
        lines.append(
            f"| {model} | {condition} | {_percent(s['accuracy'])} | {_percent(low)}-{_percent(high)} | {s['score']:.2f} | "
            f"{s['correct']} | {s['partly correct']} | {s['wrong']} | {s['declined']} | {s['unjudged']} |"
        )
    compared = {k: v for k, v in report["comparisons"].items() if v.get("questions")}
    if compared:
        lines += ["", "## Differences", "", "| comparison | questions | score difference | 95 % interval | more than noise? |", "|---|---|---|---|---|"]
        for key, c in compared.items():
            low, high = c["difference_95"]
            lines.append(f"| {key} | {c['questions']} | {c['difference']:+.3f} | {low:+.3f} to {high:+.3f} | {'yes' if c['more_than_noise'] else 'no'} |")
    lines += ["", "## By source file", "", "| model / condition / source | questions | accuracy | declined | wrong |", "|---|---|---|---|---|"]
    for key, s in report["by_source"].items():
        lines.append(f"| {key} | {s['questions']} | {_percent(s['accuracy'])} | {s['declined']} | {s['wrong']} |")
    return "\n".join(lines) + "\n"
