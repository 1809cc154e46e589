"""The Retriever: what chat.py, the WebUI and evaluation call to find chunks for a question.

Lexical search (retrieval/index.py) always runs. When RETRIEVAL.EMBEDDING_BASE_URL
is set, the question is also embedded and compared with the chunks' vectors, and
the two rankings are merged by reciprocal-rank fusion: each chunk scores
sum(1 / (60 + rank)) over the rankings it appears in, so neither score scale
has to be calibrated against the other.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Callable, Iterable, Optional

import numpy as np

from generation_functions.config import Config
from generation_functions.errors import InputError
from retrieval.corpus import list_input, list_output
from retrieval.embeddings import EmbeddingClient, embed_missing
from retrieval.index import Hit, RetrievalIndex, UpdateStats

log = logging.getLogger("verustoolkit.retrieval")

RRF_K = 60  # the usual constant: a first place counts 1/61, a tenth 1/70
FUSION_DEPTH = 50  # how deep each ranking is read before fusing


class Retriever:
    def __init__(self, index: RetrievalIndex, top_k: int = 5, embedder: Optional[EmbeddingClient] = None):
        self.index = index
        self.top_k = top_k
        self.embedder = embedder
        self._vectors: Optional[tuple[list[int], np.ndarray]] = None

    @property
    def dense(self) -> bool:
        return self.embedder is not None

    async def search(self, question: str, k: Optional[int] = None, exclude_keys: Iterable[str] = ()) -> list[Hit]:
        """The best k chunks for the question (k defaults to RETRIEVAL.TOP_K), best first."""
        k = k or self.top_k
        lexical = self.index.ranked_ids(question)[:FUSION_DEPTH]
        if self.embedder is None:
            return self.index.hits(lexical, k, exclude_keys)
        dense = await self._dense_ranking(question)
        return self.index.hits(reciprocal_rank_fusion([lexical, dense]), k, exclude_keys)

    async def other_chunks_answering(self, question: str, source_key: str, k: int = 3) -> list[Hit]:
        """The chunks, other than the one a question was written from, most likely to answer it.

        For checking negative data ("the documents do not say"): if one of these
        does answer the question, the negative answer contradicts the corpus. Search
        only proposes candidates; whether a candidate answers is for a model to judge
        (the pipeline's question check asks exactly that of a chunk)."""
        return await self.search(question, k, exclude_keys=[source_key])

    async def _dense_ranking(self, question: str) -> list[tuple[int, float]]:
        ids, matrix = self._vector_matrix()
        if not ids:
            return []
        vector = (await self.embedder.embed([question]))[0]
        norm = float(np.linalg.norm(vector)) or 1.0
        similarity = matrix @ (vector / norm)
        best = np.argsort(-similarity)[:FUSION_DEPTH]
        return [(ids[i], float(similarity[i])) for i in best]

    def _vector_matrix(self) -> tuple[list[int], np.ndarray]:
        if self._vectors is None:
            self._vectors = self.index.vector_matrix(self.embedder.model)
        return self._vectors

    async def close(self) -> None:
        if self.embedder is not None:
            await self.embedder.close()
        self.index.close()


def reciprocal_rank_fusion(rankings: list[list[tuple[int, float]]], k: int = RRF_K) -> list[tuple[int, float]]:
    """Merge rankings of (id, score); ties keep the order of first appearance."""
    fused: dict[int, float] = {}
    for ranking in rankings:
        for rank, (item, _) in enumerate(ranking, start=1):
            fused[item] = fused.get(item, 0.0) + 1.0 / (k + rank)
    return sorted(fused.items(), key=lambda pair: -pair[1])


def update_index(config: Config, source: Optional[str] = None, index_path: Optional[Path] = None) -> tuple[RetrievalIndex, UpdateStats]:
    """Open the index file and bring it in line with its source; chunks use SYSTEM.CHUNK_SIZE."""
    source = source or config.retrieval.SOURCE
    if source == "input":
        listings = list_input(config.input_dir, config.system.CHUNK_SIZE)
    else:
        listings = list_output(config.output_dir)
    index = RetrievalIndex(index_path or config.retrieval_index_path)
    try:
        stats = index.update(listings, source)
    except BaseException:
        index.close()
        raise
    return index, stats


async def open_retriever(
    config: Config,
    source: Optional[str] = None,
    index_path: Optional[Path] = None,
    progress: Optional[Callable[[int, int], None]] = None,
) -> tuple[Retriever, UpdateStats]:
    """The Retriever over an up-to-date index (built on first use); embeds new chunks when dense search is on.

    Raises InputError when the source holds no chunk at all: a chat over an empty
    index would answer every question without its documents.
    """
    index, stats = await asyncio.to_thread(update_index, config, source, index_path)
    if stats.chunks == 0:
        index.close()
        where = config.input_dir if (source or config.retrieval.SOURCE) == "input" else config.output_dir
        raise InputError(f"the search index is empty: {where} holds no readable document")
    embedder = None
    settings = config.retrieval
    if settings.EMBEDDING_BASE_URL:
        embedder = EmbeddingClient(
            settings.EMBEDDING_BASE_URL, settings.EMBEDDING_MODEL, config.embedding_api_key,
            timeout=config.system.REQUEST_TIMEOUT, max_retry_seconds=min(config.system.MAX_RETRY_SECONDS, 120.0),
        )
        try:
            embedded = await embed_missing(index, embedder, settings.EMBEDDING_BATCH_SIZE, progress)
        except BaseException:
            await embedder.close()
            index.close()
            raise
        if embedded:
            log.info("embedded %d new chunks with %s", embedded, settings.EMBEDDING_MODEL)
    return Retriever(index, settings.TOP_K, embedder), stats
