"""The few typed errors of Verustoolkit.

They carry plain messages; only the entry points (processing.py, app.py) turn
them into exit codes and user-facing text.
"""


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
    not the run."""


class RequestsStopped(VerusToolkitError):
    """No new request may start: an answer could not be stored, so the run is stopping.

    `cause` is that first failure; it is what the run reports."""

    def __init__(self, cause: BaseException):
        super().__init__(f"the run is stopping: {cause}")
        self.cause = cause


class RunAborted(VerusToolkitError):
    """The run stopped before finishing (outage, spend cap, Ctrl-C); finished work is kept."""
