"""`python processing.py` end to end against the fake server over real HTTP."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from generation_functions.prompts import render
from generation_functions.datasets import DATASET_FILES, MASTER_LIST, PLAIN_QA, SHAREGPT_NO_RAG, SHAREGPT_RAG
from tests.conftest import REPO, run_processing, write_config
from tests.fake_llm_server import (
    ANSWER_CHECK,
    CONTEXT_REPAIR,
    CONVERSATION,
    QUESTION_CHECK,
    QUESTION_GENERATION,
    FakeLLMServer,
)

STEP_FOLDERS = (QUESTION_GENERATION, QUESTION_CHECK, ANSWER_CHECK, CONTEXT_REPAIR, CONVERSATION)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def dataset_bytes(out: Path) -> dict[str, bytes]:
    return {name: (out / name).read_bytes() for name in DATASET_FILES}


def input_documents() -> dict[str, str]:
    folder = REPO / "raw_text_input"
    return {p.relative_to(folder).as_posix(): p.read_text(encoding="utf-8") for p in sorted(folder.rglob("*.md"))}


@pytest.fixture(scope="module")
def full_run(tmp_path_factory):
    """One uninterrupted run on raw_text_input, shared by the checks below."""
    tmp = tmp_path_factory.mktemp("full")
    with FakeLLMServer(latency=0.05) as server:
        config = write_config(tmp / "config.yaml", server.base_url)
        result = run_processing(config)
        steps = server.steps_seen()
        models = {(r.step, r.model) for r in server.requests}
        requests = list(server.requests)
        assert 1 < server.peak_in_flight <= 8  # CONCURRENCY_LIMIT in write_config
    assert result.returncode == 0, result.stderr
    return tmp / "output", result, steps, models, config, requests


def test_every_output_file_is_written_and_parses(full_run):
    out, result, _, _, _, _ = full_run
    for name in DATASET_FILES:
        assert (out / name).is_file(), name
        if name.endswith(".jsonl"):
            assert read_jsonl(out / name), f"{name} is empty"
    report = json.loads((out / "run_report.json").read_text())
    assert report["funnel"]["conversations"] == len(read_jsonl(out / SHAREGPT_NO_RAG)) > 0
    assert "Run summary" in result.stdout and "conversations:" in result.stdout
    requests = report["requests"]
    assert requests["concurrency_limit"] == 8
    assert 1 < requests["mean_in_flight"] <= requests["peak_in_flight"] <= 8
    assert "requests in flight:" in result.stdout and "of CONCURRENCY_LIMIT 8" in result.stdout


def test_qa_pairs_carry_their_source_and_chunk(full_run):
    out = full_run[0]
    documents = input_documents()
    for row in read_jsonl(out / PLAIN_QA):
        assert row["source_filename"] in documents
        assert row["question"] and row["answer"]
        # the fake model answers with a sentence of the chunk
        assert " ".join(row["answer"].split()) in " ".join(row["chunk"].split())
        assert " ".join(row["chunk"].split()[:20]) in " ".join(documents[row["source_filename"]].split())


def test_sharegpt_rows_alternate_after_the_system_prompt(full_run):
    out, _, _, _, config, _ = full_run
    import yaml

    system = yaml.safe_load(config.read_text())["SYSTEM"]
    no_rag = read_jsonl(out / SHAREGPT_NO_RAG)
    rag = read_jsonl(out / SHAREGPT_RAG)
    assert len(no_rag) == len(rag)
    for plain, with_context in zip(no_rag, rag):
        turns = plain["conversations"]
        assert turns[0]["from"] == "system"
        assert [t["from"] for t in turns[1:]] == ["human", "gpt"] * ((len(turns) - 1) // 2)
        rag_turns = with_context["conversations"][1:]
        assert [t["value"] for t in rag_turns if t["from"] == "human"] == [t["value"] for t in turns[1:] if t["from"] == "human"]
        declined = {t["value"] for t in rag_turns if t["from"] == "gpt"} == {
            "The information I was given does not cover that, so I can't answer it reliably from it."
        }
        assert declined or rag_turns == turns[1:]  # a row whose context misses the answer says so
        rag_system = with_context["conversations"][0]["value"]
        assert "{data}" not in rag_system
        assert rag_system != turns[0]["value"]
    if "FINAL_ASSISTANT_PROMPT_NO_RAG" in system:
        assert no_rag[0]["conversations"][0]["value"] == system["FINAL_ASSISTANT_PROMPT_NO_RAG"]


def test_master_list_holds_conversation_pairs_and_context(full_run):
    out = full_run[0]
    qa = read_jsonl(out / PLAIN_QA)
    for row in read_jsonl(out / MASTER_LIST):
        assert set(row) >= {"conversation", "qa_pairs", "rag_context", "source_filename"}
        assert row["conversation"] and row["qa_pairs"]
        for pair in row["qa_pairs"]:
            assert {"question": pair["question"], "answer": pair["answer"]} in [
                {"question": q["question"], "answer": q["answer"]} for q in qa
            ]
            assert any(pair["answer"] in turn["message"] for turn in row["conversation"])


def test_pretraining_corpus_has_every_document(full_run):
    out = full_run[0]
    documents = input_documents()
    rows = read_jsonl(out / "pretraining.jsonl")
    assert len(rows) == len(documents)
    joined = json.loads((out / "pretraining.json").read_text())["text"]
    for text in documents.values():
        first_line = text.strip().splitlines()[0]
        assert first_line in joined
        assert any(first_line in row["text"] for row in rows)


def test_every_model_call_is_recorded_per_step(full_run):
    out, _, steps, _, _, requests = full_run
    for step in STEP_FOLDERS:
        assert not list((out / "calls" / step).glob("*.json")), "one log per step, not a file per call"
        records = read_jsonl(out / "calls" / step / "calls.jsonl")
        assert len(records) == steps[step], step
        assert len({r["key"] for r in records}) == len(records)
        record = records[0]
        assert record["values"] and record["response"]
        template = json.loads((out / "calls" / step / "templates" / f"{record['template']}.json").read_text())
        rendered = render(template["prompt"], record["values"])
        assert rendered[-1]["content"] in {r.body["messages"][-1]["content"] for r in requests if r.step == step}
    results = list((out / "chunk_results").glob("*.json"))
    assert len(results) == steps[QUESTION_GENERATION]
    sample = json.loads(results[0].read_text())
    assert {"raw_pairs", "vetted", "pairs", "conversation"} <= set(sample)


def test_conversations_use_the_large_model(full_run):
    models = full_run[3]
    assert {model for step, model in models if step == CONVERSATION} == {"large-model"}
    assert {model for step, model in models if step != CONVERSATION} == {"small-model"}


def test_report_counts_requests_tokens_and_stages(full_run):
    out, _, steps, _, _, _ = full_run
    report = json.loads((out / "run_report.json").read_text())
    assert report["requests"]["made"] == sum(steps.values())
    assert report["requests"]["prompt_tokens"] > 0 and report["requests"]["completion_tokens"] > 0
    assert report["stages"]["chunks"]["kept"] == steps[QUESTION_GENERATION]
    assert set(report["by_source"]) == set(input_documents())
    assert report["wall_seconds"] > 0


def test_second_run_makes_no_request_and_writes_the_same_data(full_run):
    out, _, _, _, config, _ = full_run
    before = dataset_bytes(out)
    with FakeLLMServer() as server:
        config.write_text(config.read_text().replace(_url_in(config), server.base_url))
        result = run_processing(config)
        assert result.returncode == 0, result.stderr
        assert server.count() == 0
    assert dataset_bytes(out) == before
    assert "0 made" in result.stdout


def _url_in(config: Path) -> str:
    import yaml

    return yaml.safe_load(config.read_text())["API"]["BASE_URL"]


def test_killed_run_resumes_to_the_same_datasets(tmp_path, full_run):
    reference = dataset_bytes(full_run[0])
    total_requests = sum(full_run[2].values())
    with FakeLLMServer(latency=0.02) as server:
        config = write_config(tmp_path / "config.yaml", server.base_url, SYSTEM={"CONCURRENCY_LIMIT": 4})
        process = subprocess.Popen(
            [sys.executable, str(REPO / "processing.py"), "--config", str(config), "--no-progress"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while server.count() < total_requests // 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        process.send_signal(signal.SIGKILL)
        process.wait()
        killed_at = server.count()
        assert 0 < killed_at < total_requests
        result = run_processing(config)
        assert result.returncode == 0, result.stderr
        # Only the requests in flight at the kill (at most CONCURRENCY_LIMIT) are asked again.
        assert server.count() - total_requests <= 4
    assert dataset_bytes(tmp_path / "output") == reference


def test_edited_document_redoes_only_its_own_work(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.md").write_text("Verus staking pays rewards to wallets that keep coins online all day.\n", encoding="utf-8")
    (folder / "b.md").write_text("VerusID names are registered on chain and can be revoked by their owner.\n", encoding="utf-8")
    with FakeLLMServer() as server:
        config = write_config(tmp_path / "config.yaml", server.base_url, PATH={"INPUT": str(folder)})
        assert run_processing(config).returncode == 0
        first = server.count()
        (folder / "b.md").write_text("VerusID names are registered on chain and can be recovered by a recovery authority.\n")
        assert run_processing(config).returncode == 0
        assert 0 < server.count() - first < first
        assert all("recovery authority" in r.user or r.step == CONVERSATION for r in server.requests[first:])


@pytest.mark.parametrize("mode,completion", [("api", True), ("cohere", False)])
def test_completion_and_cohere_modes_run_end_to_end(tmp_path, mode, completion):
    with FakeLLMServer(api_key="test-secret-key") as server:
        url = server.cohere_url if mode == "cohere" else server.base_url
        config = write_config(
            tmp_path / "config.yaml", url, SYSTEM={"MODE": mode, "COMPLETION_MODE": completion}
        )
        env_name = "COHERE_API_KEY" if mode == "cohere" else "OPENAI_API_KEY"
        result = run_processing(config, env={env_name: "test-secret-key"})
        assert result.returncode == 0, result.stderr
        paths = {r.path for r in server.requests}
        assert paths == ({"/v2/chat"} if mode == "cohere" else {"/v1/completions"})
        if completion:
            assert all(isinstance(r.body["prompt"], str) for r in server.requests)
    rows = read_jsonl(tmp_path / "output" / SHAREGPT_NO_RAG)
    assert rows
    for path in (tmp_path / "output").rglob("*"):
        if path.is_file():
            assert b"test-secret-key" not in path.read_bytes(), path
    assert "test-secret-key" not in result.stdout + result.stderr


def test_no_server_stops_before_any_work_with_advice(tmp_path):
    config = write_config(tmp_path / "config.yaml", "http://127.0.0.1:9/v1")
    result = run_processing(config)
    assert result.returncode == 2
    assert "no model server answers at http://127.0.0.1:9/v1" in result.stderr
    assert "llama.cpp" in result.stderr and "OPENAI_API_KEY" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "output").exists()


def test_rejected_key_stops_before_any_work(tmp_path):
    with FakeLLMServer(api_key="the-right-key") as server:
        config = write_config(tmp_path / "config.yaml", server.base_url, API={"API_KEY": "a-wrong-key"})
        result = run_processing(config)
        assert result.returncode == 2
        assert "rejected" in result.stderr and "a-wrong-key" not in result.stderr
        assert server.count() == 0


def test_key_from_environment_when_config_is_empty(tmp_path):
    with FakeLLMServer(api_key="env-key") as server:
        config = write_config(tmp_path / "config.yaml", server.base_url, SYSTEM={"USE_SUBSET": True, "SUBSET_SIZE": 1})
        result = run_processing(config, env={"VERUSTOOLKIT_API_KEY": "env-key"})
        assert result.returncode == 0, result.stderr
        assert server.count(QUESTION_GENERATION) == 1  # USE_SUBSET keeps the first chunk only


def test_literal_braces_in_documents_are_data(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    text = (
        "Send to many at once with verus sendcurrency and a list like [{\"address\":\"mike@\",\"amount\":100}] today.\n\n"
        "A prompt placeholder such as {question} or {text} or {data} inside a document stays as it is written here.\n"
    )
    (folder / "braces.md").write_text(text, encoding="utf-8")
    with FakeLLMServer() as server:
        config = write_config(tmp_path / "config.yaml", server.base_url, PATH={"INPUT": str(folder)})
        result = run_processing(config)
        assert result.returncode == 0, result.stderr
        generation = [r for r in server.requests if r.step == QUESTION_GENERATION][0]
        assert '[{"address":"mike@","amount":100}]' in generation.user
        assert "{question} or {text} or {data}" in generation.user
    rag = read_jsonl(tmp_path / "output" / SHAREGPT_RAG)
    assert "{question} or {text} or {data}" in rag[0]["conversations"][0]["value"]


def test_stop_sequences_follow_the_stop_setting(tmp_path):
    with FakeLLMServer() as server:
        config = write_config(tmp_path / "config.yaml", server.base_url, SYSTEM={"STOP": False, "USE_SUBSET": True, "SUBSET_SIZE": 1})
        assert run_processing(config).returncode == 0
        assert server.requests and all("stop" not in r.body for r in server.requests)
        config = write_config(tmp_path / "config.yaml", server.base_url, SYSTEM={"STOP": True, "USE_SUBSET": True, "SUBSET_SIZE": 1}, PATH={"OUTPUT": str(tmp_path / "other")})
        first = server.count()
        assert run_processing(config).returncode == 0
        assert all("### Instruction:" in r.body["stop"] and len(r.body["stop"]) <= 4 for r in server.requests[first:])
        custom = {"STOP": True, "STOP_SEQUENCES": ["<end_of_turn>"], "USE_SUBSET": True, "SUBSET_SIZE": 1}
        config = write_config(tmp_path / "config.yaml", server.base_url, SYSTEM=custom, PATH={"OUTPUT": str(tmp_path / "third")})
        first = server.count()
        assert run_processing(config).returncode == 0
        assert all(r.body["stop"] == ["<end_of_turn>"] for r in server.requests[first:])


@pytest.mark.parametrize("files", [{}, {"empty.md": b"", "image.png": b"\x89PNG\r\n\x1a\n" + bytes(200)}], ids=["no-files", "unreadable"])
def test_a_folder_with_nothing_readable_stops_before_any_work(tmp_path, files):
    folder = tmp_path / "in"
    folder.mkdir()
    for name, data in files.items():
        (folder / name).write_bytes(data)
    with FakeLLMServer() as server:
        config = write_config(tmp_path / "config.yaml", server.base_url, PATH={"INPUT": str(folder)})
        result = run_processing(config)
        assert server.count() == 0
    assert result.returncode == 2
    assert f"Input folder {folder}" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "output").exists()


def test_duplicate_chunks_are_counted_in_the_report(tmp_path):
    corpus = tmp_path / "docs"
    corpus.mkdir()
    page = (REPO / "raw_text_input" / "verus_overview.md").read_text(encoding="utf-8")
    (corpus / "a.md").write_text(page, encoding="utf-8")
    (corpus / "copy.md").write_text(page, encoding="utf-8")
    with FakeLLMServer() as server:
        config = write_config(tmp_path / "config.yaml", server.base_url, PATH={"INPUT": str(corpus)})
        result = run_processing(config)
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "output" / "run_report.json").read_text())
    assert report["duplicate_chunks_skipped"] == report["stages"]["chunks"]["kept"] > 0
    assert "duplicate chunks skipped" in result.stdout
