"""The models evaluate.py asks: from config (EVALUATION.CANDIDATES) or from --candidate flags."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Mapping, Optional, Sequence

import httpx

from engine_wrapper_class import EngineWrapper, RequestStats, RetryPolicy, make_backends
from generation_functions.budget import Budget
from generation_functions.concurrency import RequestLimiter
from generation_functions.config import CandidateEntry, Config, check_api_key, check_url
from generation_functions.errors import ConfigError, ServerUnreachable

_FLAG = re.compile(r"^(?P<name>[A-Za-z0-9_.-]+)=(?P<model>[^@]+)@(?P<url>https?://[^#\s]+)(?:#(?P<key_env>\w+))?$")


@dataclass(frozen=True)
class Candidate:
    name: str
    base_url: str
    model: str
    api_key: str = ""

    def __repr__(self) -> str:  # the key never reaches a log or a message
        return f"Candidate({self.name!r}, {self.model!r} at {self.base_url!r})"


def from_config(entries: Sequence[CandidateEntry], environ: Mapping[str, str]) -> list[Candidate]:
    return [Candidate(e.NAME, e.BASE_URL, e.MODEL, _key(e.API_KEY_ENV, environ)) for e in entries]


def from_flags(flags: Sequence[str], environ: Mapping[str, str]) -> list[Candidate]:
    """--candidate NAME=MODEL@BASE_URL[#KEY_ENV], e.g. tuned=verus-8b@http://127.0.0.1:8081/v1."""
    candidates = []
    for flag in flags:
        match = _FLAG.match(flag.strip())
        if match is None:
            raise ConfigError(f"--candidate {flag!r}: expected NAME=MODEL@BASE_URL[#KEY_ENV], e.g. tuned=verus-8b@http://127.0.0.1:8081/v1")
        try:
            check_url(match["url"])
        except ValueError as exc:
            raise ConfigError(f"--candidate {flag!r}: {exc}") from None
        candidates.append(Candidate(match["name"], match["url"], match["model"].strip(), _key(match["key_env"] or "", environ)))
    names = [c.name for c in candidates]
    if len(set(names)) != len(names):
        raise ConfigError("--candidate: two candidates share a name")
    return candidates


def _key(variable: str, environ: Mapping[str, str]) -> str:
    key = environ.get(variable, "").strip() if variable else ""
    try:
        return check_api_key(key)
    except ValueError as exc:  # it would fail deep in the HTTP client otherwise
        raise ConfigError(f"the environment variable {variable} (a candidate's API key): {exc}") from None


def choose(config: Config, flags: Sequence[str], environ: Optional[Mapping[str, str]] = None) -> list[Candidate]:
    environ = os.environ if environ is None else environ
    candidates = from_flags(flags, environ) if flags else from_config(config.evaluation.CANDIDATES, environ)
    if not candidates:
        raise ConfigError("no model to evaluate: add EVALUATION.CANDIDATES to the config or give --candidate NAME=MODEL@BASE_URL")
    return candidates


def engine_for(candidate: Candidate, config: Config, limiter: RequestLimiter, stats: RequestStats, budget: Budget) -> EngineWrapper:
    """The candidate's engine: OpenAI-compatible chat, with the run's retries, limiter and caps."""
    backends = make_backends("api", False, [candidate.base_url], candidate.api_key, candidate.model, config.system.REQUEST_TIMEOUT)
    retry = RetryPolicy(max_seconds=config.system.MAX_RETRY_SECONDS)
    return EngineWrapper(backends, limiter, retry, stats, candidate.model, budget)


async def check_candidates(candidates: Sequence[Candidate], timeout: float = 15.0) -> None:
    """Before spending anything: every candidate's server answers its model listing and takes its key."""
    async with httpx.AsyncClient(timeout=timeout) as client:
        for candidate in candidates:
            headers = {"Authorization": f"Bearer {candidate.api_key}"} if candidate.api_key else {}
            try:
                response = await client.get(candidate.base_url.rstrip("/") + "/models", headers=headers)
            except (httpx.HTTPError, httpx.InvalidURL, ValueError) as exc:
                raise ServerUnreachable(
                    f"candidate {candidate.name}: no model server answers at {candidate.base_url} ({type(exc).__name__}). "
                    "Start it (e.g. `llama-server -m model.gguf --port 8081`) or fix its BASE_URL."
                ) from None
            if response.status_code in (401, 403):
                raise ServerUnreachable(
                    f"candidate {candidate.name}: the server at {candidate.base_url} refused the key (HTTP {response.status_code}); "
                    "put it in the environment variable named by API_KEY_ENV (or #KEY_ENV in --candidate)."
                )
