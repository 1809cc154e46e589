"""The datasets a fixed corpus makes against the fake server, byte for byte.

tests/golden/corpus holds sentences that the fake model answers in every way the
pipeline must handle: pairs kept, voted irrelevant, voted inaccurate, reworded,
failed by the repair, and a chunk with nothing to ask about. tests/golden/expected
holds what the pipeline wrote for it before the steps became a table: a
refactoring must leave every byte as it was. A change that means to alter the
datasets regenerates them with `python -m tests.test_golden_datasets` and says so.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from tests.conftest import REPO, run_processing, write_config
from tests.fake_llm_server import FakeLLMServer

GOLDEN = REPO / "tests" / "golden"
COMPARED = (
    "chunk_index.json",
    "master_list.jsonl",
    "plain_qa_list.jsonl",
    "pretraining.json",
    "pretraining.jsonl",
    "simplified_data_no_rag.jsonl",
    "simplified_data_rag.jsonl",
)


def run_golden(workdir: Path, **system) -> Path:
    """Run the pipeline over the golden corpus; returns the OUTPUT folder."""
    with FakeLLMServer() as server:
        config = write_config(
            workdir / "config.yaml",
            server.base_url,
            PATH={"INPUT": str(GOLDEN / "corpus")},
            SYSTEM={"CHUNK_SIZE": 400, **system},
        )
        result = run_processing(config)
    assert result.returncode == 0, result.stderr
    return workdir / "output"


def report_counts(output: Path) -> dict:
    report = json.loads((output / "run_report.json").read_text(encoding="utf-8"))
    return {"funnel": report["funnel"], "stages": report["stages"]}


def test_datasets_are_byte_identical_to_the_recorded_ones(tmp_path: Path) -> None:
    output = run_golden(tmp_path)
    for name in COMPARED:
        expected = (GOLDEN / "expected" / name).read_bytes()
        assert (output / name).read_bytes() == expected, f"{name} differs from tests/golden/expected/{name}"
    expected_counts = json.loads((GOLDEN / "expected" / "report_counts.json").read_text(encoding="utf-8"))
    assert report_counts(output) == expected_counts


def test_rag_rows_with_the_chunk_alone_are_the_recorded_ones(tmp_path: Path) -> None:
    """With neighbours and distractors off, a RAG row's context is its chunk, as before."""
    output = run_golden(tmp_path, RAG_NEIGHBOURS=0, RAG_DISTRACTOR_SHARE=0)
    expected = (GOLDEN / "expected" / "simplified_data_rag.chunk_only.jsonl").read_bytes()
    assert (output / "simplified_data_rag.jsonl").read_bytes() == expected


if __name__ == "__main__":  # regenerate the expected files after a deliberate change
    import tempfile

    with tempfile.TemporaryDirectory() as scratch:
        produced = run_golden(Path(scratch))
        for name in COMPARED:
            shutil.copyfile(produced / name, GOLDEN / "expected" / name)
        (GOLDEN / "expected" / "report_counts.json").write_text(
            json.dumps(report_counts(produced), indent=1, sort_keys=True), encoding="utf-8"
        )
    print("regenerated", GOLDEN / "expected", file=sys.stderr)
