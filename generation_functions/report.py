"""Counts of what each stage kept and tossed, per stage and per source file.

The report is written to OUTPUT/run_report.json and summarised for a person at
the end of a run. Reasons are short categories ("voted irrelevant", "tie") so
that they can be counted; the full reason and raw model output of every tossed
pair are kept in the per-chunk result files.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any, Optional

from generation_functions.format_health import FormatHealth, describe_format_problem, failing_steps
from generation_functions.quality import quality_lines
from generation_functions.steps import STEPS

# Funnel stages, in order: the chunks read, then every step of the table.
STAGES = ("chunks", *(step.key for step in STEPS))


@dataclass
class StageCounts:
    kept: int = 0
    tossed: Counter = field(default_factory=Counter)
    extra: Counter = field(default_factory=Counter)

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"kept": self.kept, "tossed": sum(self.tossed.values())}
        if self.tossed:
            data["tossed_reasons"] = dict(sorted(self.tossed.items()))
        data.update(sorted(self.extra.items()))
        return data


# The note a stage gets for each pair it passed on without asking (SKIP.ANSWER_CHECK, SKIP.CONTEXT_REPAIR).
SKIPPED = "passed on unasked (SKIP)"


class RunReport:
    def __init__(self, format_health: Optional[FormatHealth] = None) -> None:
        # How well each step's outputs kept to the format: the report's `format`, by step.
        self.format_health = format_health
        self.stages: dict[str, StageCounts] = {stage: StageCounts() for stage in STAGES}
        self.by_source: dict[str, dict[str, StageCounts]] = defaultdict(lambda: {s: StageCounts() for s in STAGES})
        self.skipped_files: list[dict[str, str]] = []
        self.documents = 0
        self.duplicate_chunks = 0

    def keep(self, stage: str, source: str, count: int = 1) -> None:
        self.stages[stage].kept += count
        self.by_source[source][stage].kept += count

    def toss(self, stage: str, source: str, reason: str) -> None:
        self.stages[stage].tossed[reason] += 1
        self.by_source[source][stage].tossed[reason] += 1

    def note(self, stage: str, what: str, count: int = 1) -> None:
        self.stages[stage].extra[what] += count

    def funnel(self) -> dict[str, int]:
        return {
            "chunks": self.stages["chunks"].kept,
            "chunks_after_filter": self.stages["chunks"].kept - sum(self.stages["chunk_filter"].tossed.values()),
            "pairs_generated": self.stages["question_generation"].kept,
            "passed_checks": self.stages["answer_check"].kept,
            "after_repair": self.stages["context_repair"].kept,
            "conversations": self.stages["conversation"].kept,
        }

    def as_dict(self) -> dict[str, Any]:
        data = {
            "funnel": self.funnel(),
            "documents": self.documents,
            "skipped_files": self.skipped_files,
            "duplicate_chunks_skipped": self.duplicate_chunks,
            "stages": {name: counts.as_dict() for name, counts in self.stages.items()},
            "by_source": {
                source: {name: counts.as_dict() for name, counts in stages.items()}
                for source, stages in sorted(self.by_source.items())
            },
        }
        if self.format_health is not None:
            data["format"] = self.format_health.as_dict()
        return data


def pair_funnel(report: dict[str, Any]) -> list[tuple[str, int]]:
    """What became of the pairs, step by step (a skipped question check is left out).
    The one wording of the funnel: the summary below and the WebUI's chart both use it."""
    funnel, stages = report["funnel"], report.get("stages", {})
    question_check = stages.get("question_check", {})
    answer_check = stages.get("answer_check", {})
    checked_questions = question_check.get("kept", 0) + question_check.get("tossed", 0)
    checked_answers = answer_check.get("kept", 0) + answer_check.get("tossed", 0)
    rows = [("pairs generated", funnel["pairs_generated"])]
    if checked_questions or not checked_answers:
        rows.append(("passed question check", question_check.get("kept", 0)))
    rows.append((_label("passed answer check", answer_check), funnel["passed_checks"]))
    rows.append((_label("kept after repair", stages.get("context_repair", {})), funnel["after_repair"]))
    return rows


def _label(label: str, stage: dict[str, Any]) -> str:
    """A row of a stage that SKIP turned off says so: its pairs were passed on, not checked."""
    return f"{label} (skipped)" if stage.get(SKIPPED) else label


def chunk_funnel(report: dict[str, Any]) -> list[tuple[str, int]]:
    """Chunks, those the chunk filter let through, and the conversations written from them (one per chunk at most)."""
    funnel = report["funnel"]
    return [
        ("chunks", funnel["chunks"]),
        ("after the chunk filter", funnel.get("chunks_after_filter", funnel["chunks"])),
        ("conversations", funnel["conversations"]),
    ]


def _arrows(rows: list[tuple[str, int]]) -> str:
    return "  ->  ".join(f"{label}: {count}" for label, count in rows)


def format_lines(report: dict[str, Any]) -> list[str]:
    """The summary's lines on steps whose outputs mostly did not keep to the format (none when all did)."""
    return [f"  OUTPUT FORMAT: {describe_format_problem(figures)}" for figures in failing_steps(report)]


def summary_text(report: dict[str, Any]) -> str:
    """A few lines a person can read at the end of a run."""
    lines = [
        "Run summary",
        f"  documents read: {report['documents']}  (skipped: {len(report['skipped_files'])}; "
        f"duplicate chunks skipped: {report.get('duplicate_chunks_skipped', 0)})",
        f"  {_arrows(chunk_funnel(report))}",
        f"  {_arrows(pair_funnel(report))}",
    ]
    for name, stage in report["stages"].items():
        reasons = stage.get("tossed_reasons")
        if reasons:
            shown = ", ".join(f"{reason}: {count}" for reason, count in reasons.items())
            lines.append(f"  {name} tossed {stage['tossed']} ({shown})")
    lines += format_lines(report)
    requests = report.get("requests", {})
    if requests:
        lines.append(
            f"  requests: {requests.get('made', 0)} made, {requests.get('reused', 0)} reused from earlier runs, "
            f"{requests.get('retries', 0)} retried; tokens: {requests.get('prompt_tokens', 0)} prompt + "
            f"{requests.get('completion_tokens', 0)} completion"
        )
        if requests.get("made"):
            lines.append(
                f"  requests in flight: {requests.get('mean_in_flight', 0):.1f} on average, "
                f"{requests.get('peak_in_flight', 0)} at most, of CONCURRENCY_LIMIT {requests.get('concurrency_limit', '?')}"
            )
        lowest = requests.get("lowest_in_flight_allowed")
        if lowest is not None and lowest < requests.get("concurrency_limit", lowest):
            lines.append(
                f"  the server was overloaded (timeouts, 429 or 503): requests in flight were lowered to {lowest} "
                "at the worst; a lower CONCURRENCY_LIMIT or a longer REQUEST_TIMEOUT avoids the retries"
            )
    lines += quality_lines(report.get("quality", {}))
    if report.get("outputs"):
        rows = ", ".join(f"{name} {count}" for name, count in report["outputs"].items())
        lines.append(f"  dataset rows: {rows}")
    if "wall_seconds" in report:
        lines.append(f"  wall time: {report['wall_seconds']:.1f}s")
    if report.get("outputs"):
        lines.append(f"  datasets written to {report['output_dir']}")
    return "\n".join(lines)
