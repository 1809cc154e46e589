"""The retrieval benchmark's development set: questions parsed from recorded calls, gold chunks found by overlap."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.conftest import REPO, SHARED

sys.path.insert(0, str(REPO / "benchmarks"))

from retrieval_devset import DevQuestion, GoldFinder, labelled, load_questions, questions_from_row  # noqa: E402

SOURCE = (
    "# Divert staking rewards\nIf you are staking with funds on a VerusID locked with Vault, you can divert the stakes "
    "you win to a hot wallet. On the hot wallet, copy the public key of the receiving address. On the staking device, "
    "add the launch options minetolocalwallet=0 and pubkey=xxx, then save and restart the wallet."
)


@pytest.mark.parametrize(
    "row, expected",
    [
        (
            {
                "step": "question_generation",
                "last_user_message": f'Text to make questions from: \n"""\n{SOURCE}\n"""',
                "response": "**QUESTION:**\nHow do I divert staking rewards?\n\n**ANSWER:**\nAdd two launch options.\n\n"
                "**QUESTION:**\nWhat is a hot wallet for?\n\n**ANSWER:**\nIt receives the stakes.",
            },
            [("How do I divert staking rewards?", "Add two launch options."), ("What is a hot wallet for?", "It receives the stakes.")],
        ),
        (
            {
                "step": "check_question",
                "last_user_message": f'Text: \n"""\n{SOURCE}\n"""\n\nQuestion (based on text):\n"""\nWhat does pubkey=xxx do?\n"""\n\nIf the question...',
                "response": "RELEVANT",
            },
            [("What does pubkey=xxx do?", "")],
        ),
        (
            {
                "step": "check_answer",
                "last_user_message": f'Text:\n"""\n{SOURCE}\n"""\n\nQuestion (based on text):\n"""\nWhy restart?\n"""\n\n'
                'Supposed answer to the question (this is what you are fact-checking):\n"""\nTo apply the options.\n"""',
                "response": "ACCURATE",
            },
            [("Why restart?", "To apply the options.")],
        ),
        ({"step": "question_generation", "last_user_message": f'"""\n{SOURCE}\n"""', "response": "I cannot."}, []),
        ({"step": "conversation", "last_user_message": "**QUESTION:**\nx\n\n**ANSWER:**\ny", "response": "..."}, []),
        ({"step": "check_question", "last_user_message": "no fences at all", "response": "RELEVANT"}, []),
    ],
)
def test_questions_from_recorded_calls(row, expected):
    found = questions_from_row(row)
    assert [(item.question, item.answer) for item in found] == expected
    assert all(item.source_text == SOURCE and item.step == row["step"] for item in found)


def test_the_gold_chunk_is_the_part_of_the_source_the_answer_is_about():
    first, second = SOURCE.split(" On the hot wallet, ")
    chunks = [
        "Unrelated text about mining pools and their fees, hashrate and payouts to miners every block.",
        first,
        "On the hot wallet, " + second,
        "On the hot wallet, " + second,  # a copy elsewhere in the corpus counts as well
    ]
    finder = GoldFinder(chunks)
    about_options = DevQuestion("Which launch options divert stakes?", "minetolocalwallet=0 and pubkey=xxx, then restart", SOURCE, "x")
    about_vault = DevQuestion("Can I divert stakes from a VerusID locked with Vault?", "", SOURCE, "x")
    assert finder.gold(about_options) == {2, 3}
    assert finder.gold(about_vault) == {1}
    tiny = DevQuestion("What is this?", "", "# Introduction", "x")
    mapped, unmapped = labelled([about_options, tiny], chunks)
    assert mapped == [(about_options, frozenset({2, 3}))] and unmapped == 1


def test_the_split_is_by_source_and_stable():
    a = DevQuestion("q1", "", "source one", "x")
    b = DevQuestion("q2", "", "source one", "y")
    assert a.split == b.split
    splits = {DevQuestion("q", "", f"source {n}", "x").split for n in range(50)}
    assert splits == {"tune", "held-out"}


def test_load_questions_reads_each_question_once(tmp_path):
    rows = [
        {"step": "check_question", "last_user_message": f'"""\n{SOURCE}\n"""\n"""\nWhat is a hot wallet?\n"""', "response": ""},
        {"step": "check_question", "last_user_message": f'"""\n{SOURCE}\n"""\n"""\nWhat is a hot wallet?\n"""', "response": ""},
    ]
    (tmp_path / "check_question.jsonl").write_text("\n".join(json.dumps(row) for row in rows) + "\n")
    assert [item.question for item in load_questions(tmp_path)] == ["What is a hot wallet?"]


@pytest.mark.skipif(not (SHARED / "verus_corpus").is_dir() or not (SHARED / "real_generations").is_dir(), reason="needs ../shared")
def test_the_benchmark_runs_on_the_real_corpus(tmp_path):
    figures = tmp_path / "figures.json"
    result = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "bench_retrieval.py"), "--rounds", "1", "--json", str(figures)],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(figures.read_text())
    assert data["questions"] > 150 and data["indexing"]["chunks"] > 1000
    # The index must beat the plain BM25 baseline on the questions it was not tuned on.
    assert data["recall"]["index"]["held-out"]["@5"] > data["recall"]["plain BM25"]["held-out"]["@5"]
    assert "recall@5" in result.stdout
