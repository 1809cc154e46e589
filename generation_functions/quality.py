"""How good is the data a run made? Figures for run_report.json, the summary and the WebUI.

A `QualityTally` is fed each chunk's result record as the datasets are assembled
(one pass, streaming), and reports: the question kinds, question and answer
lengths, pairs per chunk, the chunks that kept nothing and why, and how many
kept questions nearly repeat an earlier one.
"""

from __future__ import annotations

import statistics
from collections import Counter
from typing import Any, Iterable, Iterator

from generation_functions.near_duplicates import NearDuplicateIndex, word_set

NEAR_DUPLICATE_THRESHOLD = 0.8  # Jaccard similarity of word sets, as assemble_training_data.py uses
UNLABELLED = "unlabelled"


def length_summary(values: list[int]) -> dict[str, float]:
    """min / median / 90th percentile / max / mean of a list of lengths (in words)."""
    if not values:
        return {"count": 0}
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, int(round(0.9 * (len(ordered) - 1))))]
    return {
        "count": len(ordered),
        "min": ordered[0],
        "median": statistics.median(ordered),
        "p90": p90,
        "max": ordered[-1],
        "mean": round(statistics.fmean(ordered), 1),
    }


def _bucket(count: int) -> str:
    return str(count) if count < 5 else "5+"


class QualityTally:
    def __init__(self) -> None:
        self.kinds_generated: Counter = Counter()
        self.kinds_kept: Counter = Counter()
        self.question_words: list[int] = []
        self.answer_words: list[int] = []
        self.pairs_per_chunk: Counter = Counter()
        self.empty_chunks: Counter = Counter()
        self.chunks = 0
        self.near_duplicates = 0
        self.conversations = 0
        self._questions = NearDuplicateIndex(NEAR_DUPLICATE_THRESHOLD)

    def add(self, result: dict) -> None:
        self.chunks += 1
        for record in result.get("vetted", []):
            self.kinds_generated[record.get("kind") or UNLABELLED] += 1
        kinds = result.get("pair_kinds") or [None] * len(result["pairs"])
        for (question, answer), kind in zip(result["pairs"], kinds):
            self._add_pair(question, answer, kind)
        self.pairs_per_chunk[_bucket(len(result["pairs"]))] += 1
        if not result["pairs"]:
            self.empty_chunks[why_nothing_kept(result)] += 1
        if result.get("conversation"):
            self.conversations += 1

    def _add_pair(self, question: str, answer: str, kind: str | None) -> None:
        self.kinds_kept[kind or UNLABELLED] += 1
        self.question_words.append(len(question.split()))
        self.answer_words.append(len(answer.split()))
        words = word_set(question)
        if self._questions.first_similar(words) is not None:
            self.near_duplicates += 1
        self._questions.add(words, len(self.question_words))

    def as_dict(self) -> dict[str, Any]:
        kept = len(self.question_words)
        empty = sum(self.empty_chunks.values())
        return {
            "question_kinds": {"generated": dict(self.kinds_generated.most_common()), "kept": dict(self.kinds_kept.most_common())},
            "question_words": length_summary(self.question_words),
            "answer_words": length_summary(self.answer_words),
            "pairs_per_chunk": {key: self.pairs_per_chunk[key] for key in ("0", "1", "2", "3", "4", "5+") if self.pairs_per_chunk[key]},
            "mean_pairs_per_chunk": round(kept / self.chunks, 2) if self.chunks else 0.0,
            "chunks_without_kept_pairs": {
                "count": empty,
                "share": round(empty / self.chunks, 3) if self.chunks else 0.0,
                "why": dict(self.empty_chunks.most_common()),
            },
            "near_duplicate_questions": {
                "threshold": NEAR_DUPLICATE_THRESHOLD,
                "count": self.near_duplicates,
                "rate": round(self.near_duplicates / kept, 3) if kept else 0.0,
            },
            "conversations": self.conversations,
        }


def why_nothing_kept(result: dict) -> str:
    """One short reason for a chunk that kept no pair."""
    if "filtered" in result:
        return f"chunk filter: {result['filtered']['reason']}"
    failure = result.get("failure") or {}
    if failure.get("stage") == "question_generation":
        return "question generation gave no usable output"
    if not result.get("raw_pairs"):
        return "no questions (nothing to ask about)"
    stages = Counter(record.get("tossed_at", "?") for record in result.get("vetted", []))
    return f"every pair tossed (mostly at {stages.most_common(1)[0][0]})"


def tallied(results: Iterable[dict], tally: QualityTally) -> Iterator[dict]:
    """Pass results through unchanged, feeding each to the tally on the way."""
    for result in results:
        tally.add(result)
        yield result


def quality_lines(quality: dict[str, Any]) -> list[str]:
    """A few lines for the run summary."""
    if not quality:
        return []
    kinds = quality["question_kinds"]["kept"]
    shown = ", ".join(f"{kind} {count}" for kind, count in kinds.items()) or "none"
    empty = quality["chunks_without_kept_pairs"]
    why = "; ".join(f"{reason}: {count}" for reason, count in empty["why"].items())
    questions, answers = quality["question_words"], quality["answer_words"]
    lines = [
        "Data quality",
        f"  question kinds kept: {shown}",
        f"  pairs per chunk: {quality['mean_pairs_per_chunk']} on average; chunks with no kept pair: "
        f"{empty['count']} ({empty['share']:.0%})" + (f" - {why}" if why else ""),
        f"  near-duplicate questions: {quality['near_duplicate_questions']['count']} "
        f"({quality['near_duplicate_questions']['rate']:.1%} of kept)",
    ]
    if questions.get("count"):
        lines.append(
            f"  words per question: median {questions['median']:g} (max {questions['max']}); "
            f"per answer: median {answers['median']:g} (p90 {answers['p90']}, max {answers['max']})"
        )
    return lines
