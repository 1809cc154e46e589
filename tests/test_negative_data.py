"""Negative data that cannot contradict the corpus: an answer saying a detail is not known is kept
only when no other chunk of the corpus answers the question (retrieval, then the question check)."""

from __future__ import annotations

import json

import pytest

from generation_functions.conversation_check import recall
from generation_functions.output_processors import is_unknown_answer
from tests.conftest import run_processing, write_config
from tests.fake_llm_server import QUESTION_CHECK, QUESTION_GENERATION, FakeLLMServer, fenced_blocks

DOCS = {
    "maturity.md": "Staked coins on Verus must mature for 150 blocks before they can win a block. "
    "Coins that moved recently wait for the maturity period again before they stake.",
    "rewards.md": "Rewards from staking are paid to the staking wallet itself. "
    "A wallet must stay online and unlocked while it stakes.",
}


@pytest.mark.parametrize(
    ("answer", "unknown"),
    [
        ("I don't have reliable information about the fee, so I won't guess at a number.", True),
        ("The documentation does not say how long a recovery takes.", True),
        ("That detail is not covered in what I know about Verus.", True),
        ("I can't state the exact limit reliably.", True),
        ("It doesn't: by default untracked files are left where they are.", False),
        ("That isn't quite right: they don't have to be R-addresses.", False),
        ("Coins must mature for 150 blocks.", False),
    ],
)
def test_is_unknown_answer(answer, unknown):
    assert is_unknown_answer(answer) is unknown


def generation(request):
    chunk = fenced_blocks(request.user)[0]
    if "Rewards from staking" not in chunk:
        return "**QUESTION:**\nHow long must staked Verus coins mature?\n\n**ANSWER:**\nStaked coins must mature for 150 blocks."
    return (
        "**QUESTION:**\n[fact] Who receives Verus staking rewards?\n\n**ANSWER:**\nThe staking wallet itself receives them.\n\n"
        "**QUESTION:**\n[fact] For how many blocks must staked Verus coins mature before they can win a block?\n\n"
        "**ANSWER:**\nI don't have reliable information about the maturity period, so I won't guess at a number.\n\n"
        "**QUESTION:**\n[fact] What fee does Verus charge to start staking?\n\n"
        "**ANSWER:**\nI don't have reliable information about a fee for staking, so I won't guess."
    )


def question_check(request):
    """RELEVANT when the chunk carries most of the question's content words, as a careful checker would."""
    chunk, question = fenced_blocks(request.user)[:2]
    return "Each part is looked for in the chunk.\n\n" + ("RELEVANT" if recall(question, chunk) >= 0.6 else "IRRELEVANT")


def test_an_unknown_answer_that_another_chunk_answers_is_tossed(tmp_path):
    corpus = tmp_path / "docs"
    corpus.mkdir()
    for name, text in DOCS.items():
        (corpus / name).write_text(text, encoding="utf-8")
    responders = {QUESTION_GENERATION: generation, QUESTION_CHECK: question_check}
    with FakeLLMServer(responders=responders) as server:
        config = write_config(tmp_path / "config.yaml", server.base_url, PATH={"INPUT": str(corpus)}, SKIP={"QUESTION_CHECK": True})
        result = run_processing(config)
    assert result.returncode == 0, result.stderr
    output = tmp_path / "output"
    report = json.loads((output / "run_report.json").read_text())
    assert report["stages"]["answer_check"]["tossed_reasons"] == {"says unknown, but another chunk answers it": 1}
    kept = [json.loads(line)["question"] for line in (output / "plain_qa_list.jsonl").read_text().splitlines()]
    assert "What fee does Verus charge to start staking?" in kept  # no chunk says: an honest negative
    assert not any("For how many blocks" in question for question in kept)
    results = [json.loads(path.read_text()) for path in (output / "chunk_results").glob("*.json")]
    tossed = [r for result in results for r in result["vetted"] if r.get("reason") == "says unknown, but another chunk answers it"]
    assert tossed[0]["answered_in"] == "maturity.md, chunk 0"
