"""The few typed errors of Verustoolkit.

They carry plain messages; only the entry points (processing.py, app.py) turn
them into exit codes and user-facing text.
"""

from __future__ import annotations


class VerusToolkitError(Exception):
    """Base class of every error this project raises on purpose."""


class ConfigError(VerusToolkitError):
    """config.yaml (or an equivalent dict) is invalid; the message names the key."""


class PromptError(VerusToolkitError):
    """A prompt file is missing, unreadable, malformed or uses an unknown placeholder."""


class ParseError(VerusToolkitError):
    """Model output holds no usable answer for the step that asked for it."""


class InputError(VerusToolkitError):
    """The input folder is missing or holds nothing readable."""


class OutputInUse(InputError):
    """Another run holds the OUTPUT folder; two runs appending to one call log would corrupt it."""


class EngineError(VerusToolkitError):
    """A model request failed for good (after retries) or was rejected."""


class ServerUnreachable(EngineError):
    """No server answers at BASE_URL, or it rejects the key."""


class RequestRejected(EngineError):
    """The server refused one request for good (e.g. HTTP 400: prompt too long).

    Unlike other engine errors this loses only the unit of work that asked,
    not the run. status, detail (the server's own message, secrets removed) and
    url say what was refused, so that a refusal repeated request after request
    can be recognised as one the configuration causes."""

    def __init__(self, message: str, status: int | None = None, detail: str = "", url: str = "", endpoint: str = ""):
        super().__init__(message)
        self.status = status
        self.detail = detail
        self.url = url
        self.endpoint = endpoint  # the path asked for under url, e.g. "/chat/completions"


class ConfigurationRejected(EngineError):
    """The server refuses the requests this configuration makes, every time the same way:
    a BASE_URL with a wrong path, a model it does not serve, a field it does not accept.
    Nothing can be generated until a setting changes; `setting` says which one
    (generation_functions/failures.py turns it into the message and exit code 2)."""

    def __init__(self, summary: str, rejection: RequestRejected, setting: str):
        super().__init__(summary)
        self.rejection = rejection
        self.setting = setting


class RequestsStopped(VerusToolkitError):
    """No new request may start: an answer could not be stored, so the run is stopping.

    `cause` is that first failure; it is what the run reports."""

    def __init__(self, cause: BaseException):
        super().__init__(f"the run is stopping: {cause}")
        self.cause = cause


class RunAborted(VerusToolkitError):
    """The run stopped before finishing (outage, spend cap, Ctrl-C); finished work is kept."""
