"""Accuracy with 95 % intervals, and whether two models differ by more than noise."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from typing import Any, Iterable

from generation_functions.output_processors import JUDGE_GRADES

Z95 = 1.959964
# A grade as a score: a partly correct answer counts half.
SCORES = {"correct": 1.0, "partly correct": 0.5, "wrong": 0.0, "declined": 0.0}
UNJUDGED = "unjudged"  # no grade won a majority, or the candidate gave no answer


def wilson(successes: int, total: int) -> tuple[float, float]:
    """The Wilson score interval (95 %) of a proportion; (0, 1) for no data."""
    if total == 0:
        return 0.0, 1.0
    p = successes / total
    denominator = 1 + Z95**2 / total
    centre = (p + Z95**2 / (2 * total)) / denominator
    spread = Z95 * math.sqrt(p * (1 - p) / total + Z95**2 / (4 * total**2)) / denominator
    return max(0.0, centre - spread), min(1.0, centre + spread)


def summarise(rows: list[dict]) -> dict[str, Any]:
    """Counts, accuracy (correct / judged) with its interval, and the mean score."""
    grades = Counter(row["grade"] or UNJUDGED for row in rows)
    judged = sum(grades[g] for g in JUDGE_GRADES)
    low, high = wilson(grades["correct"], judged)
    score = sum(SCORES[g] * grades[g] for g in JUDGE_GRADES) / judged if judged else 0.0
    return {
        "questions": len(rows),
        "judged": judged,
        **{grade: grades[grade] for grade in (*JUDGE_GRADES, UNJUDGED)},
        "accuracy": round(grades["correct"] / judged, 4) if judged else 0.0,
        "accuracy_95": [round(low, 4), round(high, 4)],
        "score": round(score, 4),
    }


def group(rows: Iterable[dict], *keys: str) -> dict[tuple, list[dict]]:
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for row in rows:
        groups[tuple(row[key] for key in keys)].append(row)
    return groups


def paired_difference(first: list[dict], second: list[dict]) -> dict[str, Any]:
    """Score of `second` minus `first` over the questions both were judged on: the mean, its
    95 % interval (normal approximation of the paired differences), and whether it excludes 0."""
    a = {row["id"]: SCORES[row["grade"]] for row in first if row["grade"] in SCORES}
    b = {row["id"]: SCORES[row["grade"]] for row in second if row["grade"] in SCORES}
    shared = sorted(a.keys() & b.keys())
    if not shared:
        return {"questions": 0}
    differences = [b[key] - a[key] for key in shared]
    mean = sum(differences) / len(differences)
    variance = sum((d - mean) ** 2 for d in differences) / (len(differences) - 1) if len(differences) > 1 else 0.0
    half = Z95 * math.sqrt(variance / len(differences))
    low, high = mean - half, mean + half
    return {
        "questions": len(shared),
        "difference": round(mean, 4),
        "difference_95": [round(low, 4), round(high, 4)],
        "more_than_noise": bool(low > 0 or high < 0),
    }
