"""Vectors for texts from any OpenAI-compatible /embeddings endpoint (optional dense search).

Configured like the chat models: RETRIEVAL.EMBEDDING_BASE_URL, EMBEDDING_MODEL,
and a key from the config or the environment. Busy-server answers (408, 409,
429, 5xx) and timeouts are retried with the engine's backoff; a server that is
not there, refuses the key or does not know the model is an error that says so.
"""

from __future__ import annotations

from typing import Callable, Optional

import httpx
import numpy as np

from engine_wrapper_class import RETRYABLE_STATUS, RetryPolicy
from generation_functions.errors import EngineError, RequestRejected, ServerUnreachable
from retrieval.openai_http import Busy, error_detail, names_unknown_model, retry_after, with_retries

class EmbeddingClient:
    def __init__(self, base_url: str, model: str, api_key: str = "", timeout: float = 60.0, max_retry_seconds: float = 60.0):
        self.base_url = base_url.rstrip("/")
        self.model = model
        self._headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.AsyncClient(timeout=timeout)
        self._retry = RetryPolicy(max_seconds=max_retry_seconds)

    async def embed(self, texts: list[str]) -> np.ndarray:
        """One row per text, in order."""
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        return await with_retries(lambda: self._request(texts), self._retry, f"the embedding server at {self.base_url}")

    async def _request(self, texts: list[str]) -> np.ndarray:
        try:
            response = await self._client.post(
                f"{self.base_url}/embeddings", json={"model": self.model, "input": texts}, headers=self._headers
            )
        except httpx.TimeoutException:
            raise Busy("timeout") from None
        except httpx.HTTPError as exc:
            raise ServerUnreachable(
                f"no embedding server answers at {self.base_url} ({type(exc).__name__}); "
                "start it or fix RETRIEVAL.EMBEDDING_BASE_URL (leave it empty for lexical search only)"
            ) from None
        if response.status_code != 200:
            raise self._status_error(response)
        return _vectors(response, len(texts), self.base_url)

    def _status_error(self, response: httpx.Response) -> Exception:
        status = response.status_code
        if status in RETRYABLE_STATUS:
            return Busy(f"HTTP {status}", retry_after(response))
        if status in (401, 403):
            return ServerUnreachable(f"the embedding server at {self.base_url} rejected the API key (HTTP {status})")
        detail = error_detail(response)
        if names_unknown_model(status, detail):
            return RequestRejected(
                f"the embedding server at {self.base_url} does not serve model {self.model!r} "
                f"(HTTP {status}: {detail}); fix RETRIEVAL.EMBEDDING_MODEL"
            )
        return RequestRejected(f"the embedding server at {self.base_url} refused the request (HTTP {status}: {detail})")

    async def close(self) -> None:
        await self._client.aclose()


def _vectors(response: httpx.Response, expected: int, url: str) -> np.ndarray:
    try:
        rows = sorted(response.json()["data"], key=lambda row: row.get("index", 0))
        matrix = np.array([row["embedding"] for row in rows], dtype=np.float32)
    except (ValueError, KeyError, TypeError, AttributeError):
        raise EngineError(f"the embedding server at {url} sent an answer that holds no embeddings") from None
    if matrix.ndim != 2 or matrix.shape[0] != expected:
        raise EngineError(f"the embedding server at {url} sent {matrix.shape[0] if matrix.ndim else 0} vectors for {expected} texts")
    return matrix


async def embed_missing(index, client: EmbeddingClient, batch_size: int, progress: Optional[Callable[[int, int], None]] = None) -> int:
    """Embed every searched chunk that has no vector from this model yet; returns how many were embedded.

    Vectors are stored by chunk key, so an unchanged chunk is never embedded twice,
    even when its document is renamed or edited elsewhere.
    """
    missing = index.keys_without_vector(client.model)
    for start in range(0, len(missing), batch_size):
        batch = missing[start : start + batch_size]
        vectors = await client.embed([text for _, text in batch])
        index.store_vectors(client.model, [(key, vector) for (key, _), vector in zip(batch, vectors)])
        if progress is not None:
            progress(start + len(batch), len(missing))
    return len(missing)
