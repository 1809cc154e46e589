"""The throughput benchmark's own arithmetic, and a small run of it end to end."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))

from bench_throughput import Task, _then, clairvoyant_schedule, longest_chain  # noqa: E402


def chain_of(length: int, seconds: float = 1.0) -> Task:
    root = Task(seconds)
    last = [root]
    for _ in range(length - 1):
        last = _then(last, seconds)
    return root


def chunk(pairs: int, votes: int = 2) -> Task:
    """One chunk as the pipeline runs it: questions, then per pair two votes of
    each check and a repair, then the conversation."""
    questions = Task(1.0)
    ends = []
    for _ in range(pairs):
        question_votes = _then([questions], 1.0, votes)
        answer_votes = _then(question_votes, 1.0, votes)
        ends += _then(answer_votes, 1.0)
    _then(ends, 1.0)
    return questions


@pytest.mark.parametrize(
    "roots, limit, chain, schedule",
    [
        ([chain_of(3)], 4, 3.0, 3.0),  # a lone chain is its own bound
        ([Task(1.0) for _ in range(4)], 2, 1.0, 2.0),  # independent work: requests / limit
        ([Task(1.0) for _ in range(5)], 2, 1.0, 3.0),  # whole requests: a third round for the fifth
        ([chain_of(2, 0.5), Task(1.0)], 1, 1.0, 2.0),  # one slot: everything in turn
        # 30 chunks of one pair at 50 slots: the 60 first votes do not fit one round, so six rounds.
        ([chunk(1) for _ in range(30)], 50, 5.0, 6.0),
        # Few chunks leave slots free: the chain decides.
        ([chunk(3) for _ in range(4)], 50, 5.0, 5.0),
    ],
)
def test_chain_and_clairvoyant_schedule(roots, limit, chain, schedule):
    assert longest_chain(roots) == pytest.approx(chain)
    assert clairvoyant_schedule(roots, limit) == pytest.approx(schedule)


def test_the_schedule_never_beats_either_bound():
    roots = [chunk(pairs) for pairs in (1, 2, 3, 3, 2, 1, 3, 3)]
    work = sum(task.seconds for task in _every_task(roots))
    for limit in (1, 3, 8, 50):
        schedule = clairvoyant_schedule(roots, limit)
        assert schedule >= max(work / limit, longest_chain(roots)) - 1e-9


def _every_task(roots):
    seen, stack = {}, list(roots)
    while stack:
        task = stack.pop()
        if id(task) not in seen:
            seen[id(task)] = task
            stack.extend(task.successors)
    return seen.values()


def test_the_benchmark_runs_and_reports_every_figure(tmp_path):
    result = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "bench_throughput.py"), "--chunks", "4", "--latency", "0.02",
         "--concurrency", "8", "--input", str(REPO / "raw_text_input"), "--workdir", str(tmp_path)],
        capture_output=True, text=True, timeout=120, cwd=REPO,
    )
    assert result.returncode == 0, result.stderr
    figures = dict(line.split(None, 1) for line in result.stdout.splitlines() if line.strip())
    for name in ("wall_s", "ideal_s", "wall_over_ideal", "longest_chain_s", "clairvoyant_schedule_s",
                 "mean_in_flight_over_limit", "client_cpu_ms_per_request", "requests_per_conversation",
                 "prompt_tokens_per_conversation", "completion_tokens_per_conversation"):
        assert name in figures, name
    assert float(figures["wall_s"]) >= float(figures["clairvoyant_schedule_s"]) * 0.95
    assert float(figures["clairvoyant_schedule_s"]) >= float(figures["ideal_s"]) - 1e-3


def test_the_fault_benchmark_runs_both_jobs_and_prints_the_ratio(tmp_path):
    result = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "bench_faults.py"), "--chunks", "3", "--latency", "0.02",
         "--concurrency", "4", "--fault-rate", "0.3", "--input", str(REPO / "raw_text_input"), "--workdir", str(tmp_path)],
        capture_output=True, text=True, timeout=120, cwd=REPO,
    )
    assert result.returncode == 0, result.stderr
    assert "wall time with faults / fault-free:" in result.stdout
    faults = next(line for line in result.stdout.splitlines() if line.strip().startswith("faults_injected"))
    assert "'500'" in faults or "'429'" in faults  # faults were injected into the second run only
    assert "fault-free {}" in faults


def test_the_constrained_output_benchmark_reports_every_figure_of_a_run(tmp_path):
    """bench_constrained.py's run, against the fake server instead of llama-cpp-python's (the real
    one needs llama-cpp-python and the SmolLM2 GGUF; tests/test_constrained_llama.py runs those)."""
    import argparse

    from bench_constrained import chunk_input, run_once

    from tests.fake_imperfect import Imperfection
    from tests.fake_llm_server import FakeLLMServer

    args = argparse.Namespace(chunk_size=1200, concurrency=4, skip=["CHUNK_FILTER"], keep=tmp_path / "kept")
    input_dir = chunk_input(tmp_path, REPO / "raw_text_input" / sorted(p.name for p in (REPO / "raw_text_input").glob("*.md"))[0], 2, 1200)
    with FakeLLMServer(imperfect=Imperfection(rate=0.5, seed=3), honours=("grammar",)) as server:
        off = run_once(server.base_url, input_dir, "off", args)
        on = run_once(server.base_url, input_dir, "auto", args)
    assert on["chose"] == {"local": "grammar"} and off["chose"] == {}
    assert on["skipped"] == ["CHUNK_FILTER"] and on["steps"]["chunk_filter"]["outputs"] == 0
    asked = {key: step for key, step in on["steps"].items() if step["outputs"]}
    assert "question_generation" in asked and all(step["parsed"] == step["outputs"] for step in asked.values())
    assert all(step["tokens_per_output"] > 0 for step in asked.values())
    assert any(step["parsed"] < step["outputs"] for step in off["steps"].values() if step["outputs"])
    assert on["pairs_kept"] <= on["pairs_generated"] and on["wall_s"] > 0
    assert on["seconds_per_kept_pair"] is None or on["seconds_per_kept_pair"] > 0
    # --keep leaves each run's raw outputs where the warnings point.
    for setting in ("off", "auto"):
        assert (tmp_path / "kept" / setting / "output" / "calls" / "qatuples_gen_no_filenames" / "calls.jsonl").is_file()
