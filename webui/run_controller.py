"""One run at a time, in the app's own process, through the same run_pipeline as processing.py.

The run has its own thread and event loop; the page polls `snapshot()` for its
state, progress per stage and log lines. Cancelling cancels the run's task, so
the pipeline's cleanup runs and finished work stays on disk for the next start.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional

from generation_functions.config import Config
from generation_functions.errors import ConfigError, InputError, PromptError
from generation_functions.failures import describe_failure, describe_outcome
from webui.config_file import validate_settings, without_source

log = logging.getLogger("verustoolkit")

HOW_TO_RESUME = "start the run again to resume"
HOW_TO_RERUN = "start the run again"
RESUME_HINT = f"{HOW_TO_RESUME}; finished work is kept"
NOTHING_RAN = "Nothing was run."
STAGE_LABELS = {"chunks": "question generation", "pairs": "checking pairs", "conversations": "conversations"}
RunState = Literal["idle", "running", "finished", "failed", "cancelled"]


class UIProgress:
    """A ProgressSink whose counts the UI thread reads while the run thread writes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._totals = {stage: 0 for stage in STAGE_LABELS}
        self._done = {stage: 0 for stage in STAGE_LABELS}

    def grow(self, stage: str, amount: int) -> None:
        with self._lock:
            self._totals[stage] += amount

    def advance(self, stage: str, amount: int = 1) -> None:
        with self._lock:
            self._done[stage] += amount

    def close(self) -> None:
        pass

    def counts(self) -> dict[str, tuple[int, int]]:
        with self._lock:
            return {stage: (self._done[stage], self._totals[stage]) for stage in STAGE_LABELS}


class LogPaneHandler(logging.Handler):
    """Keeps the last log lines for the log pane."""

    def __init__(self, max_lines: int = 500) -> None:
        super().__init__(level=logging.INFO)
        self.lines: deque[str] = deque(maxlen=max_lines)
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%H:%M:%S"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(self.format(record))
        except Exception:  # a log line must never break the run
            self.handleError(record)


@dataclass(frozen=True)
class RunSnapshot:
    state: RunState
    message: str
    progress: dict[str, tuple[int, int]]
    log_lines: list[str]
    report: Optional[dict]
    elapsed: float
    output_dir: Optional[Path] = None

    @property
    def active(self) -> bool:
        return self.state == "running"


@dataclass
class _Run:
    config: Config
    progress: UIProgress = field(default_factory=UIProgress)
    state: RunState = "running"
    message: str = "Checking the model server..."
    report: Optional[dict] = None
    started: float = field(default_factory=time.monotonic)
    ended: Optional[float] = None
    loop: Optional[asyncio.AbstractEventLoop] = None
    task: Optional[asyncio.Task] = None
    cancel_requested: bool = False
    pipeline_started: bool = False  # only then can there be finished work to keep
    thread: Optional[threading.Thread] = None


class RunController:
    def __init__(self, max_log_lines: int = 500) -> None:
        self._lock = threading.Lock()
        self._run: Optional[_Run] = None
        self._log_handler = LogPaneHandler(max_log_lines)
        self._level_before: Optional[int] = None

    def start(self, config: Config, prompts: dict) -> str:
        with self._lock:
            if self._run is not None and self._run.state == "running":
                return "A run is already going; cancel it first."
            run = _Run(config)
            self._run = run
            self._log_handler.lines.clear()
            if self._level_before is None:
                self._level_before = _attach_log_handler(self._log_handler)
            run.thread = threading.Thread(target=self._thread_main, args=(run, prompts), name="verustoolkit-run", daemon=True)
            run.thread.start()
        log.info("run started: %s -> %s", config.input_dir, config.output_dir)
        return "Run started."

    def cancel(self) -> str:
        with self._lock:
            run = self._run
            if run is None or run.state != "running":
                return "No run is going."
            run.cancel_requested = True
            run.message = "Cancelling..."
            if run.loop is not None and run.task is not None:
                run.loop.call_soon_threadsafe(run.task.cancel)
        log.info("cancel requested")
        return "Cancelling..."

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Wait for the current run's thread; True when it has ended."""
        run = self._run
        if run is None or run.thread is None:
            return True
        run.thread.join(timeout)
        return not run.thread.is_alive()

    def snapshot(self) -> RunSnapshot:
        with self._lock:
            run = self._run
            lines = list(self._log_handler.lines)
            if run is None:
                return RunSnapshot("idle", "No run yet.", UIProgress().counts(), lines, None, 0.0)
            ended = run.ended if run.ended is not None else time.monotonic()
            return RunSnapshot(
                run.state, run.message, run.progress.counts(), lines, run.report, ended - run.started, run.config.output_dir
            )

    # the run thread

    def _thread_main(self, run: _Run, prompts: dict) -> None:
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._run_main(run, loop, prompts))
        finally:
            loop.close()
            with self._lock:
                if self._run is run and self._level_before is not None:  # a newer run keeps the handler
                    _detach_log_handler(self._log_handler, self._level_before)
                    self._level_before = None

    async def _run_main(self, run: _Run, loop: asyncio.AbstractEventLoop, prompts: dict) -> None:
        # Imported here: control_flow_functions pulls in the engine and its SDKs.
        from control_flow_functions import run_pipeline
        from generation_functions.preflight import check_server

        with self._lock:
            run.loop, run.task = loop, asyncio.current_task()
            cancelled_early = run.cancel_requested
        try:
            if cancelled_early:
                raise asyncio.CancelledError
            await check_server(run.config)
            log.info("the model server answers at %s", ", ".join(run.config.base_urls))
            self._set(run, message="Running...")
            run.pipeline_started = True
            report = await run_pipeline(run.config, run.progress, prompts)
            _log_summary(report)
        except asyncio.CancelledError:
            self._end(run, "cancelled", f"Cancelled: {RESUME_HINT}." if run.pipeline_started else f"Cancelled. {NOTHING_RAN}")
        except BaseException as exc:  # noqa: BLE001 - every failure is shown, none may kill the thread silently
            self._end(run, "failed", failure_message(exc, work_started=run.pipeline_started))
        else:
            empty = describe_outcome(report, HOW_TO_RERUN)
            if empty is not None:  # finished, but no conversation: shown as processing.py's exit 3
                self._end(run, "failed", empty.message, report)
            else:
                self._end(run, "finished", "Finished.", report)

    def _set(self, run: _Run, message: str) -> None:
        with self._lock:
            if not run.cancel_requested:
                run.message = message

    def _end(self, run: _Run, state: RunState, message: str, report: Optional[dict] = None) -> None:
        with self._lock:
            run.state, run.message, run.report, run.ended = state, message, report, time.monotonic()
        (log.info if state != "failed" else log.error)("run %s: %s", state, message.splitlines()[0])


def _log_summary(report: dict) -> None:
    from generation_functions.report import summary_text

    for line in summary_text(report).splitlines():
        log.info("%s", line)


def failure_message(exc: BaseException, work_started: bool = True) -> str:
    """The message processing.py prints for the same failure (generation_functions/failures.py).
    "Finished work is kept" only when the pipeline had started: a run that failed before it did nothing."""
    failure = describe_failure(exc, HOW_TO_RESUME if work_started else None)
    if not failure.expected:
        log.error("unexpected error in the run", exc_info=exc)
    if not work_started and failure.message == str(exc):
        return f"{failure.message}\n{NOTHING_RAN}"
    return failure.message


def _attach_log_handler(handler: logging.Handler) -> int:
    """Route the project's log to the pane; returns the level to put back afterwards."""
    level = log.level
    if handler not in log.handlers:
        log.addHandler(handler)
    if not log.isEnabledFor(logging.INFO):
        log.setLevel(logging.INFO)
    return level


def _detach_log_handler(handler: logging.Handler, level: int) -> None:
    log.removeHandler(handler)
    log.setLevel(level)


def prepare_run(data: dict, config_path: Path) -> tuple[Optional[Config], dict, str]:
    """Validate settings and load prompts as processing.py does before a run.

    Returns (config, prompts, "") or (None, {}, the message to show)."""
    from control_flow_functions import load_prompts

    try:
        config = validate_settings(data, config_path, check_input=True)
        prompts = load_prompts(config)
    except (ConfigError, PromptError, InputError) as exc:
        return None, {}, without_source(str(exc))
    return config, prompts, ""
