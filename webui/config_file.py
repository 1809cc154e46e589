"""Reading, checking and saving the config file for the WebUI.

Settings are validated by the same `config_from_dict` as processing.py, so the
rules and messages are the same. Saving edits the file in place with a
round-trip YAML library (ruamel.yaml): only the keys whose value changed are
rewritten, so the user's comments, key order and number formats stay as they
were. A key the file does not have is added only when its value differs from
the default. A secret (the API key) is never sent to the browser: an empty
secret field keeps the one in the file.
"""

from __future__ import annotations

import io
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import yaml
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import YAMLError as RuamelError
from ruamel.yaml.scalarstring import LiteralScalarString

from generation_functions.config import Config, config_from_dict, parse_yaml
from generation_functions.errors import ConfigError
from generation_functions.store import atomic_write_text
from webui.settings_form import SettingField, lookup

# What an unsaved form is called in messages (and cut off them: the form has no file name).
FORM_SOURCE = "settings"
CONFIG_HEADER = "# Verustoolkit configuration. Every key is explained in README.md.\n"


def read_settings_file(config_path: Path) -> tuple[dict, str]:
    """The settings as processing.py reads them, and a problem to show (empty if none).

    An unreadable or invalid file still opens the UI (with defaults or its
    values) so that it can be fixed there."""
    try:
        data = parse_yaml(config_path.read_text(encoding="utf-8"), str(config_path))
    except FileNotFoundError:
        return {}, f"{config_path} does not exist yet; the defaults are shown. Save to create it."
    except (OSError, UnicodeDecodeError) as exc:
        return {}, f"cannot read {config_path}: {exc}; the defaults are shown."
    except ConfigError as exc:  # the same YAML rules as processing.py (a key given twice, nesting)
        return {}, f"cannot read it: {exc}; the defaults are shown."
    if data is None:
        return {}, ""
    if not isinstance(data, dict):
        return {}, f"{config_path}: expected a mapping with the sections API, PATH, SYSTEM and SKIP; the defaults are shown."
    return data, settings_problem(data, config_path, check_input=False, source=str(config_path))


def stored_settings(config_path: Path) -> dict:
    """The config file as saved on the server now ({} when it cannot be read)."""
    return read_settings_file(config_path)[0]


def validate_settings(data: dict, config_path: Path, check_input: bool = True, source: str = FORM_SOURCE) -> Config:
    """The same validation as processing.py's load_config; raises ConfigError."""
    return config_from_dict(data, base_dir=config_path.resolve().parent, source=source, check_input=check_input)


def settings_problem(data: dict, config_path: Path, check_input: bool = True, source: str = FORM_SOURCE) -> str:
    """The problem processing.py would report, or "". Checked form settings get no
    file name in front: they are not the file (yet)."""
    try:
        validate_settings(data, config_path, check_input, source)
    except ConfigError as exc:
        return without_source(str(exc), source)
    return ""


def without_source(message: str, source: str = FORM_SOURCE) -> str:
    prefix = f"{source}: "
    return message[len(prefix):] if source == FORM_SOURCE and message.startswith(prefix) else message


def resolve_setting_path(value: str, config_path: Path) -> Path:
    """A PATH value resolved the way config.py resolves it: from the config file's folder."""
    path = Path(os.path.expanduser(value or "."))
    return path if path.is_absolute() else (config_path.resolve().parent / path).resolve()


# ---------------------------------------------------------------- problems next to their field


@dataclass
class Problems:
    by_field: dict[str, list[str]] = field(default_factory=dict)
    general: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.by_field or self.general)

    def all(self) -> list[str]:
        return [*self.general, *(text for texts in self.by_field.values() for text in texts)]


def split_problems(message: str, fields: Sequence[SettingField]) -> Problems:
    """A validation message split into the part each field concerns.

    config.py names the key at the start of each problem ("SYSTEM.CHUNK_SIZE = 50: ...",
    "PATH.INPUT folder ... does not exist") and joins problems with "; ". A problem
    about a key inside a field (BUDGET.PRICES.m.PROMPT) belongs to that field."""
    names = sorted((f.name for f in fields), key=len, reverse=True)
    starts = "|".join(re.escape(name) for name in names)
    parts = re.split(rf"; (?=(?:{starts})\b)", message) if message else []
    problems = Problems()
    for part in parts:
        owner = next((name for name in names if part == name or re.match(rf"{re.escape(name)}(?![A-Za-z0-9_])", part)), None)
        if owner is None:
            problems.general.append(part)
        else:
            problems.by_field.setdefault(owner, []).append(part)
    return problems


# ---------------------------------------------------------------- saving


def _round_trip_yaml() -> YAML:
    handler = YAML(typ="rt")
    handler.preserve_quotes = True
    handler.width = 4096  # never fold a long line the user wrote on one line
    handler.indent(mapping=2, sequence=2, offset=0)
    return handler


@dataclass(frozen=True)
class SaveResult:
    saved: bool
    message: str
    problems: Problems = field(default_factory=Problems)


def save_settings(form: dict, config_path: Path, fields: Sequence[SettingField]) -> SaveResult:
    """Write the form's settings into the config file if they are valid."""
    text, note = updated_config_text(form, config_path, fields)
    try:
        merged = yaml.safe_load(text)
    except yaml.YAMLError as exc:  # ruamel wrote what PyYAML cannot read: refuse rather than break the file
        return SaveResult(False, f"Not saved: the settings do not make valid YAML ({exc}).")
    problem = settings_problem(merged if isinstance(merged, dict) else {}, config_path, check_input=False)
    if problem:
        return SaveResult(False, f"Not saved: {problem}", split_problems(problem, fields))
    atomic_write_text(config_path, text, durable=True)
    return SaveResult(True, f"Saved to {config_path}.{note}")


def updated_config_text(form: dict, config_path: Path, fields: Sequence[SettingField]) -> tuple[str, str]:
    """The config file's text with the form's values in place, and a note for the user."""
    handler = _round_trip_yaml()
    note = ""
    try:
        original = config_path.read_text(encoding="utf-8")
        document = handler.load(original)
        file_data = yaml.safe_load(original)
    except FileNotFoundError:
        document, file_data = None, None
    except (OSError, UnicodeDecodeError, RuamelError, yaml.YAMLError, RecursionError) as exc:
        document, file_data = None, None
        note = f" The old file could not be read ({type(exc).__name__}), so it was written anew."
    if not isinstance(document, CommentedMap) or not isinstance(file_data, dict):
        document, file_data = CommentedMap(), {}
        document.yaml_set_start_comment(CONFIG_HEADER.strip("# \n"))
    for setting in fields:
        _update_key(document, file_data, form, setting)
    stream = io.StringIO()
    handler.dump(document, stream)
    return stream.getvalue(), note


def _update_key(document: CommentedMap, file_data: dict, form: dict, setting: SettingField) -> None:
    in_file, file_value = lookup(file_data, setting.path)
    in_form, new_value = lookup(form, setting.path)
    if not in_form:  # an optional key left empty: its default applies
        if in_file:
            _delete(document, setting.path)
        return
    if in_file and _same(file_value, new_value):
        return  # untouched: keeps its format (180 stays 180) and its comments
    if not in_file and _same(new_value, setting.default):
        return  # not in the file and at its default: the file stays as short as the user wrote it
    _assign(document, setting.path, new_value)


def _same(a: Any, b: Any) -> bool:
    """Equal as config values: 180 and 180.0 are the same number, True and 1 are not the same."""
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b
    return type(a) is type(b) and a == b


def _assign(document: CommentedMap, path: Sequence[str], value: Any) -> None:
    place = document
    for key in path[:-1]:
        if not isinstance(place.get(key), dict):
            place[key] = CommentedMap()
        place = place[key]
    place[path[-1]] = _yaml_value(value)


def _yaml_value(value: Any) -> Any:
    """Multi-line text as a `|` block, as a person writes it in config.yaml."""
    if isinstance(value, str) and "\n" in value:
        return LiteralScalarString(value)
    if isinstance(value, list):
        return [_yaml_value(item) for item in value]
    if isinstance(value, dict):
        return {key: _yaml_value(item) for key, item in value.items()}
    return value


def _delete(document: CommentedMap, path: Sequence[str]) -> None:
    """Remove a key, and the sections that only held it (an emptied SAMPLING.CONVERSATION goes too)."""
    parents: list[Any] = [document]
    for key in path[:-1]:
        child = parents[-1].get(key) if isinstance(parents[-1], dict) else None
        if not isinstance(child, dict):
            return
        parents.append(child)
    parents[-1].pop(path[-1], None)
    for depth in range(len(path) - 1, 0, -1):
        if parents[depth]:
            break
        parents[depth - 1].pop(path[depth - 1], None)


def stored_secret_names(stored: dict, fields: Sequence[SettingField]) -> list[str]:
    """The secret keys that hold a value in the file (their widgets say one is set)."""
    names = []
    for setting in fields:
        if setting.kind == "secret":
            found, value = lookup(stored, setting.path)
            if found and isinstance(value, str) and value.strip():
                names.append(setting.name)
    return names


def describe_problems(problems: Problems, fields: Sequence[SettingField]) -> str:
    """All problems as Markdown, each under its field's label."""
    labels = {f.name: f.label for f in fields}
    lines = [f"- {text}" for text in problems.general]
    lines += [f"- **{labels.get(name, name)}**: {text}" for name, texts in problems.by_field.items() for text in texts]
    return "\n".join(lines)
