"""The search index: the pipeline's chunks, found again; incremental updates equal a fresh build."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from pathlib import Path

import pytest

import retrieval.corpus
from generation_functions.chunking import chunk_documents
from generation_functions.config import load_config
from generation_functions.documents import read_documents
from generation_functions.errors import InputError
from retrieval.corpus import list_input, list_output
from retrieval.index import FORMAT_VERSION, RetrievalIndex
from retrieval.search import open_retriever
from tests.conftest import REPO, run_processing, write_config

CHUNK_SIZE = 300

DOCUMENTS = {
    "staking.md": (
        "# Staking\n\nStaking is open to everyone who holds VRSC. There is no minimum amount, and every coin that "
        "has matured for 150 blocks takes part.\n\n## Requirements\n\nThe wallet must stay running, connected to the "
        "internet and synchronised with the chain while it stakes. A laptop that sleeps does not stake."
    ),
    "vault.md": (
        "# Verus Vault\n\nVerus Vault locks the funds of a VerusID. While the identity is locked, nothing can be spent "
        "until an unlock delay has passed, counted in blocks.\n\n## Unlocking\n\nAn unlock request starts the delay; "
        "a revoke authority can stop a thief who stole the keys before the delay ends."
    ),
    "coin.md": (
        "# Coin Overview\n\n| | |\n|---|---|\n| **Launch Date** | 21 May 2018 |\n| **Average Block Time** | 1 minute |\n"
        "| **Transaction Fee** | 0.0001 VRSC |\n| **Max Supply** | 83,540,184 VRSC |"
    ),
    "guides/mining.md": (
        "# Mining\n\n## Solo vs Pool Mining\n\nSolo mining keeps the whole block reward but may take long to win a "
        "block. Pool mining shares the rewards of the pool among its miners in proportion to their hashrate."
    ),
}

QUESTIONS = [
    ("Is there a minimum amount of VRSC needed to stake?", "staking.md"),
    ("What is the average block time of Verus?", "coin.md"),
    ("How can a revoke authority stop a thief?", "vault.md"),
    ("What is the difference between solo and pool mining?", "guides/mining.md"),
]


def write_documents(folder: Path, documents: dict[str, str]) -> Path:
    for name, text in documents.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return folder


@pytest.fixture
def corpus(tmp_path) -> Path:
    return write_documents(tmp_path / "input", DOCUMENTS)


def update(index: RetrievalIndex, folder: Path, size: int = CHUNK_SIZE):
    return index.update(list_input(folder, size), "input")


def rankings(index: RetrievalIndex, questions: list[str]) -> list[list[tuple[str, int, float]]]:
    return [[(hit.source, hit.position, round(hit.score, 9)) for hit in index.search(q, 10)] for q in questions]


def test_the_index_holds_the_pipelines_chunks(tmp_path, corpus):
    # A copy of a document and the repo's sample input as well: duplicates are searched once, as the pipeline keeps them.
    write_documents(corpus, {"zz_copy_of_staking.md": DOCUMENTS["staking.md"]})
    for name in (REPO / "raw_text_input").iterdir():
        (corpus / name.name).write_bytes(name.read_bytes())
    documents, _ = read_documents(corpus)
    expected = [(chunk.source, chunk.index, chunk.text) for chunk in chunk_documents(documents, CHUNK_SIZE)]
    with RetrievalIndex(tmp_path / "index.sqlite") as index:
        stats = update(index, corpus)
        found = [(hit.source, hit.position, hit.text) for hit in index.chunks()]
    assert found == expected
    assert stats.chunks == len(expected) and stats.documents == len(documents)


@pytest.mark.parametrize("question, source", QUESTIONS)
def test_search_finds_the_chunk_that_answers(tmp_path, corpus, question, source):
    with RetrievalIndex(tmp_path / "index.sqlite") as index:
        update(index, corpus)
        hits = index.search(question, 3)
    assert hits[0].source == source
    assert [hit.score for hit in hits] == sorted((hit.score for hit in hits), reverse=True)


def test_headings_lift_the_section_they_name(tmp_path, corpus):
    with RetrievalIndex(tmp_path / "index.sqlite") as index:
        update(index, corpus)
        hit = index.search("What are the requirements?", 1)[0]
    assert hit.source == "staking.md" and "## Requirements" in hit.text


def test_a_question_with_nothing_to_search_finds_nothing(tmp_path, corpus):
    with RetrievalIndex(tmp_path / "index.sqlite") as index:
        update(index, corpus)
        assert index.search("What is it and how does it do that?", 5) == []
        assert index.search("quetzalcoatl", 5) == []


def test_an_unchanged_document_is_not_read_again(tmp_path, corpus, monkeypatch):
    reads = []
    original = retrieval.corpus.read_document
    monkeypatch.setattr(retrieval.corpus, "read_document", lambda path, relative: reads.append(relative) or original(path, relative))
    with RetrievalIndex(tmp_path / "index.sqlite") as index:
        first = update(index, corpus)
        assert sorted(reads) == sorted(DOCUMENTS) and first.added == len(DOCUMENTS)
        reads.clear()
        second = update(index, corpus)
        assert reads == [] and second.unchanged == len(DOCUMENTS) and second.added == 0
        (corpus / "vault.md").write_text(DOCUMENTS["vault.md"] + "\n\nThe unlock delay is set when the vault is locked.")
        third = update(index, corpus)
    assert reads == ["vault.md"] and third.added == 1 and third.unchanged == len(DOCUMENTS) - 1


def test_edits_removals_and_additions_leave_the_index_a_fresh_build_would_make(tmp_path, corpus):
    questions = [q for q, _ in QUESTIONS] + ["How long is the unlock delay?", "What does a marmot eat?"]
    with RetrievalIndex(tmp_path / "incremental.sqlite") as index:
        update(index, corpus)
        (corpus / "vault.md").write_text(DOCUMENTS["vault.md"].replace("thief", "burglar"))
        (corpus / "coin.md").unlink()
        write_documents(corpus, {"animals/marmot.md": "# Marmots\n\nA marmot eats grasses, leaves and flowers."})
        stats = update(index, corpus)
        assert (stats.added, stats.removed, stats.unchanged) == (2, 1, 2)
        incremental = rankings(index, questions)
        assert all(hit.source != "coin.md" for hit in index.chunks())
        assert index.search("How can a revoke authority stop a burglar?", 1)[0].source == "vault.md"
        assert "thief" not in " ".join(hit.text for hit in index.search("thief", 5))
    with RetrievalIndex(tmp_path / "fresh.sqlite") as fresh:
        update(fresh, corpus)
        assert rankings(fresh, questions) == incremental


def test_a_duplicate_text_is_found_again_when_its_first_copy_goes(tmp_path, corpus):
    write_documents(corpus, {"zz_copy.md": DOCUMENTS["coin.md"]})
    with RetrievalIndex(tmp_path / "index.sqlite") as index:
        update(index, corpus)
        assert index.search("average block time", 1)[0].source == "coin.md"
        assert sum(hit.text == DOCUMENTS["coin.md"] for hit in index.chunks()) == 1
        (corpus / "coin.md").unlink()
        update(index, corpus)
        assert index.search("average block time", 1)[0].source == "zz_copy.md"


def test_an_unreadable_file_is_remembered_and_not_read_again(tmp_path, corpus, monkeypatch):
    (corpus / "broken.txt").write_bytes(b"\x00\x01\x02" * 2000)
    reads = []
    original = retrieval.corpus.read_document
    monkeypatch.setattr(retrieval.corpus, "read_document", lambda path, relative: reads.append(relative) or original(path, relative))
    with RetrievalIndex(tmp_path / "index.sqlite") as index:
        first = update(index, corpus)
        reads.clear()
        second = update(index, corpus)
    assert first.unreadable == 1 and first.documents == len(DOCUMENTS)
    assert reads == [] and second.unreadable == 1


def test_a_new_chunk_size_reindexes_everything(tmp_path, corpus):
    with RetrievalIndex(tmp_path / "index.sqlite") as index:
        small = update(index, corpus, 200)
        large = update(index, corpus, 2000)
        assert large.added == len(DOCUMENTS) and large.chunks == len(DOCUMENTS) < small.chunks
        assert all(len(hit.text) <= 2000 for hit in index.chunks())


def test_a_failed_update_leaves_the_index_as_it_was(tmp_path, corpus):
    with RetrievalIndex(tmp_path / "index.sqlite") as index:
        update(index, corpus)
        before = (index.counts(), rankings(index, [q for q, _ in QUESTIONS]))
        (corpus / "coin.md").write_text("# Coin\n\nchanged")
        (corpus / "staking.md").unlink()

        def listings_that_break():
            for number, listing in enumerate(list_input(corpus, CHUNK_SIZE)):
                if number == 2:
                    raise OSError("disk went away")
                yield listing

        with pytest.raises(OSError):
            index.update(listings_that_break(), "input")
        assert (index.counts(), rankings(index, [q for q, _ in QUESTIONS])) == before


def test_an_index_from_an_older_version_is_rebuilt(tmp_path, corpus):
    path = tmp_path / "index.sqlite"
    old = sqlite3.connect(path)
    old.executescript("CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT); INSERT INTO meta VALUES ('format', '0');"
                      "CREATE TABLE chunks (whatever TEXT);")
    old.close()
    with RetrievalIndex(path) as index:
        stats = update(index, corpus)
        assert stats.added == len(DOCUMENTS) and index.search(QUESTIONS[0][0], 1)[0].source == "staking.md"
    assert sqlite3.connect(path).execute("SELECT value FROM meta WHERE name = 'format'").fetchone() == (FORMAT_VERSION,)


def test_a_damaged_index_file_is_replaced(tmp_path, corpus):
    path = tmp_path / "index.sqlite"
    path.write_bytes(b"this is not a database, whatever it once was" * 100)
    with RetrievalIndex(path) as index:
        assert update(index, corpus).added == len(DOCUMENTS)


def test_an_index_that_cannot_be_written_says_so(tmp_path, corpus):
    (tmp_path / "file").write_text("a file where a folder should be")
    with pytest.raises(InputError, match="cannot open the search index"):
        RetrievalIndex(tmp_path / "file" / "index.sqlite")


def test_exclude_keys_leaves_the_source_chunk_out(tmp_path, corpus):
    with RetrievalIndex(tmp_path / "index.sqlite") as index:
        update(index, corpus)
        first = index.search("minimum amount of VRSC to stake", 3)
        rest = index.search("minimum amount of VRSC to stake", 3, exclude_keys=[first[0].key])
    assert first[0].key not in {hit.key for hit in rest}
    assert [hit.key for hit in rest[:2]] == [hit.key for hit in first[1:3]]


def test_a_missing_or_empty_input_folder_says_so(tmp_path):
    (tmp_path / "empty").mkdir()
    config = load_config(write_config(tmp_path / "config.yaml", "http://127.0.0.1:9/v1", PATH={"INPUT": str(tmp_path / "empty")}))
    with pytest.raises(InputError, match="search index is empty"):
        asyncio.run(open_retriever(config))
    with pytest.raises(InputError, match="does not exist"):
        list(list_input(tmp_path / "nowhere", CHUNK_SIZE))


@pytest.fixture(scope="module")
def finished_output(tmp_path_factory):
    """A real pipeline run over the sample input, against the fake server."""
    from tests.fake_llm_server import FakeLLMServer

    folder = tmp_path_factory.mktemp("run")
    with FakeLLMServer() as server:
        config = write_config(folder / "config.yaml", server.base_url, SYSTEM={"CHUNK_SIZE": 400})
        result = run_processing(config)
    assert result.returncode == 0, result.stderr
    return config


def test_an_index_of_a_finished_output_holds_its_runs_chunks(finished_output, tmp_path):
    output = finished_output.parent / "output"
    keys = json.loads((output / "chunk_index.json").read_text())["keys"]
    results = [json.loads((output / "chunk_results" / f"{key}.json").read_text()) for key in keys]
    with RetrievalIndex(tmp_path / "index.sqlite") as index:
        stats = index.update(list_output(output), "output")
        found = {(hit.source, hit.position, hit.key) for hit in index.chunks()}
        assert found == {(r["source"], r["chunk_index"], r["key"]) for r in results}
        assert stats.chunks == len(results)
        pair = json.loads((output / "plain_qa_list.jsonl").read_text().splitlines()[0])
        top = index.search(pair["question"], 3)
        assert (pair["source_filename"], pair["chunk_index"]) in {(hit.source, hit.position) for hit in top}
        again = index.update(list_output(output), "output")
        assert again.added == 0 and again.unchanged == stats.documents


def test_switching_between_input_and_output_starts_the_index_afresh(finished_output, tmp_path, corpus):
    output = finished_output.parent / "output"
    with RetrievalIndex(tmp_path / "index.sqlite") as index:
        update(index, corpus)
        index.update(list_output(output), "output")
        assert {hit.source for hit in index.chunks()}.isdisjoint(DOCUMENTS)


def test_an_output_folder_without_a_run_says_so(tmp_path):
    with pytest.raises(InputError, match="holds no finished run"):
        list(list_output(tmp_path))
