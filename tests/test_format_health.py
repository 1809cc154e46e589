"""A model that does not keep to the output format is loud about it: a warning while the run
runs, per-step figures in run_report.json, advice in the summary, and exit 3 for a run that
wrote no conversation (generation_functions/format_health.py, failures.describe_outcome).

Pipeline runs use real HTTP against the fake model server, as the other pipeline tests do."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import pytest

import processing
from control_flow_functions import load_prompts, run_pipeline
from generation_functions.config import load_config
from generation_functions.datasets import DATASET_FILES, RUN_REPORT
from generation_functions.failures import DONE, NO_CONVERSATIONS, describe_outcome
from generation_functions.format_health import (
    ADVICE,
    CONSTRAINED_OUTPUT_SETTING,
    WARN_AFTER,
    FormatHealth,
    StepFormat,
    describe_format_problem,
    failing_steps,
    format_failing,
)
from generation_functions.report import summary_text
from generation_functions.steps import BY_KEY, CHUNK_FILTER, QUESTION_GENERATION, STEPS
from tests.conftest import write_config
from tests.fake_imperfect import Imperfection
from tests.fake_llm_server import FakeLLMServer
from tests.webui_helpers import DOCUMENT, settings_data
from webui import rendering
from webui.run_controller import RunController, prepare_run

# The question generation of a small model that starts the protocol and rambles on without `**ANSWER:**`.
RAMBLING_QUESTIONS = "**QUESTION:** What is Verus? Verus is a blockchain, and there is a great deal more to say about it."
EVERY_CHUNK_UNSUITABLE = "The chunk is a list of links with nothing about any of them.\n\nUNSUITABLE: links or navigation"


# ---------------------------------------------------------------- judging, as a table


@pytest.mark.parametrize(
    ("outputs", "parsed", "minimum", "failing"),
    [
        (0, 0, WARN_AFTER, False),  # nothing to judge
        (7, 0, WARN_AFTER, False),  # too few while the run runs
        (8, 0, WARN_AFTER, True),
        (8, 3, WARN_AFTER, True),  # 5 of 8 did not parse
        (8, 4, WARN_AFTER, False),  # half is not "more than half"
        (9, 2, WARN_AFTER, True),
        (100, 49, WARN_AFTER, True),
        (100, 50, WARN_AFTER, False),
        (100, 100, WARN_AFTER, False),
        (3, 0, 3, True),  # at the end: one request and its two retries, all unparsable
        (3, 1, 3, True),
        (3, 2, 3, False),
        (2, 0, 3, False),
        (1, 0, 0, True),  # a minimum of 0 still needs an output
        (0, 0, 0, False),
    ],
)
def test_a_step_fails_the_format_when_more_than_half_its_outputs_do_not_parse(outputs, parsed, minimum, failing):
    assert format_failing(outputs, parsed, minimum) is failing


@pytest.mark.parametrize(
    ("outputs", "parsed", "share"), [(9, 2, 0.222), (3, 3, 1.0), (0, 0, None), (7, 1, 0.143)]
)
def test_figures_and_their_share(outputs, parsed, share):
    figures = StepFormat("question_generation", outputs, parsed, "/out/calls/qatuples_gen_no_filenames")
    assert figures.as_dict() == {"outputs": outputs, "parsed": parsed, "share": share, "calls": figures.calls}
    assert StepFormat.from_dict("question_generation", figures.as_dict()) == figures


def test_one_wording_names_the_step_the_share_the_folder_and_what_to_try():
    text = describe_format_problem(StepFormat("question_generation", 9, 2, "/out/calls/qatuples_gen_no_filenames"))
    assert text.startswith("question generation: 2 of 9 outputs kept to the format")
    assert "/out/calls/qatuples_gen_no_filenames/" in text
    assert ADVICE in text and CONSTRAINED_OUTPUT_SETTING == "SYSTEM.CONSTRAINED_OUTPUT: auto"
    assert "SYSTEM.CONSTRAINED_OUTPUT: auto" in text and "larger model" in text and "PATH.PROMPTS" in text


def test_the_health_warns_once_per_step_as_soon_as_it_fails(tmp_path, caplog):
    health = FormatHealth(tmp_path)
    with caplog.at_level(logging.WARNING, logger="verustoolkit"):
        for _ in range(WARN_AFTER - 1):
            health.record(QUESTION_GENERATION, parsed=False)
        assert not caplog.records  # 7 outputs: too few to judge
        health.record(QUESTION_GENERATION, parsed=False)
        for _ in range(20):
            health.record(QUESTION_GENERATION, parsed=False)
            health.record(CHUNK_FILTER, parsed=True)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    calls = (tmp_path / "calls" / QUESTION_GENERATION).resolve()
    assert warnings[0].startswith(f"question generation: 0 of {WARN_AFTER} outputs kept to the format")
    assert f"{calls}/" in warnings[0] and Path(str(calls)).is_absolute()
    figures = health.as_dict()
    assert set(figures) == {step.key for step in STEPS}
    assert figures["question_generation"] == {"outputs": 28, "parsed": 0, "share": 0.0, "calls": str(calls)}
    assert figures["chunk_filter"]["share"] == 1.0 and figures["answer_check"]["share"] is None


# ---------------------------------------------------------------- the run outcome, as a table


def _report(funnel: dict, stages: dict | None = None, output_dir: str = "/out") -> dict:
    """A run report; a stage's "format" goes to the report's `format`, as run_report.json has it."""
    full = {"chunks": 4, "chunks_after_filter": 4, "pairs_generated": 0, "passed_checks": 0, "after_repair": 0, "conversations": 0}
    full.update(funnel)
    stages = {key: dict(stage) for key, stage in (stages or {}).items()}
    figures = {key: stage.pop("format") for key, stage in stages.items() if "format" in stage}
    return {"funnel": full, "stages": stages, "format": figures, "output_dir": output_dir}


def test_a_run_with_a_conversation_or_without_chunks_has_no_outcome_to_explain():
    assert describe_outcome(_report({"pairs_generated": 3, "passed_checks": 3, "after_repair": 3, "conversations": 1}), "rerun") is None
    assert describe_outcome(_report({"chunks": 0, "chunks_after_filter": 0}), "rerun") is None


@pytest.mark.parametrize(
    ("funnel", "stages", "lost_at", "format_step"),
    [
        ({}, {"question_generation": {"tossed": 4, "tossed_reasons": {"no usable questions": 4},
                                      "format": {"outputs": 12, "parsed": 0, "calls": "/out/calls/qatuples_gen_no_filenames"}}},
         "question generation (no usable questions: 4)", "question_generation"),
        ({}, {"question_generation": {"tossed": 4, "tossed_reasons": {"no questions (nothing to ask about)": 4},
                                      "format": {"outputs": 4, "parsed": 4, "calls": "/out/calls/q"}}},
         "question generation (no questions (nothing to ask about): 4)", None),
        ({"pairs_generated": 6}, {"question_check": {"kept": 0, "tossed": 6},
                                  "answer_check": {"kept": 0, "tossed": 0}},
         "the question check", None),
        ({"pairs_generated": 6}, {"question_check": {"kept": 6, "tossed": 0},
                                  "answer_check": {"kept": 0, "tossed": 6, "tossed_reasons": {"check failed (no usable verdict)": 6},
                                                   "format": {"outputs": 36, "parsed": 0, "calls": "/out/calls/check_answer"}}},
         "the answer check (check failed (no usable verdict): 6)", "answer_check"),
        ({"pairs_generated": 6, "passed_checks": 6, "after_repair": 6}, {"conversation": {"tossed": 4}},
         "the conversation step", None),
    ],
)
def test_a_run_without_a_conversation_exits_3_and_says_where_it_was_lost(funnel, stages, lost_at, format_step):
    outcome = describe_outcome(_report(funnel, stages), "rerun it")
    assert outcome is not None and outcome.exit_code == NO_CONVERSATIONS == 3
    assert outcome.message.startswith("the run finished but wrote no conversation: chunks: 4;")
    assert f"Everything was lost at {lost_at}." in outcome.message
    assert (ADVICE in outcome.message) is (format_step is not None)
    if format_step:
        assert f"/out/calls/{BY_KEY[format_step].prompt_name}/" in outcome.message
    assert "/out/chunk_results" in outcome.message and "rerun it:" in outcome.message


def test_a_run_whose_every_chunk_was_filtered_is_not_blamed_on_the_format():
    stages = {"chunk_filter": {"tossed": 4, "tossed_reasons": {"links or navigation": 4},
                               "format": {"outputs": 8, "parsed": 8, "calls": "/out/calls/filter_chunk"}}}
    outcome = describe_outcome(_report({"chunks_after_filter": 0}, stages), "rerun")
    assert outcome.exit_code == NO_CONVERSATIONS
    assert "Every chunk (4) was filtered out as unsuitable by the chunk filter (links or navigation: 4)" in outcome.message
    assert "not a format problem" in outcome.message and ADVICE not in outcome.message
    assert "SKIP.CHUNK_FILTER" in outcome.message


# ---------------------------------------------------------------- runs against the fake server


def _config(tmp_path: Path, server: FakeLLMServer, **system) -> Path:
    return write_config(tmp_path / "config.yaml", server.base_url, SYSTEM={"CHUNK_SIZE": 400, **system})


def _main(config: Path, capsys) -> tuple[int, str, str]:
    code = processing.main(["--config", str(config), "--no-progress"])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_a_model_that_mostly_leaves_the_format_is_warned_about_during_the_run(tmp_path, caplog):
    with FakeLLMServer(imperfect=Imperfection(rate=0.9, seed=4)) as server:
        config = load_config(_config(tmp_path, server))
        with caplog.at_level(logging.WARNING, logger="verustoolkit"):
            report = asyncio.run(run_pipeline(config, prompts=load_prompts(config)))
    warnings = [r.getMessage() for r in caplog.records if "outputs kept to the format" in r.getMessage()]
    failing = failing_steps(report)
    assert failing, report["format"]
    assert json.loads((tmp_path / "output" / RUN_REPORT).read_text())["format"] == report["format"]
    summary = summary_text(report)
    for figures in failing:
        data = report["format"][figures.key]
        assert data["outputs"] == figures.outputs and data["share"] == round(figures.parsed / figures.outputs, 3) < 0.5
        folder = str((tmp_path / "output" / "calls" / BY_KEY[figures.key].prompt_name).resolve())
        assert data["calls"] == folder
        # In the summary: what happened, the step's calls/<step>/ folder and what to try.
        assert f"{figures.label}: {figures.parsed} of {figures.outputs} outputs kept to the format" in summary
        assert f"{folder}/" in summary
        if figures.outputs >= WARN_AFTER:
            # Warned once, while the run ran: as soon as it failed, with fewer outputs than at the end.
            said = [w for w in warnings if w.startswith(f"{figures.label}: ")]
            assert len(said) == 1, warnings
            assert f"{folder}/" in said[0] and ADVICE in said[0]
            counted = int(said[0].split(" of ")[1].split()[0])
            assert WARN_AFTER <= counted < figures.outputs
    assert ADVICE in summary
    for step in STEPS:  # every step has its figures, those asked nothing included
        assert set(report["format"][step.key]) == {"outputs", "parsed", "share", "calls"}


def test_every_question_generation_output_unparsable_exits_3_with_the_reason_and_writes_everything(tmp_path, capsys):
    with FakeLLMServer(responders={QUESTION_GENERATION: lambda request: RAMBLING_QUESTIONS}) as server:
        config = _config(tmp_path, server, CHUNK_SIZE=1900)
        code, out, err = _main(config, capsys)
        asked = server.count()
        again, _, err_again = _main(config, capsys)
        assert server.count() == asked  # the rerun replays every stored call
    assert code == again == NO_CONVERSATIONS == 3
    output = tmp_path / "output"
    report = json.loads((output / RUN_REPORT).read_text())
    for name in DATASET_FILES:  # nothing is lost: the datasets and the report are written
        assert (output / name).is_file(), name
    figures = report["format"]["question_generation"]
    assert figures["parsed"] == 0 and figures["outputs"] == 3 * report["funnel"]["chunks"] > 0
    folder = f"{(output / 'calls' / QUESTION_GENERATION).resolve()}/"
    assert "Run summary" in out and folder in out and ADVICE in out
    message = err.split("error: ", 1)[1]
    assert message.startswith(f"the run finished but wrote no conversation: chunks: {report['funnel']['chunks']};")
    assert "pairs generated: 0" in message and "conversations: 0" in message
    assert "Everything was lost at question generation (no usable questions:" in message
    assert folder in message and ADVICE in message and str(output / "chunk_results") in message
    assert "rerun `python processing.py --config" in message
    assert message in err_again  # the rerun explains the same


def test_a_healthy_run_warns_of_nothing_and_exits_0(tmp_path, capsys):
    with FakeLLMServer() as server:
        code, out, err = _main(_config(tmp_path, server), capsys)
    assert code == DONE == 0, err
    assert "kept to the format" not in out + err and ADVICE not in out + err
    report = json.loads((tmp_path / "output" / RUN_REPORT).read_text())
    assert report["funnel"]["conversations"] > 0
    for step in STEPS:
        figures = report["format"][step.key]
        assert figures["parsed"] == figures["outputs"] > 0 and figures["share"] == 1.0, step.key


def test_a_run_whose_every_chunk_is_unsuitable_exits_3_saying_so(tmp_path, capsys):
    with FakeLLMServer(responders={CHUNK_FILTER: lambda request: EVERY_CHUNK_UNSUITABLE}) as server:
        code, out, err = _main(_config(tmp_path, server), capsys)
    assert code == NO_CONVERSATIONS
    report = json.loads((tmp_path / "output" / RUN_REPORT).read_text())
    chunks = report["funnel"]["chunks"]
    assert chunks > 0 and report["funnel"]["chunks_after_filter"] == 0
    assert f"Every chunk ({chunks}) was filtered out as unsuitable by the chunk filter (links or navigation: {chunks})" in err
    assert "not a format problem" in err and ADVICE not in out + err
    assert all((tmp_path / "output" / name).is_file() for name in DATASET_FILES)


def test_the_webui_shows_a_run_without_conversations_as_processing_py_does(tmp_path):
    with FakeLLMServer(responders={QUESTION_GENERATION: lambda request: RAMBLING_QUESTIONS}) as server:
        data, config_path = settings_data(tmp_path, server.base_url)
        (tmp_path / "input" / "verusid.md").write_text(DOCUMENT, encoding="utf-8")
        config, prompts, problem = prepare_run(data, config_path)
        assert problem == ""
        controller = RunController()
        assert controller.start(config, prompts) == "Run started."
        assert controller.wait(120)
    snapshot = controller.snapshot()
    assert snapshot.state == "failed"
    expected = describe_outcome(snapshot.report, "start the run again")
    assert snapshot.message == expected.message and expected.exit_code == NO_CONVERSATIONS
    assert "Everything was lost at question generation" in snapshot.message and ADVICE in snapshot.message
    assert "start the run again:" in snapshot.message
    # The report is kept: the summary, with its format advice, and the funnel are shown.
    assert ADVICE in rendering.report_markdown(snapshot.report)
    assert "no conversation" in rendering.status_markdown(snapshot)
