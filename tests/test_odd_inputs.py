"""Odd input folders and odd OUTPUT folders do not stop a run, through processing.py as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from generation_functions.datasets import PRETRAINING_JSON, PRETRAINING_JSONL
from tests.conftest import run_processing, write_config
from tests.fake_llm_server import FakeLLMServer
from tests.odd_trees import BAD_NAME_SHOWN, DEEP_FILE, SECRET, SKIPPED_REASONS, build_odd_tree, remove_tree


@pytest.fixture
def odd_input(tmp_path):
    input_dir = tmp_path / "in"
    build_odd_tree(input_dir, tmp_path / "outside.txt")
    yield input_dir
    remove_tree(input_dir)  # too deep for pytest's own clean-up


def test_a_run_and_its_check_read_odd_folders_and_say_what_they_skipped(tmp_path, odd_input):
    with FakeLLMServer() as server:
        config = write_config(tmp_path / "config.yaml", server.base_url, PATH={"INPUT": str(odd_input)})
        check = run_processing(config, "--check")
        run = run_processing(config)
    assert check.returncode == 0, check.stdout + check.stderr
    assert f"documents: 4 readable, {len(SKIPPED_REASONS)} skipped" in check.stdout
    assert run.returncode == 0, run.stderr[-3000:]
    assert "Traceback" not in check.stderr + run.stderr
    out = tmp_path / "output"
    report = json.loads((out / "run_report.json").read_text(encoding="utf-8"))
    assert {item["path"]: item["reason"] for item in report["skipped_files"]} == SKIPPED_REASONS
    assert report["documents"] == 4
    sources = {row["source_filename"] for row in map(json.loads, (out / "plain_qa_list.jsonl").read_text().splitlines())}
    assert {BAD_NAME_SHOWN, DEEP_FILE} <= sources
    for name in (PRETRAINING_JSON, PRETRAINING_JSONL):
        text = (out / name).read_text(encoding="utf-8")
        assert "identities are registered" in text and SECRET not in text
    leaked = [path for path in out.rglob("*") if path.is_file() and SECRET in path.read_text(errors="replace")]
    assert not leaked


def _dead_pid() -> int:
    process = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(process.stdout)


def test_startup_removes_only_its_own_stale_temporaries(tmp_path):
    out = tmp_path / "output"
    dead = _dead_pid()
    stale = [out / f".tmp-{dead}-0", out / "chunk_results" / f".tmp-{dead}-7"]
    kept = [
        out / ".tmp-notes.txt",  # the user's own
        out / "nested_output" / f".tmp-{dead}-1",  # another OUTPUT nested in this one: not this run's to clean
        out / "chunk_results" / "mine" / f".tmp-{dead}-2",
        out / f".tmp-{os.getppid()}-3",  # a live process (evaluate.py writing here) is mid-write
    ]
    for path in stale + kept:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("partial", encoding="utf-8")
    with FakeLLMServer() as server:
        config = write_config(tmp_path / "config.yaml", server.base_url, SYSTEM={"USE_SUBSET": True, "SUBSET_SIZE": 1})
        result = run_processing(config)
    assert result.returncode == 0, result.stderr[-2000:]
    assert [path for path in stale if path.exists()] == []
    assert [path for path in kept if not path.exists()] == []
