"""evaluate.py over real HTTP: two candidate models (a base that knows nothing, a "finetuned"
one that knows the documents), a judge, the conditions, the report, resuming and bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from evaluation.stats import paired_difference, summarise, wilson
from tests.conftest import REPO, write_config
from tests.fake_llm_server import CHAT, JUDGE, FakeLLMServer

FACTS = [
    ("How many blocks must staked coins mature before they can win a block?", "Staked coins must mature for 150 blocks before they can win a block."),
    ("What can a revocation authority do to a VerusID?", "A revocation authority can revoke a compromised identity and stop anyone from using it."),
    ("What does a recovery authority do for a revoked VerusID?", "A recovery authority can restore a revoked identity to new primary addresses chosen by its owner."),
    ("Who are staking rewards paid to?", "Rewards from staking are paid to the staking wallet itself."),
]


def write_eval_set(path: Path, with_chunks: bool = True) -> Path:
    rows = [
        {"question": q, "answer": a, "source_filename": "staking.md" if "stak" in q.lower() else "ids.md", **({"chunk": a} if with_chunks else {})}
        for q, a in FACTS
    ]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def run_evaluate(config: Path, *extra: str, timeout: float = 120, env: dict | None = None) -> subprocess.CompletedProcess:
    env = {**{k: v for k, v in os.environ.items() if not k.endswith("API_KEY")}, **(env or {})}
    return subprocess.run(
        [sys.executable, str(REPO / "evaluate.py"), "--config", str(config), "--no-progress", *extra],
        capture_output=True, text=True, timeout=timeout, env=env, cwd=str(config.parent),
    )


@pytest.fixture
def servers():
    knowledge = tuple(answer for _, answer in FACTS)
    with FakeLLMServer() as judge, FakeLLMServer() as base, FakeLLMServer(knowledge=knowledge) as tuned:
        yield judge, base, tuned


def _candidates(base, tuned):
    return ["--candidate", f"base=base-8b@{base.base_url}", "--candidate", f"tuned=verus-8b@{tuned.base_url}"]


def test_a_model_that_learned_the_facts_beats_one_that_did_not(tmp_path, servers):
    judge, base, tuned = servers
    eval_set = write_eval_set(tmp_path / "eval.jsonl")
    config = write_config(tmp_path / "config.yaml", judge.base_url)
    result = run_evaluate(config, "--eval-set", str(eval_set), "--conditions", "closed_book,oracle", *_candidates(base, tuned))
    assert result.returncode == 0, result.stderr
    out = tmp_path / "evaluation_results"
    report = json.loads((out / "eval_report.json").read_text())
    assert report["results"]["base/closed_book"]["declined"] == 4
    assert report["results"]["tuned/closed_book"]["correct"] == 4
    assert report["results"]["base/oracle"]["correct"] == 4  # with the right text, the base model answers too
    diff = report["comparisons"]["tuned vs base/closed_book"]
    assert diff["difference"] == 1.0 and diff["questions"] == 4
    assert report["comparisons"]["tuned vs base/oracle"]["more_than_noise"] is False
    rows = [json.loads(line) for line in (out / "eval_answers.jsonl").read_text().splitlines()]
    assert len(rows) == 16 and all(row["reason"] for row in rows)
    assert "| tuned | closed_book | 100.0% |" in result.stdout
    # Every candidate request used the training format: NO_RAG system prompt, then the question.
    asked = [r for r in base.requests if r.step == CHAT]
    closed = [r for r in asked if "{data}" not in r.system and FACTS[0][1] not in r.system]
    assert closed and all(r.body["messages"][0]["role"] == "system" and r.body["messages"][1]["content"] in {q for q, _ in FACTS} for r in asked)
    assert judge.count(JUDGE) >= 16


def test_a_rerun_asks_nothing_again(tmp_path, servers):
    judge, base, tuned = servers
    eval_set = write_eval_set(tmp_path / "eval.jsonl")
    config = write_config(tmp_path / "config.yaml", judge.base_url)
    flags = ["--eval-set", str(eval_set), "--conditions", "closed_book", *_candidates(base, tuned)]
    assert run_evaluate(config, *flags).returncode == 0
    before = (len(judge.requests), len(base.requests), len(tuned.requests))
    first = (tmp_path / "evaluation_results" / "eval_answers.jsonl").read_text()
    again = run_evaluate(config, *flags)
    assert again.returncode == 0, again.stderr
    chat_after = (judge.count(JUDGE), base.count(CHAT), tuned.count(CHAT))
    assert chat_after == (sum(1 for r in judge.requests[: before[0]] if r.step == JUDGE), sum(1 for r in base.requests[: before[1]] if r.step == CHAT), sum(1 for r in tuned.requests[: before[2]] if r.step == CHAT))
    assert (tmp_path / "evaluation_results" / "eval_answers.jsonl").read_text() == first
    assert json.loads((tmp_path / "evaluation_results" / "eval_report.json").read_text())["requests"]["made"] == 0


def test_a_judge_that_never_grades_is_counted_not_guessed(tmp_path):
    with FakeLLMServer(responders={JUDGE: lambda request: "Hard to tell."}) as judge, FakeLLMServer() as base:
        eval_set = write_eval_set(tmp_path / "eval.jsonl")
        config = write_config(tmp_path / "config.yaml", judge.base_url, EVALUATION={"VOTES": 1})
        result = run_evaluate(config, "--eval-set", str(eval_set), "--conditions", "closed_book", "--candidate", f"base=m@{base.base_url}")
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "evaluation_results" / "eval_report.json").read_text())
    assert report["results"]["base/closed_book"]["unjudged"] == 4 and report["results"]["base/closed_book"]["judged"] == 0


@pytest.mark.parametrize(
    ("make", "flags", "message"),
    [
        (lambda d: d / "empty.jsonl", ["--eval-set", "{eval}"], "holds no question"),
        (lambda d: d / "bad.jsonl", ["--eval-set", "{eval}"], "line 2: not valid JSON"),
        (lambda d: d / "noanswer.jsonl", ["--eval-set", "{eval}"], "line 1: needs a non-empty text field 'answer'"),
        (lambda d: d / "missing.jsonl", ["--eval-set", "{eval}"], "does not exist"),
        (lambda d: d / "ok.jsonl", ["--eval-set", "{eval}", "--conditions", "closed_book,memory"], "--conditions: memory unknown"),
        (lambda d: d / "ok.jsonl", ["--eval-set", "{eval}", "--candidate", "base"], "expected NAME=MODEL@BASE_URL"),
        (lambda d: d / "ok.jsonl", ["--eval-set", "{eval}", "--conditions", "closed_book", "--candidate", "down=m@http://127.0.0.1:9/v1"], "candidate down: no model server answers"),
        (lambda d: d / "ok.jsonl", ["--eval-set", "{eval}", "--candidate", "big=m@http://127.0.0.1:99999/v1"], "Port out of range"),
        (lambda d: d / "ok.jsonl", ["--eval-set", "{eval}", "--candidate", "k=m@http://127.0.0.1:9/v1#ODD_KEY"], "ODD_KEY (a candidate's API key)"),
    ],
)
def test_bad_input_is_a_clear_exit_2(tmp_path, make, flags, message):
    (tmp_path / "empty.jsonl").write_text("\n", encoding="utf-8")
    (tmp_path / "bad.jsonl").write_text('{"question": "q", "answer": "a"}\n{not json\n', encoding="utf-8")
    (tmp_path / "noanswer.jsonl").write_text('{"question": "q"}\n', encoding="utf-8")
    write_eval_set(tmp_path / "ok.jsonl")
    with FakeLLMServer() as judge:
        config = write_config(tmp_path / "config.yaml", judge.base_url)
        extra = [flag.replace("{eval}", str(make(tmp_path))) for flag in flags]
        if "--candidate" not in extra:
            extra += ["--candidate", f"self=m@{judge.base_url}"]
        result = run_evaluate(config, *extra, env={"ODD_KEY": "sk-clé"})
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr


def test_statistics():
    assert wilson(0, 0) == (0.0, 1.0)
    low, high = wilson(8, 10)
    assert 0.49 < low < 0.5 and 0.94 < high < 0.95  # the textbook Wilson interval for 8/10
    rows = [{"id": str(i), "grade": g} for i, g in enumerate(["correct", "partly correct", "wrong", "declined", None])]
    summary = summarise(rows)
    assert (summary["judged"], summary["unjudged"], summary["accuracy"], summary["score"]) == (4, 1, 0.25, 0.375)
    first = [{"id": str(i), "grade": "wrong"} for i in range(30)]
    second = [{"id": str(i), "grade": "correct" if i % 3 else "wrong"} for i in range(30)]
    diff = paired_difference(first, second)
    assert diff["more_than_noise"] and 0.5 < diff["difference"] < 0.8
    assert paired_difference(first, first)["more_than_noise"] is False


def test_the_rag_condition_gives_the_candidate_the_retrieved_chunks(tmp_path, servers):
    """With the search index (retrieval/), a model that knows nothing answers from the chunks found."""
    judge, base, _ = servers
    documents = tmp_path / "documents"
    documents.mkdir()
    (documents / "staking.md").write_text("# Staking\n\n" + FACTS[0][1] + " " + FACTS[3][1], encoding="utf-8")
    (documents / "ids.md").write_text("# VerusID\n\n" + FACTS[1][1] + "\n\n" + FACTS[2][1], encoding="utf-8")
    eval_set = write_eval_set(tmp_path / "eval.jsonl")
    config = write_config(tmp_path / "config.yaml", judge.base_url, PATH={"INPUT": str(documents)}, EVALUATION={"TOP_K": 1})
    result = run_evaluate(config, "--eval-set", str(eval_set), "--conditions", "closed_book,rag", "--candidate", f"base=base-8b@{base.base_url}")
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "evaluation_results" / "eval_report.json").read_text())
    assert report["results"]["base/closed_book"]["declined"] == 4
    assert report["results"]["base/rag"]["correct"] == 4
    rows = [json.loads(line) for line in (tmp_path / "evaluation_results" / "eval_answers.jsonl").read_text().splitlines()]
    rag = {row["question"]: row["context_sources"] for row in rows if row["condition"] == "rag"}
    assert rag[FACTS[0][0]] == ["staking.md, chunk 0"] and rag[FACTS[1][0]] == ["ids.md, chunk 0"]
    assert (tmp_path / "output" / "retrieval.sqlite").exists()
