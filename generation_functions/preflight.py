"""Is there a model server at BASE_URL, and does it accept the key? Asked before any work."""

from __future__ import annotations

import httpx

from generation_functions.config import API_KEY_ENV_VARS, Config
from generation_functions.errors import ServerUnreachable


def _models_url(base_url: str, mode: str) -> str:
    base = base_url.rstrip("/")
    return f"{base}/v1/models" if mode == "cohere" else f"{base}/models"


async def check_server(config: Config, timeout: float = 15.0) -> None:
    """Raise ServerUnreachable, with how to fix it, when a server is absent or refuses the key.

    Uses the model listing, which costs no tokens. A server that has no listing
    (404) still answered, which is all this check needs to know.
    """
    headers = {"Authorization": f"Bearer {config.api_key}"} if config.api_key else {}
    async with httpx.AsyncClient(timeout=timeout) as client:
        for base_url in config.base_urls:
            url = _models_url(base_url, config.system.MODE)
            try:
                response = await client.get(url, headers=headers)
            except httpx.HTTPError as exc:
                raise ServerUnreachable(_unreachable_message(base_url, config, type(exc).__name__)) from None
            if response.status_code in (401, 403):
                raise ServerUnreachable(_rejected_message(base_url, config, response.status_code))


def _key_hint(config: Config) -> str:
    names = " or ".join(API_KEY_ENV_VARS[config.system.MODE])
    return f"put the key in the environment ({names}) or in config.yaml as API.API_KEY"


def _unreachable_message(base_url: str, config: Config, what: str) -> str:
    return (
        f"no model server answers at {base_url} ({what}).\n"
        "To fix it, either:\n"
        "  - start a local OpenAI-compatible server and point API.BASE_URL at it, for example\n"
        "      llama.cpp:  llama-server -m model.gguf --port 8080      -> http://127.0.0.1:8080/v1\n"
        "      Ollama:     ollama serve                                -> http://127.0.0.1:11434/v1\n"
        "      vLLM:       vllm serve MODEL --port 8000                -> http://127.0.0.1:8000/v1\n"
        f"  - or use a cloud API: set API.BASE_URL to its URL and {_key_hint(config)}."
    )


def _rejected_message(base_url: str, config: Config, status: int) -> str:
    state = "no API key was given" if not config.api_key else "the API key was rejected"
    return f"the server at {base_url} refused the request (HTTP {status}): {state}.\nTo fix it, {_key_hint(config)}."
