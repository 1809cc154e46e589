"""The WebUI's handlers (generation_functions/webui_handlers.py), without a browser."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest
import yaml

from generation_functions import webui_handlers as ui
from generation_functions.config import ApiSection, ConfigError, PathSection, SkipSection, SystemSection, load_config
from generation_functions.datasets import MASTER_LIST, RUN_REPORT, SHAREGPT_NO_RAG
from tests.conftest import REPO, write_config
from tests.fake_llm_server import FakeLLMServer

FIELDS = ui.setting_fields()
BY_NAME = {f.name: f for f in FIELDS}

DOCUMENT = "# VerusID\n\n" + " ".join(
    f"VerusID number {i} is a self-sovereign identity that can hold funds and sign messages on the Verus network."
    for i in range(12)
)
# The fake server votes a question IRRELEVANT when it carries this marker.
TOSSED_DOCUMENT = "# Baskets\n\n[irrelevant] Basket currencies hold reserves of several other currencies at once in Verus.\n"


def settings_data(tmp_path: Path, base_url: str = "http://127.0.0.1:9/v1", **sections) -> tuple[dict, Path]:
    """A config dict (and the config path it belongs to) with folders in tmp_path."""
    config_path = write_config(tmp_path / "config.yaml", base_url, PATH={"INPUT": "input", "OUTPUT": "output"}, **sections)
    (tmp_path / "input").mkdir(exist_ok=True)
    return yaml.safe_load(config_path.read_text()), config_path


def widget_values(data: dict) -> list:
    return ui.values_from_settings(data, FIELDS)


def with_value(data: dict, name: str, value) -> dict:
    values = widget_values(data)
    values[[f.name for f in FIELDS].index(name)] = value
    return ui.settings_from_values(values, FIELDS)


# ---------------------------------------------------------------- widgets from the config models


def test_every_config_key_gets_a_widget_in_config_order():
    expected = [
        f"{section}.{key}"
        for section, model in (("API", ApiSection), ("PATH", PathSection), ("SYSTEM", SystemSection), ("SKIP", SkipSection))
        for key in model.model_fields
    ]
    assert [f.name for f in FIELDS] == expected


@pytest.mark.parametrize(
    "name, kind",
    [
        ("API.API_KEY", "secret"),
        ("API.BASE_URL", "url_list"),
        ("API.LOGICAL_MODEL", "text"),
        ("PATH.INPUT", "text"),
        ("SYSTEM.CHUNK_SIZE", "int"),
        ("SYSTEM.REQUEST_TIMEOUT", "float"),
        ("SYSTEM.COMPLETION_MODE", "bool"),
        ("SYSTEM.MODE", "choice"),
        ("SYSTEM.FINAL_ASSISTANT_PROMPT_RAG", "long_text"),
        ("SYSTEM.FINAL_ASSISTANT_PROMPT_NO_RAG", "long_text"),
        ("SKIP.QUESTION_CHECK", "bool"),
        ("SYSTEM.STOP_SEQUENCES", "string_list"),
    ],
)
def test_each_key_gets_the_widget_that_fits_its_type(name, kind):
    assert BY_NAME[name].kind == kind


def test_choices_and_bounds_come_from_the_models():
    assert BY_NAME["SYSTEM.MODE"].choices == ("api", "cohere")
    assert BY_NAME["SYSTEM.CHUNK_SIZE"].bounds == "at least 200, at most 1000000"
    assert BY_NAME["SYSTEM.REQUEST_TIMEOUT"].bounds == "more than 0, at most 3600"
    assert BY_NAME["API.LOGICAL_MODEL"].bounds == "not empty"
    assert BY_NAME["API.LOGICAL_MODEL"].required and not BY_NAME["API.API_KEY"].required


def test_widget_help_comes_from_the_readme_table():
    help_texts = ui.help_from_readme((REPO / "README.md").read_text(encoding="utf-8"))
    assert "chunk" in help_texts["SYSTEM.CHUNK_SIZE"].lower()
    assert help_texts["SYSTEM.USE_SUBSET"] == help_texts["SYSTEM.SUBSET_SIZE"]  # one row names both keys
    info = ui.widget_info(BY_NAME["SYSTEM.CHUNK_SIZE"], help_texts)
    assert info.endswith("Allowed: at least 200, at most 1000000.")


# ---------------------------------------------------------------- values, validation, saving


def test_shipped_config_round_trips_through_the_widgets_unchanged():
    config_path = REPO / "config.yaml"
    data = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    round_tripped = ui.settings_from_values(widget_values(data), FIELDS)
    assert ui.validate_settings(round_tripped, config_path) == load_config(config_path)


def test_widget_values_become_config_values():
    url = BY_NAME["API.BASE_URL"]
    assert ui.setting_value(url, " http://a/v1 \n") == "http://a/v1"
    assert ui.setting_value(url, "http://a/v1\n\nhttp://b/v1") == ["http://a/v1", "http://b/v1"]
    assert ui.setting_value(BY_NAME["SYSTEM.CHUNK_SIZE"], 1900.0) == 1900
    assert isinstance(ui.setting_value(BY_NAME["SYSTEM.CHUNK_SIZE"], 1900.0), int)
    assert ui.setting_value(BY_NAME["SYSTEM.CHUNK_SIZE"], 2.5) == 2.5  # not rounded: pydantic says why it is wrong
    assert ui.setting_value(BY_NAME["SYSTEM.REQUEST_TIMEOUT"], 180) == 180.0
    assert ui.setting_value(BY_NAME["API.LOGICAL_MODEL"], "  m  ") == "m"
    stops = BY_NAME["SYSTEM.STOP_SEQUENCES"]
    assert ui.setting_value(stops, "<end_of_turn>\n\n ###\n") == ["<end_of_turn>", " ###"]
    assert ui.setting_value(stops, "") == []


def test_values_the_widgets_cannot_show_fall_back_to_defaults():
    data = {"SYSTEM": {"CHUNK_SIZE": "big", "MODE": "openai", "STOP": "yes"}, "API": {"BASE_URL": ["http://a", "http://b"]}}
    values = dict(zip(BY_NAME, widget_values(data)))
    assert values["SYSTEM.CHUNK_SIZE"] == 1900
    assert values["SYSTEM.MODE"] == "api"
    assert values["SYSTEM.STOP"] is True
    assert values["API.BASE_URL"] == "http://a\nhttp://b"
    assert values["SYSTEM.STOP_SEQUENCES"] == "### Instruction:\n<|eot_id|>\n<|im_end|>\n</s>"
    assert values["API.LOGICAL_MODEL"] == ""  # required, no default: validation names it


@pytest.mark.parametrize(
    "name, value, expected",
    [
        ("SYSTEM.CHUNK_SIZE", 50, "SYSTEM.CHUNK_SIZE = 50: Input should be greater than or equal to 200"),
        ("SYSTEM.CHUNK_SIZE", 2.5, "SYSTEM.CHUNK_SIZE = 2.5: Input should be a valid integer"),
        ("SYSTEM.CHUNK_SIZE", None, "SYSTEM.CHUNK_SIZE = None"),
        ("SYSTEM.DOUBLE_CHECK_COUNTER", 0, "SYSTEM.DOUBLE_CHECK_COUNTER"),
        ("API.BASE_URL", "localhost:8080", "API.BASE_URL"),
        ("API.LOGICAL_MODEL", "", "API.LOGICAL_MODEL"),
        ("PATH.INPUT", "no_such_folder", "PATH.INPUT folder"),
    ],
)
def test_validation_gives_processing_py_s_message(tmp_path, name, value, expected):
    """The message shown in the UI is the one `python processing.py` prints for the same config file."""
    data, config_path = settings_data(tmp_path)
    broken = with_value(data, name, value)
    problem = ui.settings_problem(broken, config_path)
    assert expected in problem
    config_path.write_text(yaml.safe_dump(broken), encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        load_config(config_path)
    assert str(raised.value) == problem


def test_cohere_with_completion_mode_is_refused_as_in_processing(tmp_path):
    data, config_path = settings_data(tmp_path)
    broken = with_value(with_value(data, "SYSTEM.MODE", "cohere"), "SYSTEM.COMPLETION_MODE", True)
    assert "SYSTEM.COMPLETION_MODE must be false" in ui.settings_problem(broken, config_path)


def test_reading_the_config_file_reports_problems_but_still_opens(tmp_path):
    data, missing = ui.read_settings_file(tmp_path / "absent.yaml")
    assert data == {} and "does not exist" in missing
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("API: [unclosed", encoding="utf-8")
    assert ui.read_settings_file(bad_yaml)[1].startswith("cannot read")
    _, config_path = settings_data(tmp_path, SYSTEM={"CHUNK_SZE": 100})
    data, problem = ui.read_settings_file(config_path)
    assert data["SYSTEM"]["CHUNK_SZE"] == 100
    assert "SYSTEM.CHUNK_SZE is not a known key (did you mean CHUNK_SIZE?)" in problem


def test_saving_writes_a_config_that_loads_to_the_same_settings(tmp_path):
    data, config_path = settings_data(tmp_path)
    edited = with_value(data, "SYSTEM.FINAL_ASSISTANT_PROMPT_RAG", "Line one.\nLine two:\n\n{data}")
    edited = with_value(edited, "API.BASE_URL", "http://127.0.0.1:1/v1\nhttp://127.0.0.1:2/v1")
    message = ui.save_settings(edited, config_path)
    assert message.startswith("Saved")
    saved = load_config(config_path)
    assert saved == ui.validate_settings(edited, config_path)
    assert saved.system.FINAL_ASSISTANT_PROMPT_RAG == "Line one.\nLine two:\n\n{data}"
    assert saved.base_urls == ["http://127.0.0.1:1/v1", "http://127.0.0.1:2/v1"]
    assert "FINAL_ASSISTANT_PROMPT_RAG: |" in config_path.read_text(encoding="utf-8")


def test_invalid_settings_are_not_saved(tmp_path):
    data, config_path = settings_data(tmp_path)
    before = config_path.read_bytes()
    message = ui.save_settings(with_value(data, "SYSTEM.CHUNK_SIZE", 5), config_path)
    assert message.startswith("Not saved: ") and "SYSTEM.CHUNK_SIZE" in message
    assert config_path.read_bytes() == before


def test_building_the_app_writes_nothing_to_the_config(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")  # no network here
    pytest.importorskip("gradio")
    from app import build_app, parse_args

    _, config_path = settings_data(tmp_path)
    before = config_path.read_bytes(), config_path.stat().st_mtime_ns
    build_app(config_path)
    assert (config_path.read_bytes(), config_path.stat().st_mtime_ns) == before
    assert parse_args([]).host == "127.0.0.1"


def test_relative_paths_resolve_from_the_config_folder(tmp_path):
    assert ui.resolve_setting_path("./docs", tmp_path / "c.yaml") == (tmp_path / "docs").resolve()
    assert ui.resolve_setting_path("/abs/x", tmp_path / "c.yaml") == Path("/abs/x")


# ---------------------------------------------------------------- uploads


@pytest.mark.parametrize(
    "name, expected",
    [
        ("notes.md", "notes.md"),
        ("../../etc/passwd", "passwd"),
        ("..\\..\\windows\\win.ini", "win.ini"),
        (".bashrc", "bashrc"),
        ("..", "upload"),
        ("", "upload"),
        ("a b?*<>|.md", "a b_.md"),
        ("na\x00me.txt", "na_me.txt"),
        ("Vérus whitepaper.pdf", "Vérus whitepaper.pdf"),
        ("-rf.md", "rf.md"),
    ],
)
def test_file_names_are_sanitised(name, expected):
    assert ui.sanitize_filename(name) == expected


def test_long_names_are_cut_but_keep_their_extension():
    name = ui.sanitize_filename("é" * 300 + ".md")
    assert name.endswith(".md") and len(name.encode("utf-8")) <= ui.MAX_NAME_BYTES


def _upload(tmp_path: Path, name: str, content: str) -> Path:
    folder = tmp_path / "uploads" / str(len(list((tmp_path / "uploads").glob("*"))) if (tmp_path / "uploads").exists() else 0)
    folder.mkdir(parents=True)
    path = folder / name
    path.write_text(content, encoding="utf-8")
    return path


def test_uploads_land_inside_the_input_folder_under_clean_names(tmp_path):
    input_dir = tmp_path / "input" / "nested"  # created on first upload
    stored = ui.store_uploads([_upload(tmp_path, ".hidden notes.md", "a"), _upload(tmp_path, "doc;rm -rf.txt", "b")], input_dir)
    assert [p.name for p in stored] == ["hidden notes.md", "doc_rm -rf.txt"]
    assert all(p.parent == input_dir.resolve() for p in stored)
    assert ui.list_input_files(input_dir) == ["doc_rm -rf.txt", "hidden notes.md"]


def test_an_upload_never_replaces_or_writes_through_an_existing_file(tmp_path):
    input_dir = tmp_path / "input"
    input_dir.mkdir()
    outside = tmp_path / "outside.md"
    outside.write_text("keep me", encoding="utf-8")
    (input_dir / "doc.md").symlink_to(outside)
    (input_dir / "other.md").write_text("original", encoding="utf-8")
    stored = ui.store_uploads([_upload(tmp_path, "doc.md", "new"), _upload(tmp_path, "other.md", "changed")], input_dir)
    assert [p.name for p in stored] == ["doc-1.md", "other-1.md"]
    assert outside.read_text() == "keep me" and (input_dir / "other.md").read_text() == "original"


def test_uploading_the_same_file_twice_keeps_one_copy(tmp_path):
    input_dir = tmp_path / "input"
    first = ui.store_uploads([_upload(tmp_path, "doc.md", "same")], input_dir)
    second = ui.store_uploads([_upload(tmp_path, "doc.md", "same")], input_dir)
    assert first == second and ui.list_input_files(input_dir) == ["doc.md"]


def test_input_listing_says_when_the_folder_is_missing_or_empty(tmp_path):
    assert "does not exist yet" in ui.input_files_markdown(tmp_path / "nope")
    assert "is empty" in ui.input_files_markdown(tmp_path)


# ---------------------------------------------------------------- prompt sets


def test_prompt_sets_are_folders_that_hold_prompt_files(tmp_path):
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "check_answer.yaml").write_text("[]")
    (tmp_path / "prompts_vision_paper").mkdir()
    (tmp_path / "prompts_vision_paper" / "x.txt").write_text("x")
    (tmp_path / "prompt_overrides" / "api_reference").mkdir(parents=True)
    (tmp_path / "prompt_overrides" / "api_reference" / "check_question.yaml").write_text("[]")
    (tmp_path / "prompt_overrides" / "empty").mkdir()
    found = [p.relative_to(tmp_path).as_posix() for p in ui.list_prompt_sets(tmp_path)]
    assert found == ["prompts", "prompts_vision_paper", "prompt_overrides/api_reference"]


def test_the_repository_prompt_sets_are_offered():
    labels = [label for label, _ in ui.prompt_set_choices(REPO, REPO / "config.yaml")]
    assert labels[:1] == ["prompts"] and "prompts_vision_paper" in labels
    assert ui.prompt_set_choices(REPO, REPO / "config.yaml")[0][1] == "./prompts"


def test_a_prompt_set_outside_the_config_folder_is_named_absolutely(tmp_path):
    assert ui.prompt_set_setting(REPO / "prompts", tmp_path / "config.yaml") == str((REPO / "prompts").resolve())


# ---------------------------------------------------------------- runs


def _wait_until(predicate, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def _start(controller: ui.RunController, data: dict, config_path: Path) -> None:
    config, prompts, problem = ui.prepare_run(data, config_path)
    assert problem == ""
    assert controller.start(config, prompts) == "Run started."


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    """One run through the controller against the fake server, with one tossed pair."""
    tmp_path = tmp_path_factory.mktemp("finished_run")
    with FakeLLMServer() as server:
        data, config_path = settings_data(tmp_path, server.base_url)
        (tmp_path / "input" / "verusid.md").write_text(DOCUMENT, encoding="utf-8")
        (tmp_path / "input" / "baskets.md").write_text(TOSSED_DOCUMENT, encoding="utf-8")
        controller = ui.RunController()
        _start(controller, data, config_path)
        assert controller.wait(120)
    return controller.snapshot(), tmp_path / "output"


def test_a_run_goes_through_run_pipeline_and_reports(finished_run):
    snapshot, output_dir = finished_run
    assert snapshot.state == "finished", snapshot.message
    report = json.loads((output_dir / RUN_REPORT).read_text())
    assert snapshot.report == report
    assert report["funnel"]["conversations"] == len((output_dir / MASTER_LIST).read_text().splitlines()) > 0
    assert all(done == total > 0 for done, total in snapshot.progress.values())
    assert any("run finished" in line for line in snapshot.log_lines)
    assert any("Run summary" in line for line in snapshot.log_lines)
    assert f"conversations: {report['funnel']['conversations']}," in ui.status_markdown(snapshot)


def test_results_show_conversations_with_pairs_chunk_and_tossed_reasons(finished_run):
    _, output_dir = finished_run
    results = ui.load_chunk_results(output_dir)
    choices = ui.conversation_choices(results)
    assert len(choices) == json.loads((output_dir / RUN_REPORT).read_text())["funnel"]["conversations"]
    label, key = next(c for c in choices if c[0].startswith("verusid.md"))
    result = ui.read_chunk_result(output_dir, key)
    messages = ui.conversation_messages(result)
    assert {m["role"] for m in messages} == {"user", "assistant"}
    assert len(ui.pair_rows(result)) == len(result["pairs"]) and f"{len(result['pairs'])} pairs" in label
    assert "VerusID number 3" in ui.chunk_text(result)
    tossed = ui.tossed_pair_rows(results)
    assert tossed and tossed[0][0] == "baskets.md" and tossed[0][2:4] == ["question_check", "voted irrelevant"]
    assert "[irrelevant]" in tossed[0][4]


def test_chunk_results_are_only_read_by_their_key(finished_run):
    _, output_dir = finished_run
    assert ui.read_chunk_result(output_dir, "../run_report") is None
    assert ui.read_chunk_result(output_dir, "") is None


def test_every_output_file_is_offered_for_download(finished_run, tmp_path):
    _, output_dir = finished_run
    files = ui.output_files(output_dir)
    assert {p.name for p in files} >= {SHAREGPT_NO_RAG, MASTER_LIST, RUN_REPORT}
    staged = ui.stage_downloads(files, tmp_path / "downloads")
    assert [Path(p).read_bytes() for p in staged] == [p.read_bytes() for p in files]
    again = ui.stage_downloads(files, tmp_path / "downloads")  # restaging replaces, never fails
    assert again == staged


def test_a_run_can_be_cancelled_and_resumed(tmp_path):
    with FakeLLMServer(latency=0.05) as server:
        data, config_path = settings_data(tmp_path, server.base_url, SYSTEM={"CONCURRENCY_LIMIT": 2})
        for i in range(6):
            (tmp_path / "input" / f"doc{i}.md").write_text(DOCUMENT.replace("VerusID", f"Identity{i}"), encoding="utf-8")
        controller = ui.RunController()
        _start(controller, data, config_path)
        _wait_until(lambda: controller.snapshot().progress["chunks"][0] >= 1)
        assert controller.cancel() == "Cancelling..."
        assert controller.wait(30)
        cancelled = controller.snapshot()
        assert cancelled.state == "cancelled" and ui.RESUME_HINT in cancelled.message
        assert controller.cancel() == "No run is going."
        made_before = server.count()
        _start(controller, data, config_path)
        assert controller.wait(120)
        resumed = controller.snapshot()
    assert resumed.state == "finished", resumed.message
    assert resumed.report["requests"]["reused"] > 0  # work done before the cancel was kept
    assert made_before > 0


def test_only_one_run_at_a_time(tmp_path):
    with FakeLLMServer(latency=0.2) as server:
        data, config_path = settings_data(tmp_path, server.base_url)
        (tmp_path / "input" / "doc.md").write_text(DOCUMENT, encoding="utf-8")
        controller = ui.RunController()
        _start(controller, data, config_path)
        config, prompts, _ = ui.prepare_run(data, config_path)
        assert "already going" in controller.start(config, prompts)
        controller.cancel()
        assert controller.wait(30)


def test_an_unreachable_server_fails_with_processing_py_s_advice(tmp_path):
    data, config_path = settings_data(tmp_path, "http://127.0.0.1:9/v1")
    (tmp_path / "input" / "doc.md").write_text(DOCUMENT, encoding="utf-8")
    controller = ui.RunController()
    _start(controller, data, config_path)
    assert controller.wait(60)
    snapshot = controller.snapshot()
    assert snapshot.state == "failed"
    assert snapshot.message.startswith("no model server answers at http://127.0.0.1:9/v1")
    assert "llama-server" in snapshot.message
    assert "Failed" in ui.status_markdown(snapshot)


def test_a_run_is_not_started_with_bad_settings_or_prompts(tmp_path):
    data, config_path = settings_data(tmp_path)
    config, _, problem = ui.prepare_run(with_value(data, "PATH.INPUT", "missing"), config_path)
    assert config is None and "PATH.INPUT folder" in problem
    broken_prompts = tmp_path / "broken_prompts"
    broken_prompts.mkdir()
    (broken_prompts / "check_answer.yaml").write_text("- role: system\n  content: {unknown_placeholder}\n")
    config, _, problem = ui.prepare_run(with_value(data, "PATH.PROMPTS", str(broken_prompts)), config_path)
    assert config is None and "check_answer" in problem


def test_failure_messages_match_processing_py():
    from generation_functions.errors import EngineError, InputError, RunAborted

    assert ui.failure_message(InputError("no text")) == "no text"
    assert ui.failure_message(EngineError("HTTP 401")) == f"the run stopped: HTTP 401\n{ui.RESUME_HINT}"
    assert ui.failure_message(RunAborted("outage")).startswith("the run stopped: outage")
    full = OSError(28, "No space left on device", "/data/output/chunk_results/x.json")
    assert ui.failure_message(full).startswith(
        "the run stopped: a file operation failed (No space left on device): /data/output/chunk_results/x.json\n"
    )


def test_snapshot_before_any_run_is_idle():
    snapshot = ui.RunController().snapshot()
    assert snapshot.state == "idle" and not snapshot.active and snapshot.report is None


# ---------------------------------------------------------------- showing progress and the report


def test_progress_shows_each_stage():
    shown = ui.progress_html({"chunks": (2, 4), "pairs": (3, 9), "conversations": (0, 0)})
    assert "question generation: 2 / 4 chunks" in shown and "width:50.0%" in shown
    assert "checking pairs: 3 / 9 pairs" in shown and "conversations: 0 / 0 conversations" in shown


def test_funnel_chart_has_the_five_steps_in_order():
    report = {"funnel": {"chunks": 4, "pairs_generated": 12, "passed_checks": 9, "after_repair": 8, "conversations": 3}}
    assert ui.funnel_rows(report) == [
        ("chunks", 4),
        ("pairs generated", 12),
        ("passed checks", 9),
        ("repaired", 8),
        ("conversations", 3),
    ]
    chart = ui.funnel_html(report)
    positions = [chart.index(f"{label}: <b>{count}</b>") for label, count in ui.funnel_rows(report)]
    assert positions == sorted(positions)
    assert 'style="width:100.0%"' in chart  # the largest step fills the row
    assert "No run report yet" in ui.funnel_html(None)


def test_report_summary_uses_processing_py_s_text(finished_run):
    _, output_dir = finished_run
    report = ui.read_run_report(output_dir)
    assert "Run summary" in ui.report_markdown(report)
    assert ui.read_run_report(output_dir / "missing") is None


def test_results_show_only_the_latest_runs_chunks(finished_run, tmp_path):
    _, output_dir = finished_run
    copy = tmp_path / "output"
    shutil.copytree(output_dir, copy)
    stale = dict(json.loads(next((copy / "chunk_results").glob("*.json")).read_text()), key="0" * 64, source="old.md")
    (copy / "chunk_results" / f"{'0' * 64}.json").write_text(json.dumps(stale))
    sources = {r["source"] for r in ui.load_chunk_results(copy)}
    assert sources == {"verusid.md", "baskets.md"}
    (copy / "chunk_index.json").unlink()  # an OUTPUT from before the index: everything stored is shown
    assert "old.md" in {r["source"] for r in ui.load_chunk_results(copy)}
