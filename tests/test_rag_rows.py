"""RAG rows like real RAG: the source chunk among retrieved neighbours, in varied order, and a
share of rows whose context misses the answer and whose answer says so."""

from __future__ import annotations

import json

from generation_functions.rag_rows import RagRows, RagRowSettings
from tests.conftest import REPO, run_processing, write_config
from tests.fake_llm_server import FakeLLMServer

CHUNKS = {f"k{i}": f"Chunk number {i} about staking and identities." for i in range(8)}


def search(question, k, exclude):
    return [text for key, text in CHUNKS.items() if key not in exclude][:k]


def turns(question):
    return [{"from": "human", "value": question}, {"from": "gpt", "value": "An answer."}]


def test_the_chunk_sits_among_its_neighbours_at_varied_places():
    rows = RagRows(RagRowSettings(neighbours=2, distractor_share=0.0), search)
    positions = set()
    for i in range(40):
        row = rows.build("k0", CHUNKS["k0"], turns(f"Question {i}?"))
        assert row.holds_answer and len(row.context) == 3 and CHUNKS["k0"] in row.context
        positions.add(row.context.index(CHUNKS["k0"]))
        assert row == rows.build("k0", CHUNKS["k0"], turns(f"Question {i}?"))  # the same content, the same row
    assert positions == {0, 1, 2}


def test_a_share_of_rows_miss_the_answer_and_decline():
    settings = RagRowSettings(neighbours=2, distractor_share=0.3, decline_text="Not covered by what I was given.")
    rows = [RagRows(settings, search).build("k0", CHUNKS["k0"], turns(f"Question {i}?")) for i in range(200)]
    missing = [row for row in rows if not row.holds_answer]
    assert 40 <= len(missing) <= 80  # about 30 %
    for row in missing:
        assert CHUNKS["k0"] not in row.context and len(row.context) == 3
        assert [t["value"] for t in row.turns if t["from"] == "gpt"] == ["Not covered by what I was given."]
    knowing = RagRows(RagRowSettings(2, 1.0, "knowledge", "x"), search).build("k0", CHUNKS["k0"], turns("Question 0?"))
    assert not knowing.holds_answer and knowing.turns == turns("Question 0?")  # answers from what it learned


def test_no_search_keeps_the_chunk_alone():
    row = RagRows(RagRowSettings(neighbours=0, distractor_share=0.0), search).build("k0", CHUNKS["k0"], turns("Q?"))
    assert row.context == [CHUNKS["k0"]] and row.holds_answer


def test_a_run_writes_rows_without_the_answer_and_counts_them(tmp_path):
    with FakeLLMServer() as server:
        config = write_config(
            tmp_path / "config.yaml",
            server.base_url,
            PATH={"INPUT": str(REPO / "tests" / "golden" / "corpus")},
            SYSTEM={"CHUNK_SIZE": 400, "RAG_DISTRACTOR_SHARE": 0.5, "RAG_DECLINE_ANSWER": "That is not in my sources."},
        )
        result = run_processing(config)
    assert result.returncode == 0, result.stderr
    output = tmp_path / "output"
    report = json.loads((output / "run_report.json").read_text())
    rows = [json.loads(line)["conversations"] for line in (output / "simplified_data_rag.jsonl").read_text().splitlines()]
    declined = [row for row in rows if all(t["value"] == "That is not in my sources." for t in row if t["from"] == "gpt")]
    assert report["outputs"]["simplified_data_rag.jsonl rows without the answer"] == len(declined) >= 1
    chunks = [json.loads(line)["rag_context"] for line in (output / "master_list.jsonl").read_text().splitlines()]
    for row, chunk in zip(rows, chunks):
        assert (chunk in row[0]["value"]) == (row not in declined)
    assert (output / "retrieval.sqlite").is_file()
