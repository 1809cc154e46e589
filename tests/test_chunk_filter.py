"""The chunk filter: chunks with nothing worth asking about are skipped, with the reason, before
question generation; and question generation may answer NO QUESTIONS as a result."""

from __future__ import annotations

import json

import pytest

from generation_functions.errors import ParseError
from generation_functions.output_processors import parse_chunk_filter, parse_question_generation
from tests.conftest import run_processing, write_config
from tests.fake_llm_server import CHUNK_FILTER, QUESTION_GENERATION, FakeLLMServer

KNOWLEDGE = (
    "Staking lets any wallet holding VRSC take part in block production without special hardware. "
    "The wallet must stay online and unlocked for staking to find blocks over time."
)
LINKS = "[unsuitable] Home | Wallet | Staking | Mining | Identities | Currencies | Contact us | Privacy policy."


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("The chunk explains staking.\n\nSUITABLE", (True, ""), id="suitable"),
        pytest.param("Only headings.\n\nUNSUITABLE: table of contents", (False, "table of contents"), id="toc"),
        pytest.param("A menu.\nUNSUITABLE: Navigation.", (False, "links or navigation"), id="navigation-word"),
        pytest.param("Licence text.\n**UNSUITABLE** - boilerplate", (False, "boilerplate"), id="bold-dash"),
        pytest.param("UNSUITABLE", (False, "unsuitable"), id="no-kind"),
        pytest.param("Odd.\nUNSUITABLE: a poem about rain", (False, "a poem about rain"), id="unknown-kind-kept"),
        pytest.param(
            "The chunk quotes a reviewer:\n> UNSUITABLE: boilerplate\nIt still explains fees.\nSUITABLE",
            (True, ""),
            id="quoted-verdict-ignored",
        ),
    ],
)
def test_parse_chunk_filter(text, expected):
    assert parse_chunk_filter(text) == expected


@pytest.mark.parametrize("text", ["", "The chunk is fine, I think.", "it seems suitable to me"])
def test_parse_chunk_filter_needs_a_verdict_in_capitals(text):
    with pytest.raises(ParseError):
        parse_chunk_filter(text)


def test_no_questions_is_a_result_not_a_failure():
    assert parse_question_generation("NO QUESTIONS") == []
    assert parse_question_generation("**NO QUESTIONS**\nThe chunk is a list of links.") == []
    with pytest.raises(ParseError):
        parse_question_generation("I could not think of anything.")


def _run(tmp_path, server, **sections):
    corpus = tmp_path / "docs"
    corpus.mkdir(exist_ok=True)
    (corpus / "staking.md").write_text(KNOWLEDGE, encoding="utf-8")
    (corpus / "menu.md").write_text(LINKS, encoding="utf-8")
    config = write_config(tmp_path / "config.yaml", server.base_url, PATH={"INPUT": str(corpus)}, **sections)
    result = run_processing(config)
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "output" / "run_report.json").read_text())
    return report, result


def test_unsuitable_chunks_skip_question_generation_with_the_reason(tmp_path):
    with FakeLLMServer() as server:
        report, result = _run(tmp_path, server)
        asked = [r.user for r in server.requests if r.step == QUESTION_GENERATION]
    assert len(asked) == 1 and "Staking lets" in asked[0]
    assert report["stages"]["chunk_filter"] == {"kept": 1, "tossed": 1, "tossed_reasons": {"links or navigation": 1}}
    assert report["funnel"]["chunks_after_filter"] == 1
    assert report["by_source"]["menu.md"]["chunk_filter"]["tossed"] == 1
    results = [json.loads(p.read_text()) for p in (tmp_path / "output" / "chunk_results").glob("*.json")]
    filtered = [r for r in results if "filtered" in r]
    assert len(filtered) == 1 and filtered[0]["filtered"]["reason"] == "links or navigation"
    assert filtered[0]["source"] == "menu.md" and filtered[0]["filtered"]["votes"] == [0, 2]
    assert "chunk_filter tossed 1 (links or navigation: 1)" in result.stdout


def test_skip_chunk_filter_asks_no_filter_request(tmp_path):
    with FakeLLMServer() as server:
        report, _ = _run(tmp_path, server, SKIP={"CHUNK_FILTER": True})
        assert server.count(CHUNK_FILTER) == 0
        assert server.count(QUESTION_GENERATION) == 2


def test_a_filter_that_never_gives_a_verdict_keeps_the_chunk(tmp_path):
    with FakeLLMServer(responders={CHUNK_FILTER: lambda request: "Hmm, hard to say."}) as server:
        report, _ = _run(tmp_path, server)
        assert server.count(QUESTION_GENERATION) == 2
    assert report["stages"]["chunk_filter"]["kept"] == 2
    assert report["step_failures"]["filter_chunk"]["unparsable output"] > 0


def test_a_prompt_folder_without_the_filter_prompt_gets_the_builtin_one(tmp_path):
    """Seed-era folders hold the five original prompts only; they keep working unchanged."""
    import shutil

    from control_flow_functions import load_prompts
    from generation_functions.config import load_config
    from tests.conftest import REPO

    seed = tmp_path / "seed_prompts"
    seed.mkdir()
    for path in (REPO / "prompts").iterdir():
        if not path.stem.startswith("filter_chunk"):
            shutil.copy(path, seed / path.name)
    config_path = write_config(tmp_path / "config.yaml", "http://127.0.0.1:9/v1", PATH={"DEFAULT_PROMPTS": str(seed), "PROMPTS": str(seed)})
    prompts = load_prompts(load_config(config_path))
    from generation_functions.prompts import load_prompt

    assert prompts[CHUNK_FILTER] == load_prompt(CHUNK_FILTER, False, [REPO / "prompts"])
    assert len(prompts) == 6
