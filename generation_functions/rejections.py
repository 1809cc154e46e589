"""Refusals that the configuration causes: recognised, and turned into the setting to fix.

A server refuses a request for good (HTTP 400, 404, 413, 422 ...) either because
of that request (one chunk too long for the model's context) or because of how
every request is made: a BASE_URL with a wrong path, a model name it does not
serve, a stop list longer than it accepts. The first loses one unit of work and
the run goes on. The second would let a run "finish" with empty datasets, having
refused everything, so a step whose requests are refused the same way again and
again stops the run with the server's message and the setting to change.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from generation_functions.errors import ConfigurationRejected, RequestRejected

# How servers say "no such model": OpenAI and vLLM ("The model `x` does not exist"),
# Ollama ("model 'x' not found"), LiteLLM and others ("model_not_found").
_UNKNOWN_MODEL_HINTS = ("does not exist", "not found", "model_not_found", "unknown model", "no such model")
# How servers say a prompt is too long for the model.
_TOO_LONG_HINTS = ("context length", "context size", "context window", "too long", "too many tokens", "exceeds")


def names_unknown_model(status: Optional[int], detail: str) -> bool:
    lowered = detail.lower()
    return status in (400, 404) and "model" in lowered and any(hint in lowered for hint in _UNKNOWN_MODEL_HINTS)


@dataclass(frozen=True)
class RequestShape:
    """What a refused request was, in the config's words: which model setting and which
    SAMPLING section made it."""

    model: str
    model_setting: str = "API.LOGICAL_MODEL"  # or API.LARGE_LOGICAL_MODEL
    sampling_section: str = ""  # e.g. "SAMPLING.QUESTION_GENERATION"; "" for a preflight probe


def setting_to_fix(rejection: RequestRejected, shape: RequestShape) -> str:
    """The setting that most likely makes the server refuse, read from its status and message."""
    url, detail, status = rejection.url, rejection.detail.lower(), rejection.status
    sampling = shape.sampling_section or "SAMPLING.<STEP>"
    if url != url.strip():
        return f"API.BASE_URL: {url!r} has a space at its end or start; remove it"
    if names_unknown_model(status, rejection.detail):
        return f"{shape.model_setting}: the server does not serve {shape.model!r}; use a model its /models listing names"
    if status in (404, 405):
        fix = f"API.BASE_URL: the server has no {rejection.endpoint or 'endpoint'} under {url!r}; OpenAI-compatible servers serve under .../v1"
        if rejection.endpoint == "/completions":
            fix += " (or set SYSTEM.COMPLETION_MODE: false: many servers have chat completions only)"
        return fix
    if "stop" in detail:
        return "SYSTEM.STOP_SEQUENCES: send fewer stop sequences (many APIs accept at most 4), or set SYSTEM.STOP: false"
    if "max_tokens" in detail or "max_completion_tokens" in detail or "max tokens" in detail:
        return f"{sampling}.MAX_TOKENS: lower it to what the model accepts"
    if status == 413 or any(hint in detail for hint in _TOO_LONG_HINTS):
        return "SYSTEM.CHUNK_SIZE: smaller chunks make shorter prompts (or give the server a longer context)"
    if "temperature" in detail or "top_p" in detail:
        return f"{sampling}.TEMPERATURE / TOP_P: use values the server accepts"
    if "model" in detail:
        return f"{shape.model_setting}: check the model name {shape.model!r}"
    return f"API.BASE_URL, {shape.model_setting} or {sampling}: the server's message says what it refuses"


def rejected_configuration(
    rejection: RequestRejected, shape: RequestShape, what: str, listed: Optional[list[str]] = None
) -> ConfigurationRejected:
    """The error that stops a run (or its preflight) over this refusal; `what` says which
    requests were refused, e.g. "3 question_generation requests in a row"; `listed`: the
    models the server lists, when known."""
    code = f"HTTP {rejection.status}" if rejection.status else "refused"
    detail = rejection.detail or "no message"
    summary = f"the server at {rejection.url.strip()} refused {what} ({code}: {detail})"
    if listed:
        summary += f"; it lists the models {', '.join(listed[:20])}"
    return ConfigurationRejected(summary, rejection, setting_to_fix(rejection, shape))


class RejectionWatch:
    """Counts one step's refusals since its last answer, by the chunk they were for.

    The run stops when the step was refused for SAME_IN_A_ROW different chunks in a row
    with the same status and message, or for ANY_BEFORE_FIRST_ANSWER chunks without
    ever being answered: then no request of the step could succeed as configured.
    Counting chunks, not requests, keeps one chunk too long for the model (whose
    votes and pairs are all refused alike) to the loss of that chunk; refusals mixed
    with answers only lose their own work.
    """

    SAME_IN_A_ROW = 3
    ANY_BEFORE_FIRST_ANSWER = 5

    def __init__(self, step: str, shape: RequestShape):
        self.step = step
        self.shape = shape
        self.answered = 0
        self.refused = 0
        self._chunks: set[int] = set()  # refused since the last answer
        self._same: set[int] = set()  # of those, refused the latest way
        self._last: tuple = ()
        self._latest: Optional[RequestRejected] = None

    def answer(self) -> None:
        self.answered += 1
        self._chunks.clear()
        self._same.clear()
        self._last = ()

    def refusal(self, rejection: RequestRejected, chunk: str = "") -> None:
        """Count a refusal of a request about `chunk` (its text); raise ConfigurationRejected
        when the refusals show the configuration is refused."""
        self.refused += 1
        unit = hash(chunk)
        signature = (rejection.status, rejection.detail)
        if signature != self._last:
            self._same.clear()
        self._same.add(unit)
        self._chunks.add(unit)
        self._last, self._latest = signature, rejection
        if len(self._same) >= self.SAME_IN_A_ROW:
            raise rejected_configuration(rejection, self.shape, f"{self.step} requests for {len(self._same)} chunks in a row")
        if not self.answered and len(self._chunks) >= self.ANY_BEFORE_FIRST_ANSWER:
            raise rejected_configuration(rejection, self.shape, f"every {self.step} request so far ({len(self._chunks)} chunks)")

    def check_finished(self) -> None:
        """At the end of a run: a step refused every time (twice or more) never worked."""
        if self._latest is not None and not self.answered and self.refused >= 2:
            raise rejected_configuration(self._latest, self.shape, f"every {self.step} request ({self.refused})")
