"""Runs, checks and results in the WebUI (webui/run_controller.py, checks.py, results.py, rendering.py),
against the fake model server over HTTP, without a browser."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from generation_functions.datasets import MASTER_LIST, RUN_REPORT, SHAREGPT_NO_RAG, SHAREGPT_RAG
from generation_functions.report import summary_text
from tests.fake_llm_server import FakeLLMServer
from tests.webui_helpers import DOCUMENT, FIELDS, TOSSED_DOCUMENT, settings_data, widget_values, with_value
from webui import checks, rendering, results
from webui.run_controller import NOTHING_RAN, RESUME_HINT, RunController, failure_message, prepare_run
from webui.settings_form import settings_from_values

# An answer that would be a huge heading, and markup that would run, if model text were rendered as Markdown/HTML.
HOSTILE_DOCUMENT = "# Escapes\n\n<script>alert('verus')</script> A basket of currencies keeps reserves in several coins at once.\n"


def _wait_until(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def _start(controller: RunController, data: dict, config_path: Path) -> None:
    config, prompts, problem = prepare_run(data, config_path)
    assert problem == ""
    assert controller.start(config, prompts) == "Run started."


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """One run through the controller against the fake server: a tossed pair, and hostile text."""
    tmp_path = tmp_path_factory.mktemp("finished_run")
    with FakeLLMServer() as server:
        data, config_path = settings_data(tmp_path, server.base_url)
        (tmp_path / "input" / "verusid.md").write_text(DOCUMENT, encoding="utf-8")
        (tmp_path / "input" / "baskets.md").write_text(TOSSED_DOCUMENT, encoding="utf-8")
        (tmp_path / "input" / "escapes.md").write_text(HOSTILE_DOCUMENT, encoding="utf-8")
        controller = RunController()
        _start(controller, data, config_path)
        assert controller.wait(120)
        yield controller.snapshot(), tmp_path / "output", data, config_path


def test_a_run_goes_through_run_pipeline_and_reports(finished_run):
    snapshot, output_dir, _, _ = finished_run
    assert snapshot.state == "finished", snapshot.message
    report = json.loads((output_dir / RUN_REPORT).read_text())
    assert snapshot.report == report
    assert report["funnel"]["conversations"] == len((output_dir / MASTER_LIST).read_text().splitlines()) > 0
    assert all(done == total > 0 for done, total in snapshot.progress.values())
    assert any("run finished" in line for line in snapshot.log_lines)
    assert f"conversations: {report['funnel']['conversations']}," in rendering.status_markdown(snapshot)


def test_budget_set_in_the_form_caps_the_run(tmp_path):
    """BUDGET from the form reaches the run (it used to be dropped: MAX_REQUESTS 5 made 92 requests)."""
    with FakeLLMServer() as server:
        data, config_path = settings_data(tmp_path, server.base_url, SYSTEM={"CONCURRENCY_LIMIT": 2})
        for i in range(4):
            (tmp_path / "input" / f"doc{i}.md").write_text(DOCUMENT.replace("VerusID", f"Identity{i}"), encoding="utf-8")
        capped = with_value(data, "BUDGET.MAX_REQUESTS", 5.0)
        controller = RunController()
        _start(controller, capped, config_path)
        assert controller.wait(60)
        snapshot = controller.snapshot()
        assert snapshot.state == "failed" and "BUDGET.MAX_REQUESTS" in snapshot.message, snapshot.message
        assert server.count() <= 5 + 2  # the cap, plus what was in flight when it was reached


def test_a_run_can_be_cancelled_and_resumed(tmp_path):
    with FakeLLMServer(latency=0.05) as server:
        data, config_path = settings_data(tmp_path, server.base_url, SYSTEM={"CONCURRENCY_LIMIT": 2})
        for i in range(6):
            (tmp_path / "input" / f"doc{i}.md").write_text(DOCUMENT.replace("VerusID", f"Identity{i}"), encoding="utf-8")
        controller = RunController()
        _start(controller, data, config_path)
        _wait_until(lambda: controller.snapshot().progress["chunks"][0] >= 1)
        assert controller.cancel() == "Cancelling..."
        assert controller.wait(30)
        cancelled = controller.snapshot()
        assert cancelled.state == "cancelled" and RESUME_HINT in cancelled.message
        assert controller.cancel() == "No run is going."
        _start(controller, data, config_path)
        assert controller.wait(120)
        resumed = controller.snapshot()
    assert resumed.state == "finished", resumed.message
    assert resumed.report["requests"]["reused"] > 0  # work done before the cancel was kept


def test_only_one_run_at_a_time(tmp_path):
    with FakeLLMServer(latency=0.2) as server:
        data, config_path = settings_data(tmp_path, server.base_url)
        (tmp_path / "input" / "doc.md").write_text(DOCUMENT, encoding="utf-8")
        controller = RunController()
        _start(controller, data, config_path)
        config, prompts, _ = prepare_run(data, config_path)
        assert "already going" in controller.start(config, prompts)
        controller.cancel()
        assert controller.wait(30)


def test_a_failed_start_does_not_claim_finished_work_is_kept(tmp_path):
    data, config_path = settings_data(tmp_path, "http://127.0.0.1:9/v1")
    (tmp_path / "input" / "doc.md").write_text(DOCUMENT, encoding="utf-8")
    controller = RunController()
    _start(controller, data, config_path)
    assert controller.wait(60)
    snapshot = controller.snapshot()
    assert snapshot.state == "failed"
    assert snapshot.message.startswith("no model server answers at http://127.0.0.1:9/v1")
    assert "llama-server" in snapshot.message
    assert RESUME_HINT not in snapshot.message and snapshot.message.endswith(NOTHING_RAN)


def test_a_run_is_not_started_with_bad_settings_or_prompts(tmp_path):
    data, config_path = settings_data(tmp_path)
    config, _, problem = prepare_run(with_value(data, "PATH.INPUT", "missing"), config_path)
    assert config is None and problem.startswith("PATH.INPUT folder")
    broken_prompts = tmp_path / "broken_prompts"
    broken_prompts.mkdir()
    (broken_prompts / "check_answer.yaml").write_text("- role: system\n  content: {unknown_placeholder}\n")
    config, _, problem = prepare_run(with_value(data, "PATH.PROMPTS", str(broken_prompts)), config_path)
    assert config is None and "check_answer" in problem


def test_failure_messages_match_processing_py():
    from generation_functions.errors import EngineError, InputError, RunAborted

    assert failure_message(InputError("no text")) == "no text"
    assert failure_message(EngineError("HTTP 401")) == f"the run stopped: HTTP 401\n{RESUME_HINT}."
    assert failure_message(RunAborted("outage")).startswith("the run stopped: outage")
    full = OSError(28, "No space left on device", "/data/output/chunk_results/x.json")
    assert failure_message(full).startswith(
        "the run stopped: a file operation failed (No space left on device): /data/output/chunk_results/x.json\n"
    )


def test_snapshot_before_any_run_is_idle():
    snapshot = RunController().snapshot()
    assert snapshot.state == "idle" and not snapshot.active and snapshot.report is None


# ---------------------------------------------------------------- before spending


def test_test_server_pings_each_model_as_check_does(tmp_path):
    with FakeLLMServer() as server:
        data, config_path = settings_data(tmp_path, server.base_url)
        config, _, _ = prepare_run(data, config_path)
        result = checks.test_server(config)
        assert server.count() == 2 and all(r.body["max_tokens"] <= 8 for r in server.requests)
    assert not result.problems and any("reachable" in line for line in result.lines)
    config, _, _ = prepare_run(with_value(data, "API.BASE_URL", "http://127.0.0.1:9/v1"), config_path)
    assert "no model server answers" in checks.test_server(config).problems[0]


def test_estimate_of_a_finished_output_is_no_new_request(finished_run):
    _, _, data, config_path = finished_run
    config, prompts, _ = prepare_run(data, config_path)
    result = checks.estimate(config, prompts)
    assert any("new requests: 0" in line for line in result.lines), result.lines
    fresh, _, _ = prepare_run(with_value(data, "PATH.OUTPUT", "elsewhere"), config_path)
    assert any("new requests: " in line and "if every vote agrees" in line for line in checks.estimate(fresh, prompts).lines)


# ---------------------------------------------------------------- results


def test_every_pair_has_its_fate_and_can_be_found_by_text_and_fate(finished_run):
    _, output_dir, _, _ = finished_run
    fates = results.pair_fates(results.load_chunk_results(output_dir))
    report = json.loads((output_dir / RUN_REPORT).read_text())
    assert len(fates) == report["funnel"]["pairs_generated"]
    assert sum(f.kept for f in fates) == report["funnel"]["after_repair"]
    tossed = results.filter_pairs(fates, fate=results.TOSSED)
    assert tossed and {f.fate for f in tossed} == {"tossed at question check: voted irrelevant"}
    assert "tossed at question check: voted irrelevant" in results.fate_choices(fates)
    assert results.filter_pairs(fates, "no such words here") == []
    assert results.filter_pairs(fates, "[IRRELEVANT]") == tossed  # any case
    found = results.filter_pairs(fates, "verusid number 1 ", results.KEPT)
    assert found and all("VerusID number 1 " in f.question + f.answer for f in found)
    assert results.filter_pairs(fates, "baskets.md", results.KEPT) == []


def test_training_rows_are_the_rows_the_datasets_hold(finished_run):
    _, output_dir, _, _ = finished_run
    chunk_results = results.load_chunk_results(output_dir)
    no_rag = [json.loads(line) for line in (output_dir / SHAREGPT_NO_RAG).read_text().splitlines()]
    rag = [json.loads(line) for line in (output_dir / SHAREGPT_RAG).read_text().splitlines()]
    shown = [results.training_rows(output_dir, key) for _, key in results.conversation_choices(chunk_results)]
    assert sorted(json.dumps(r.no_rag) for r in shown) == sorted(json.dumps(r) for r in no_rag)
    assert sorted(json.dumps(r.rag) for r in shown) == sorted(json.dumps(r) for r in rag)
    html = rendering.training_rows_html(shown[0])
    assert "simplified_data_rag.jsonl" in html and "system" in html
    without = next(r["key"] for r in chunk_results if not r.get("conversation"))
    assert results.training_rows(output_dir, without).no_rag is None


def test_model_text_is_shown_as_text_never_as_markup(finished_run):
    _, output_dir, _, _ = finished_run
    chunk_results = results.load_chunk_results(output_dir)
    escapes = next(r for r in chunk_results if r["source"] == "escapes.md")
    conversation = rendering.conversation_html(escapes["conversation"])
    pairs = rendering.pairs_html(results.pair_fates([escapes]), 1)
    for html in (conversation, pairs, rendering.text(escapes["chunk"])):
        assert "<script>" not in html and "&lt;script&gt;" in html
    heading = rendering.conversation_html([["User", "q"], ["AI Assistant", "# Not a heading\n\nsecond line"]])
    assert "<h1" not in heading and "# Not a heading\n\nsecond line" in heading and "vt-text" in heading


def test_chunk_results_are_only_read_by_their_key(finished_run):
    _, output_dir, _, _ = finished_run
    assert results.read_chunk_result(output_dir, "../run_report") is None
    assert results.read_chunk_result(output_dir, "") is None


def test_results_show_only_the_latest_runs_chunks(finished_run, tmp_path):
    _, output_dir, _, _ = finished_run
    copy = tmp_path / "output"
    shutil.copytree(output_dir, copy)
    stale = dict(json.loads(next((copy / "chunk_results").glob("*.json")).read_text()), key="0" * 64, source="old.md")
    (copy / "chunk_results" / f"{'0' * 64}.json").write_text(json.dumps(stale))
    assert {r["source"] for r in results.load_chunk_results(copy)} == {"verusid.md", "baskets.md", "escapes.md"}
    (copy / "chunk_index.json").unlink()  # an OUTPUT from before the index: everything stored is shown
    assert "old.md" in {r["source"] for r in results.load_chunk_results(copy)}


# ---------------------------------------------------------------- progress and the report


def test_progress_shows_each_stage():
    shown = rendering.progress_html({"chunks": (2, 4), "pairs": (3, 9), "conversations": (0, 0)})
    assert "question generation: 2 / 4 chunks" in shown and "width:50.0%" in shown
    assert "checking pairs: 3 / 9 pairs" in shown and "conversations: 0 / 0 conversations" in shown


def test_the_funnel_is_of_pairs_alone_with_chunks_apart_and_the_summary_s_labels(finished_run):
    _, output_dir, _, _ = finished_run
    report = results.read_run_report(output_dir)
    chart = rendering.funnel_html(report)
    pairs_part, chunks_part = chart.split('data-funnel="chunks"')
    labels = ["pairs generated", "passed question check", "passed answer check", "kept after repair"]
    positions = [pairs_part.index(f"{label}: <b>") for label in labels]
    assert positions == sorted(positions) and "chunks:" not in pairs_part and "conversations:" not in pairs_part
    assert "chunks: <b>" in chunks_part and "conversations: <b>" in chunks_part
    summary = summary_text(report)
    for label in [*labels, "chunks", "conversations"]:
        assert f"{label}: " in summary
    counts = [int(pairs_part.split(f"{label}: <b>")[1].split("<")[0]) for label in labels]
    assert counts == sorted(counts, reverse=True) and counts[1] < counts[0]  # a pair was voted irrelevant
    assert "No run report yet" in rendering.funnel_html(None)


def test_a_skipped_question_check_is_left_out_of_the_funnel():
    from generation_functions.report import pair_funnel

    report = {
        "funnel": {"chunks": 2, "pairs_generated": 6, "passed_checks": 5, "after_repair": 4, "conversations": 2},
        "stages": {"question_check": {"kept": 0, "tossed": 0}, "answer_check": {"kept": 5, "tossed": 1}},
    }
    assert [label for label, _ in pair_funnel(report)] == ["pairs generated", "passed answer check", "kept after repair"]


def test_form_values_reach_the_run_unchanged(tmp_path):
    """Every key the form holds goes to the run: the settings prepared from the widgets are the file's."""
    data, config_path = settings_data(tmp_path, BUDGET={"MAX_TOKENS": 1234, "PRICES": {"small-model": {"PROMPT": 1, "COMPLETION": 2}}})
    config, _, problem = prepare_run(settings_from_values(widget_values(data), FIELDS, stored=data), config_path)
    assert problem == "" and config.budget.MAX_TOKENS == 1234 and config.budget.PRICES["small-model"].COMPLETION == 2
