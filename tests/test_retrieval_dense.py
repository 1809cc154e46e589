"""Optional dense search: vectors from an OpenAI-compatible /embeddings endpoint (the fake server), fused by RRF."""

from __future__ import annotations

import asyncio
import math

import numpy as np
import pytest

from generation_functions.config import load_config
from generation_functions.errors import EngineError, RequestRejected, ServerUnreachable
from retrieval.embeddings import EmbeddingClient
from retrieval.search import open_retriever, reciprocal_rank_fusion
from tests.fake_llm_server import EMBEDDING_DIMENSIONS, FakeLLMServer, FaultPlan, embedding_of
from tests.test_retrieval_index import DOCUMENTS, write_documents


@pytest.mark.parametrize(
    "rankings, expected",
    [
        ([[(1, 9.0), (2, 8.0)]], [1, 2]),
        # Found by both beats first in one: 1/62 + 1/61 > 1/61.
        ([[(1, 0.9), (2, 0.8)], [(2, 0.7), (3, 0.1)]], [2, 1, 3]),
        ([[(1, 0.9)], [(2, 0.9)]], [1, 2]),  # a tie keeps the first ranking's order
        ([[], [(5, 1.0)]], [5]),
        ([[], []], []),
    ],
)
def test_reciprocal_rank_fusion(rankings, expected):
    fused = reciprocal_rank_fusion(rankings)
    assert [item for item, _ in fused] == expected
    if rankings == [[(1, 0.9), (2, 0.8)], [(2, 0.7), (3, 0.1)]]:
        assert dict(fused)[2] == pytest.approx(1 / 62 + 1 / 61)


def dense_config(tmp_path, server, **retrieval):
    from tests.conftest import write_config

    corpus = write_documents(tmp_path / "input", DOCUMENTS)
    settings = {"EMBEDDING_BASE_URL": server.base_url, "EMBEDDING_MODEL": "embed-model", "EMBEDDING_BATCH_SIZE": 3, **retrieval}
    return load_config(write_config(tmp_path / "config.yaml", server.base_url, PATH={"INPUT": str(corpus)}, RETRIEVAL=settings))


async def open_and_search(config, question):
    retriever, stats = await open_retriever(config)
    try:
        return stats, await retriever.search(question)
    finally:
        await retriever.close()


def embedding_requests(server):
    return [r for r in server.requests if r.path == "/v1/embeddings"]


def test_chunks_are_embedded_once_and_questions_each_time(tmp_path):
    with FakeLLMServer() as server:
        config = dense_config(tmp_path, server)
        stats, hits = asyncio.run(open_and_search(config, "What is the average block time?"))
        batches = embedding_requests(server)
        # ceil(chunks / batch) requests for the chunks, then one for the question
        assert len(batches) == math.ceil(stats.chunks / 3) + 1
        assert sum(len(r.body["input"]) for r in batches[:-1]) == stats.chunks
        assert batches[-1].body == {"model": "embed-model", "input": ["What is the average block time?"]}
        assert hits[0].source == "coin.md"
        server.requests.clear()
        asyncio.run(open_and_search(config, "What is the average block time?"))
        assert len(embedding_requests(server)) == 1  # only the question: stored vectors are reused
        (config.input_dir / "coin.md").write_text(DOCUMENTS["coin.md"] + "\n\nVerus launched without a premine.")
        server.requests.clear()
        asyncio.run(open_and_search(config, "premine"))
        texts = [text for r in embedding_requests(server)[:-1] for text in r.body["input"]]
        assert texts and all("premine" in text or "Coin Overview" in text for text in texts)


def test_the_dense_leg_finds_what_words_alone_cannot(tmp_path):
    # Only function words: lexical search has nothing to look for, the vectors still compare.
    with FakeLLMServer() as server:
        stats, hits = asyncio.run(open_and_search(dense_config(tmp_path, server), "What is it and how does it do that?"))
    assert hits


def test_vectors_come_back_in_input_order(tmp_path):
    async def embed():
        client = EmbeddingClient(server.base_url, "embed-model")
        try:
            return await client.embed(["staking rewards", "block time", "staking rewards"])
        finally:
            await client.close()

    with FakeLLMServer() as server:
        vectors = asyncio.run(embed())
    assert vectors.shape == (3, EMBEDDING_DIMENSIONS)
    assert np.allclose(vectors[0], embedding_of("staking rewards")) and np.allclose(vectors[0], vectors[2])
    assert not np.allclose(vectors[0], vectors[1])


def test_a_busy_embedding_server_is_retried(tmp_path):
    with FakeLLMServer(faults=FaultPlan(rate=0.4, kinds=("429", "503"), seed=3)) as server:
        stats, hits = asyncio.run(open_and_search(dense_config(tmp_path, server), "What is the average block time?"))
        assert sum(server.faults_injected.values()) > 0
    assert hits and stats.chunks > 0


def test_a_missing_embedding_server_says_so(tmp_path):
    with FakeLLMServer() as server:
        config = dense_config(tmp_path, server)
    with pytest.raises(ServerUnreachable, match="no embedding server answers at .*RETRIEVAL.EMBEDDING_BASE_URL"):
        asyncio.run(open_and_search(config, "staking"))


def test_an_unknown_embedding_model_says_so(tmp_path):
    with FakeLLMServer(models=["nomic-embed-text"]) as server:
        config = dense_config(tmp_path, server)
        with pytest.raises(RequestRejected, match="does not serve model 'embed-model'.*RETRIEVAL.EMBEDDING_MODEL"):
            asyncio.run(open_and_search(config, "staking"))


def test_an_embedding_server_that_keeps_failing_gives_up():
    with FakeLLMServer(faults=FaultPlan(rate=1.0, kinds=("503",))) as server:

        async def run():
            client = EmbeddingClient(server.base_url, "embed-model", max_retry_seconds=1.5)
            try:
                await client.embed(["x"])
            finally:
                await client.close()

        with pytest.raises(EngineError, match="kept failing"):
            asyncio.run(run())
        assert server.faults_injected["503"] >= 2
