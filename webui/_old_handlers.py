"""What the WebUI (app.py) does, as plain functions that need no browser.

app.py only lays out widgets and wires them to these functions, so everything
here can be unit-tested directly:

- settings: one widget per config key, derived from the pydantic sections in
  config.py (type, bounds, choices); widget values back into a config dict,
  validated by the same `config_from_dict` as processing.py, saved on request;
- documents: uploads copied into the input folder under sanitised names;
- prompt sets: the folders that hold prompt files;
- runs: `RunController` runs `run_pipeline` in a background thread with its own
  event loop, tracks progress per stage and log lines, and cancels on request;
- results: the run report and its funnel, conversations with their pairs and
  source chunk, tossed pairs with the reason, and the output files.
"""

from __future__ import annotations

import asyncio
import html
import logging
import os
import re
import shutil
import threading
import time
import types
import typing
import unicodedata
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Literal, Optional, Sequence

import annotated_types
import yaml
from pydantic import BaseModel

from generation_functions.config import (
    ApiSection,
    Config,
    PathSection,
    SkipSection,
    SystemSection,
    config_from_dict,
)
from generation_functions.datasets import DATASET_FILES, RUN_REPORT
from generation_functions.errors import (
    ConfigError,
    EngineError,
    InputError,
    PromptError,
    RunAborted,
    ServerUnreachable,
)
from generation_functions.store import atomic_write_text, describe_os_error, read_json

log = logging.getLogger("verustoolkit")

SECTION_MODELS: dict[str, type[BaseModel]] = {
    "API": ApiSection,
    "PATH": PathSection,
    "SYSTEM": SystemSection,
    "SKIP": SkipSection,
}
RESULTS_DIR = "chunk_results"  # as in control_flow_functions (not imported: it pulls in the engine)
CHUNK_INDEX = "chunk_index.json"
RESUME_HINT = "Start the run again to resume; finished work is kept."

# ---------------------------------------------------------------- settings

FieldKind = Literal["text", "secret", "long_text", "url_list", "string_list", "int", "float", "bool", "choice"]


@dataclass(frozen=True)
class SettingField:
    """One config key and the kind of widget that edits it."""

    section: str
    key: str
    kind: FieldKind
    default: Any
    required: bool
    choices: tuple[str, ...] = ()
    bounds: str = ""

    @property
    def name(self) -> str:
        return f"{self.section}.{self.key}"


def setting_fields() -> list[SettingField]:
    """Every config key, in config.yaml's order, read off the pydantic sections."""
    fields = []
    for section, model in SECTION_MODELS.items():
        for key, info in model.model_fields.items():
            default = None if info.is_required() else info.get_default(call_default_factory=True)
            fields.append(
                SettingField(
                    section=section,
                    key=key,
                    kind=field_kind(key, info.annotation, default),
                    default=default,
                    required=info.is_required(),
                    choices=literal_choices(info.annotation),
                    bounds=describe_bounds(info.metadata),
                )
            )
    return fields


def field_kind(key: str, annotation: Any, default: Any) -> FieldKind:
    if literal_choices(annotation):
        return "choice"
    if annotation is bool:
        return "bool"
    if annotation is int:
        return "int"
    if annotation is float:
        return "float"
    if _is_union_with_list(annotation):
        return "url_list"
    if typing.get_origin(annotation) is list:
        return "string_list"
    if "API_KEY" in key:
        return "secret"
    if isinstance(default, str) and ("\n" in default or len(default) > 80):
        return "long_text"
    return "text"


def literal_choices(annotation: Any) -> tuple[str, ...]:
    if typing.get_origin(annotation) is Literal:
        return tuple(str(choice) for choice in typing.get_args(annotation))
    return ()


def _is_union_with_list(annotation: Any) -> bool:
    if typing.get_origin(annotation) not in (typing.Union, types.UnionType):
        return False
    return any(typing.get_origin(arg) is list for arg in typing.get_args(annotation))


_BOUND_WORDS = (
    (annotated_types.Ge, "ge", "at least"),
    (annotated_types.Gt, "gt", "more than"),
    (annotated_types.Le, "le", "at most"),
    (annotated_types.Lt, "lt", "less than"),
)


def describe_bounds(metadata: Sequence[Any]) -> str:
    """'at least 200, at most 1000000' from the field's pydantic constraints."""
    parts = []
    for constraint in metadata:
        if isinstance(constraint, annotated_types.MinLen):
            length = constraint.min_length
            parts.append("not empty" if length == 1 else f"at least {length} characters")
        for kind, attribute, words in _BOUND_WORDS:
            if isinstance(constraint, kind):
                parts.append(f"{words} {getattr(constraint, attribute)}")
    return ", ".join(parts)


_README_ROW = re.compile(r"^\|\s*(`[A-Z]+\.[A-Z_]+`(?:\s*,\s*`[A-Z]+\.[A-Z_]+`)*)\s*\|\s*(.+?)\s*\|\s*$")


def help_from_readme(readme_text: str) -> dict[str, str]:
    """SECTION.KEY -> its meaning, from the README's table of config keys."""
    help_texts = {}
    for line in readme_text.splitlines():
        match = _README_ROW.match(line)
        if match:
            for name in re.findall(r"`([A-Z]+\.[A-Z_]+)`", match.group(1)):
                help_texts[name] = match.group(2).replace("`", "")
    return help_texts


def widget_info(setting: SettingField, help_texts: dict[str, str]) -> str:
    parts = [help_texts.get(setting.name, "")]
    if setting.bounds:
        parts.append(f"Allowed: {setting.bounds}.")
    if setting.kind == "url_list":
        parts.append("Several servers: one URL per line.")
    if setting.kind == "string_list":
        parts.append("One per line.")
    if setting.kind == "secret":
        parts.append("Leave empty to read it from the environment.")
    return " ".join(part for part in parts if part)


def values_from_settings(data: dict, fields: Sequence[SettingField]) -> list[Any]:
    """The widget value of each field, from a config dict (missing keys take their defaults)."""
    values = []
    for setting in fields:
        section = data.get(setting.section) if isinstance(data, dict) else None
        value = section.get(setting.key, setting.default) if isinstance(section, dict) else setting.default
        values.append(_to_widget_value(setting, value))
    return values


def _to_widget_value(setting: SettingField, value: Any) -> Any:
    """A value the widget can show; one it cannot (a word in a number field) shows
    the default, and the load message names the key."""
    if setting.kind in ("url_list", "string_list") and isinstance(value, list):
        return "\n".join(str(item) for item in value)
    if setting.kind in ("text", "secret", "long_text", "url_list", "string_list"):
        return "" if value is None else str(value)
    if setting.kind == "bool":
        return value if isinstance(value, bool) else setting.default
    if setting.kind in ("int", "float"):
        is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
        return value if is_number else setting.default
    if setting.kind == "choice":
        return value if value in setting.choices else setting.default
    return value


def settings_from_values(values: Sequence[Any], fields: Sequence[SettingField]) -> dict[str, dict[str, Any]]:
    """A config dict from widget values, in the shape config.yaml has."""
    if len(values) != len(fields):
        raise ValueError(f"expected {len(fields)} setting values, got {len(values)}")
    data: dict[str, dict[str, Any]] = {section: {} for section in SECTION_MODELS}
    for setting, value in zip(fields, values):
        data[setting.section][setting.key] = setting_value(setting, value)
    return data


def setting_value(setting: SettingField, value: Any) -> Any:
    """A widget's value as config.yaml would hold it. Nothing is clamped or
    rounded: a bad value goes on to pydantic, so its message is processing.py's."""
    if setting.kind == "url_list":
        urls = [line.strip() for line in str(value or "").splitlines() if line.strip()]
        return urls[0] if len(urls) == 1 else urls
    if setting.kind == "string_list":
        # Kept as typed (a stop sequence may start with a space); blank lines are dropped.
        return [line for line in str(value or "").splitlines() if line.strip()]
    if setting.kind == "int" and isinstance(value, float) and value.is_integer():
        return int(value)
    if setting.kind == "float" and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if setting.kind in ("text", "secret") and isinstance(value, str):
        return value.strip()
    return value


def read_settings_file(config_path: Path) -> tuple[dict, str]:
    """The raw settings of config.yaml, and a problem to show (empty if none).

    An unreadable or invalid file still opens the UI (with defaults or its
    values) so that it can be fixed there."""
    try:
        data = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}, f"{config_path} does not exist yet; the defaults are shown. Save to create it."
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        return {}, f"cannot read {config_path}: {exc}; the defaults are shown."
    if not isinstance(data, dict):
        return {}, f"{config_path}: expected a mapping with the sections API, PATH, SYSTEM and SKIP; the defaults are shown."
    return data, settings_problem(data, config_path, check_input=False)


def validate_settings(data: dict, config_path: Path, check_input: bool = True) -> Config:
    """The same validation as processing.py's load_config; raises ConfigError."""
    return config_from_dict(data, base_dir=config_path.resolve().parent, source=str(config_path), check_input=check_input)


def settings_problem(data: dict, config_path: Path, check_input: bool = True) -> str:
    try:
        validate_settings(data, config_path, check_input)
    except ConfigError as exc:
        return str(exc)
    return ""


class _ConfigDumper(yaml.SafeDumper):
    """Multi-line strings as `|` blocks, as a person writes them in config.yaml."""


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_ConfigDumper.add_representer(str, _represent_str)

CONFIG_HEADER = "# Verustoolkit configuration. Every key is explained in README.md.\n# Saved by the WebUI (app.py).\n"


def settings_yaml(data: dict) -> str:
    body = yaml.dump(data, Dumper=_ConfigDumper, sort_keys=False, allow_unicode=True, width=100)
    return CONFIG_HEADER + body


def save_settings(data: dict, config_path: Path) -> str:
    """Write config.yaml if the settings are valid; returns what happened."""
    problem = settings_problem(data, config_path, check_input=False)
    if problem:
        return f"Not saved: {problem}"
    atomic_write_text(config_path, settings_yaml(data), durable=True)
    return f"Saved to {config_path}."


def resolve_setting_path(value: str, config_path: Path) -> Path:
    """A PATH value resolved the way config.py resolves it: from the config file's folder."""
    path = Path(os.path.expanduser(value or "."))
    return path if path.is_absolute() else (config_path.resolve().parent / path).resolve()


# ---------------------------------------------------------------- documents

_UNSAFE_CHARACTERS = re.compile(r"[^\w.\- ]+")
MAX_NAME_BYTES = 200


def sanitize_filename(name: str) -> str:
    """A plain file name: no folders, no leading dots, no control or shell characters."""
    name = unicodedata.normalize("NFC", str(name)).replace("\\", "/").split("/")[-1]
    name = _UNSAFE_CHARACTERS.sub("_", name)
    name = re.sub(r"\s+", " ", name).strip(" .")
    name = name.lstrip(".-")
    stem, dot, suffix = name.rpartition(".")
    if not dot:
        stem, suffix = name, ""
    while len(name.encode("utf-8")) > MAX_NAME_BYTES and stem:
        stem = stem[:-1]
        name = f"{stem}.{suffix}" if suffix else stem
    return name or "upload"


def store_uploads(uploaded: Iterable[str | Path], input_dir: Path) -> list[Path]:
    """Copy uploaded files into input_dir under sanitised, unused names.

    A name never leads outside input_dir, and an existing file (or link) is
    never written through or replaced: a second file of the same name gets
    `name-1.ext`. Re-uploading identical content keeps the one copy."""
    input_dir.mkdir(parents=True, exist_ok=True)
    root = input_dir.resolve()
    stored = []
    for source in uploaded:
        source = Path(source)
        stored.append(_store_one(source, root, sanitize_filename(source.name)))
    return stored


def _store_one(source: Path, root: Path, name: str) -> Path:
    stem, suffix = _split_name(name)
    for attempt in range(10_000):
        candidate = root / (name if attempt == 0 else f"{stem}-{attempt}{suffix}")
        if candidate.parent != root:
            raise ValueError(f"refusing to write outside {root}: {candidate}")
        if _same_regular_file(candidate, source):
            return candidate
        try:
            with open(candidate, "xb") as target, open(source, "rb") as handle:
                shutil.copyfileobj(handle, target)
        except FileExistsError:
            continue
        return candidate
    raise OSError(f"no free name for {name} in {root}")


def _split_name(name: str) -> tuple[str, str]:
    path = Path(name)
    return (path.stem, path.suffix) if path.stem else (name, "")


def _same_regular_file(candidate: Path, source: Path) -> bool:
    if candidate.is_symlink() or not candidate.is_file():
        return False
    if candidate.stat().st_size != source.stat().st_size:
        return False
    return candidate.read_bytes() == source.read_bytes()


def list_input_files(input_dir: Path, limit: int = 500) -> list[str]:
    """The files a run would read, relative to input_dir."""
    if not input_dir.is_dir():
        return []
    files = sorted(
        path.relative_to(input_dir).as_posix()
        for path in input_dir.rglob("*")
        if path.is_file() and not any(part.startswith(".") for part in path.relative_to(input_dir).parts)
    )
    return files[:limit]


def input_files_markdown(input_dir: Path) -> str:
    files = list_input_files(input_dir)
    if not input_dir.is_dir():
        return f"The input folder `{input_dir}` does not exist yet; uploading creates it."
    if not files:
        return f"The input folder `{input_dir}` is empty."
    shown = "\n".join(f"- `{name}`" for name in files)
    return f"**{len(files)} file(s) in `{input_dir}`:**\n\n{shown}"


# ---------------------------------------------------------------- prompt sets

PROMPT_SUFFIXES = (".yaml", ".txt")


def list_prompt_sets(app_dir: Path) -> list[Path]:
    """Folders that hold prompt files: prompts/, prompts_*/ and prompt_overrides/*/."""
    candidates = [app_dir / "prompts", *sorted(app_dir.glob("prompts_*")), *sorted(app_dir.glob("prompt_overrides/*"))]
    return [folder for folder in candidates if folder.is_dir() and _holds_prompt_files(folder)]


def _holds_prompt_files(folder: Path) -> bool:
    return any(path.suffix in PROMPT_SUFFIXES and path.is_file() for path in folder.iterdir())


def prompt_set_setting(folder: Path, config_path: Path) -> str:
    """How PATH.PROMPTS names a folder: relative to the config file when inside its folder."""
    base = config_path.resolve().parent
    folder = folder.resolve()
    if folder.is_relative_to(base):
        return "./" + folder.relative_to(base).as_posix()
    return str(folder)


def prompt_set_choices(app_dir: Path, config_path: Path) -> list[tuple[str, str]]:
    """(label, PATH.PROMPTS value) for each prompt set, labelled relative to the app."""
    return [
        (folder.relative_to(app_dir).as_posix(), prompt_set_setting(folder, config_path))
        for folder in list_prompt_sets(app_dir)
    ]


# ---------------------------------------------------------------- runs

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
    thread: Optional[threading.Thread] = None


class RunController:
    """One run at a time, in-process, through the same run_pipeline as processing.py.

    The run has its own thread and event loop; cancelling cancels its task, so
    the pipeline's cleanup runs and finished work stays on disk for a rerun."""

    def __init__(self, max_log_lines: int = 500) -> None:
        self._lock = threading.Lock()
        self._run: Optional[_Run] = None
        self._log_handler = LogPaneHandler(max_log_lines)

    def start(self, config: Config, prompts: dict) -> str:
        with self._lock:
            if self._run is not None and self._run.state == "running":
                return "A run is already going; cancel it first."
            run = _Run(config)
            self._run = run
            self._log_handler.lines.clear()
            _attach_log_handler(self._log_handler)
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
                if self._run is run:  # a newer run keeps the handler
                    _detach_log_handler(self._log_handler)

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
            report = await run_pipeline(run.config, run.progress, prompts)
            _log_summary(report)
        except asyncio.CancelledError:
            self._end(run, "cancelled", f"Cancelled. {RESUME_HINT}")
        except BaseException as exc:  # noqa: BLE001 - every failure is shown, none may kill the thread silently
            self._end(run, "failed", failure_message(exc))
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


def failure_message(exc: BaseException) -> str:
    """The text processing.py prints for the same failure."""
    if isinstance(exc, (InputError, ConfigError, PromptError)):
        return str(exc)
    if isinstance(exc, ServerUnreachable):
        return f"{exc}\n{RESUME_HINT}"
    if isinstance(exc, (EngineError, RunAborted)):
        return f"the run stopped: {exc}\n{RESUME_HINT}"
    if isinstance(exc, OSError):
        return f"the run stopped: {describe_os_error(exc)}\nFix that first. {RESUME_HINT}"
    log.exception("unexpected error in the run", exc_info=exc)
    return f"unexpected error: {type(exc).__name__}: {exc}\n{RESUME_HINT}"


def _attach_log_handler(handler: logging.Handler) -> None:
    if handler not in log.handlers:
        log.addHandler(handler)
    if not log.isEnabledFor(logging.INFO):
        log.setLevel(logging.INFO)


def _detach_log_handler(handler: logging.Handler) -> None:
    log.removeHandler(handler)


def prepare_run(data: dict, config_path: Path) -> tuple[Optional[Config], dict, str]:
    """Validate settings and load prompts as processing.py does before a run.

    Returns (config, prompts, "") or (None, {}, the message to show)."""
    from control_flow_functions import load_prompts

    try:
        config = validate_settings(data, config_path, check_input=True)
        prompts = load_prompts(config)
    except (ConfigError, PromptError, InputError) as exc:
        return None, {}, str(exc)
    return config, prompts, ""


# ---------------------------------------------------------------- showing a run


def status_markdown(snapshot: RunSnapshot) -> str:
    heading = {
        "idle": "Idle",
        "running": "Running",
        "finished": "Finished",
        "failed": "Failed",
        "cancelled": "Cancelled",
    }[snapshot.state]
    elapsed = f" ({snapshot.elapsed:.0f}s)" if snapshot.state != "idle" else ""
    body = _finished_line(snapshot.report) if snapshot.state == "finished" else snapshot.message
    return f"**{heading}**{elapsed}: " + body.replace("\n", "  \n")


def _finished_line(report: Optional[dict]) -> str:
    if not report:
        return "done."
    return f"conversations: {report['funnel']['conversations']}, datasets written to `{report['output_dir']}`."


def progress_html(progress: dict[str, tuple[int, int]]) -> str:
    rows = []
    for stage, label in STAGE_LABELS.items():
        done, total = progress.get(stage, (0, 0))
        share = 100.0 * done / total if total else 0.0
        rows.append(
            f'<div class="vt-stage" data-stage="{stage}">'
            f'<div class="vt-stage-label">{html.escape(label)}: {done} / {total} {stage}</div>'
            f'<div class="vt-bar"><div class="vt-bar-fill" style="width:{share:.1f}%"></div></div></div>'
        )
    return '<div class="vt-progress">' + "".join(rows) + "</div>"


FUNNEL_STEPS = (
    ("chunks", "chunks"),
    ("pairs_generated", "pairs generated"),
    ("passed_checks", "passed checks"),
    ("after_repair", "repaired"),
    ("conversations", "conversations"),
)


def funnel_rows(report: dict) -> list[tuple[str, int]]:
    funnel = report.get("funnel", {})
    return [(label, int(funnel.get(key, 0))) for key, label in FUNNEL_STEPS]


def funnel_html(report: Optional[dict]) -> str:
    """A funnel chart: one centred bar per stage, as wide as its share of the largest."""
    if not report:
        return '<div class="vt-funnel vt-empty">No run report yet.</div>'
    rows = funnel_rows(report)
    largest = max((count for _, count in rows), default=0) or 1
    bars = []
    for label, count in rows:
        width = max(100.0 * count / largest, 2.0)
        bars.append(
            f'<div class="vt-funnel-row" data-step="{html.escape(label)}">'
            f'<div class="vt-funnel-bar" style="width:{width:.1f}%"></div>'
            f'<div class="vt-funnel-text">{html.escape(label)}: <b>{count}</b></div></div>'
        )
    return '<div class="vt-funnel">' + "".join(bars) + "</div>"


def report_markdown(report: Optional[dict]) -> str:
    if not report:
        return "No run report yet."
    from generation_functions.report import summary_text

    return "```\n" + summary_text(report) + "\n```"


def read_run_report(output_dir: Path) -> Optional[dict]:
    report = read_json(output_dir / RUN_REPORT)
    return report if isinstance(report, dict) and "funnel" in report else None


# ---------------------------------------------------------------- results


def load_chunk_results(output_dir: Path) -> list[dict]:
    """The latest run's chunk results (every stored one for an older OUTPUT
    without a chunk index), by source file and chunk number."""
    folder = output_dir / RESULTS_DIR
    if not folder.is_dir():
        return []
    index = read_json(output_dir / CHUNK_INDEX)
    if isinstance(index, dict) and isinstance(index.get("keys"), list):
        paths = [folder / f"{key}.json" for key in dict.fromkeys(index["keys"]) if isinstance(key, str)]
    else:
        paths = list(folder.glob("*.json"))
    results = [read_json(path) for path in paths]
    valid = [r for r in results if isinstance(r, dict) and "key" in r]
    return sorted(valid, key=lambda r: (str(r.get("source", "")), r.get("chunk_index", 0)))


def read_chunk_result(output_dir: Path, key: str) -> Optional[dict]:
    if not re.fullmatch(r"[0-9A-Za-z_-]+", key or ""):
        return None  # keys are hashes; anything else could name another file
    result = read_json(output_dir / RESULTS_DIR / f"{key}.json")
    return result if isinstance(result, dict) else None


def conversation_choices(results: Iterable[dict]) -> list[tuple[str, str]]:
    """(label, key) of each chunk that has a conversation."""
    return [
        (f"{r.get('source', '?')} · chunk {r.get('chunk_index', 0)} · {len(r.get('pairs') or [])} pairs", r["key"])
        for r in results
        if r.get("conversation")
    ]


CHAT_ROLES = {"User": "user", "AI Assistant": "assistant"}


def conversation_messages(result: Optional[dict]) -> list[dict[str, str]]:
    """The conversation as chat messages (user / assistant)."""
    if not result or not result.get("conversation"):
        return []
    return [
        {"role": CHAT_ROLES.get(speaker, "assistant"), "content": str(message)}
        for speaker, message in result["conversation"]
    ]


PAIR_HEADERS = ["question", "answer"]


def pair_rows(result: Optional[dict]) -> list[list[str]]:
    if not result:
        return []
    return [[str(question), str(answer)] for question, answer in result.get("pairs") or []]


def chunk_text(result: Optional[dict]) -> str:
    return str(result.get("chunk", "")) if result else ""


TOSSED_HEADERS = ["source", "chunk", "tossed at", "reason", "question", "answer"]


def tossed_pair_rows(results: Iterable[dict]) -> list[list[Any]]:
    """Every pair a check or the repair tossed, with the stage and reason."""
    rows = []
    for result in results:
        for record in result.get("vetted") or []:
            if record.get("kept"):
                continue
            rows.append(
                [
                    str(result.get("source", "")),
                    result.get("chunk_index", 0),
                    str(record.get("tossed_at", "")),
                    str(record.get("reason", "")),
                    str(record.get("question", "")),
                    str(record.get("answer", "")),
                ]
            )
    return rows


FAILED_CHUNK_HEADERS = ["source", "chunk", "stage", "reason"]


def failed_chunk_rows(results: Iterable[dict]) -> list[list[Any]]:
    """Chunks that yielded no questions, or whose conversation failed its check."""
    return [
        [str(r.get("source", "")), r.get("chunk_index", 0), str(r["failure"].get("stage", "")), str(r["failure"].get("reason", ""))]
        for r in results
        if isinstance(r.get("failure"), dict)
    ]


def output_files(output_dir: Path) -> list[Path]:
    """The datasets and the run report that exist in output_dir."""
    return [output_dir / name for name in (*DATASET_FILES, RUN_REPORT) if (output_dir / name).is_file()]


def stage_downloads(files: Iterable[Path], staging_dir: Path) -> list[str]:
    """Hard links (or copies) of the output files in a folder the web server may serve.

    Gradio serves only files under the temp dir, the working dir or allowed
    paths, and OUTPUT may be anywhere; a hard link costs no space."""
    staging_dir.mkdir(parents=True, exist_ok=True)
    staged = []
    for source in files:
        target = staging_dir / sanitize_filename(source.name)
        temporary = staging_dir / f".{target.name}.{os.getpid()}.{threading.get_ident()}"
        try:
            os.link(source, temporary)
        except OSError:
            shutil.copyfile(source, temporary)
        os.replace(temporary, target)
        staged.append(str(target))
    return staged
