"""The quality figures every run reports: question kinds, lengths, pairs per chunk, empty chunks
and why, near-duplicate questions, dataset rows."""

from __future__ import annotations

import json

from generation_functions.quality import QualityTally, length_summary, why_nothing_kept
from tests.conftest import run_processing, write_config
from tests.fake_llm_server import QUESTION_GENERATION, FakeLLMServer, fenced_blocks

DOCS = {
    "staking.md": "Staking lets any wallet holding VRSC take part in block production without special hardware. "
    "The wallet must stay online and unlocked for staking to find blocks over time.",
    "ids.md": "A VerusID is a friendly name that works as a self-sovereign identity on the blockchain. "
    "Each identity has primary addresses that can sign for it and spend its funds.",
    "menu.md": "[unsuitable] Home | Wallet | Staking | Mining | Contact",
}


def labelled_generation(request):
    chunk = fenced_blocks(request.user)[0]
    if "VerusID" in chunk:
        return "NO QUESTIONS"
    return (
        "**QUESTION:**\n[how-to] How do I take part in Verus block production with my wallet?\n\n"
        "**ANSWER:**\nHold VRSC in a wallet and keep it online and unlocked; no special hardware is needed.\n\n"
        "**QUESTION:**\n[why] Why must a Verus wallet stay online and unlocked to stake?\n\n"
        "**ANSWER:**\nStaking finds blocks over time only while the wallet is online and unlocked.\n\n"
        "**QUESTION:**\n[why] Why must a Verus wallet stay online and unlocked to stake at all?\n\n"
        "**ANSWER:**\nBecause staking only finds blocks while the wallet is online and unlocked."
    )


def test_a_run_reports_the_quality_of_its_data(tmp_path):
    corpus = tmp_path / "docs"
    corpus.mkdir()
    for name, text in DOCS.items():
        (corpus / name).write_text(text, encoding="utf-8")
    with FakeLLMServer(responders={QUESTION_GENERATION: labelled_generation}) as server:
        config = write_config(tmp_path / "config.yaml", server.base_url, PATH={"INPUT": str(corpus)})
        result = run_processing(config)
    assert result.returncode == 0, result.stderr
    output = tmp_path / "output"
    report = json.loads((output / "run_report.json").read_text())
    quality = report["quality"]
    assert quality["question_kinds"]["kept"] == {"why": 2, "how-to": 1}
    assert quality["pairs_per_chunk"] == {"0": 2, "3": 1}
    assert quality["chunks_without_kept_pairs"] == {
        "count": 2,
        "share": 0.667,
        "why": {"chunk filter: links or navigation": 1, "no questions (nothing to ask about)": 1},
    }
    assert quality["near_duplicate_questions"]["count"] == 1  # the two "why ... online and unlocked" questions
    assert quality["question_words"]["count"] == 3 and quality["answer_words"]["max"] >= 12
    rows = [json.loads(line) for line in (output / "plain_qa_list.jsonl").read_text().splitlines()]
    assert [row["kind"] for row in rows] == ["how-to", "why", "why"]
    assert not rows[0]["question"].startswith("[")
    assert report["stages"]["question_generation"]["tossed_reasons"] == {"no questions (nothing to ask about)": 1}
    assert "question kinds kept: why 2, how-to 1" in result.stdout
    assert "dataset rows: plain_qa_list.jsonl 3" in result.stdout


def test_length_summary_and_reasons():
    assert length_summary([]) == {"count": 0}
    summary = length_summary([5, 1, 3, 10, 7])
    assert (summary["min"], summary["median"], summary["max"], summary["mean"]) == (1, 5, 10, 5.2)
    assert why_nothing_kept({"raw_pairs": [["q", "a"]], "vetted": [{"tossed_at": "answer_check"}], "pairs": []}) == (
        "every pair tossed (mostly at answer_check)"
    )
    assert why_nothing_kept({"failure": {"stage": "question_generation"}, "pairs": []}).startswith("question generation")


def test_unlabelled_pairs_are_counted_as_such():
    tally = QualityTally()
    tally.add({"vetted": [{"kept": True}], "pairs": [["What is VRSC?", "The native coin of Verus."]], "conversation": [["User", "x"]]})
    data = tally.as_dict()
    assert data["question_kinds"] == {"generated": {"unlabelled": 1}, "kept": {"unlabelled": 1}}
    assert data["conversations"] == 1 and data["mean_pairs_per_chunk"] == 1.0


def test_system_prompt_variants_are_picked_per_conversation_by_content(tmp_path):
    from tests.conftest import REPO

    variants = ["You know Verus well. Answer plainly.", "You are the Verus community's helper."]
    rag_variants = ["Answer from this Verus information:\n\n{data}"]
    with FakeLLMServer() as server:
        config = write_config(
            tmp_path / "config.yaml",
            server.base_url,
            PATH={"INPUT": str(REPO / "tests" / "golden" / "corpus")},
            SYSTEM={"CHUNK_SIZE": 400, "FINAL_ASSISTANT_PROMPT_NO_RAG_VARIANTS": variants,
                    "FINAL_ASSISTANT_PROMPT_RAG_VARIANTS": rag_variants},
        )
        assert run_processing(config).returncode == 0
        first = (tmp_path / "output" / "simplified_data_no_rag.jsonl").read_text()
        import shutil

        shutil.rmtree(tmp_path / "output" / "chunk_results")  # rebuilt from the stored calls
        assert run_processing(config).returncode == 0
        assert (tmp_path / "output" / "simplified_data_no_rag.jsonl").read_text() == first  # deterministic
    rows = [json.loads(line) for line in first.splitlines()]
    systems = [row["conversations"][0]["value"] for row in rows]
    assert set(systems) <= {*variants, "You are a helpful AI assistant who knows the Verus project well. Answer questions about Verus accurately."}
    assert len(set(systems)) >= 2, "4 conversations over 3 prompts: more than one prompt is used"
    rag = [json.loads(line)["conversations"][0]["value"] for line in (tmp_path / "output" / "simplified_data_rag.jsonl").read_text().splitlines()]
    assert all("{data}" not in value for value in rag)


def test_a_rag_variant_without_data_is_a_config_error(tmp_path):
    import pytest

    from generation_functions.config import config_from_dict
    from generation_functions.errors import ConfigError
    from tests.conftest import REPO

    with pytest.raises(ConfigError, match=r"SYSTEM.FINAL_ASSISTANT_PROMPT_RAG_VARIANTS.*\{data\}"):
        config_from_dict(
            {"API": {"LOGICAL_MODEL": "a", "LARGE_LOGICAL_MODEL": "b"}, "PATH": {"INPUT": str(REPO / "raw_text_input")},
             "SYSTEM": {"FINAL_ASSISTANT_PROMPT_RAG_VARIANTS": ["no placeholder here"]}},
            tmp_path,
        )
