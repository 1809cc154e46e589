"""The settings form, read off the typed config model (generation_functions/config.py).

Every key of the config file becomes one `SettingField`: its dotted name, the
kind of widget that edits it, its default, bounds and choices. Nothing here
lists the keys by hand, so a key or a whole section added to the config model
appears in the form, is sent to the run and is saved, without a change here.
Only the human labels are written out (`LABELS`); a key without one is labelled
from its name.

A value the form cannot show in a widget of its own (a mapping such as
BUDGET.PRICES, or any other structured type) is edited as YAML text.
"""

from __future__ import annotations

import re
import types
import typing
from dataclasses import dataclass
from typing import Any, Literal, Optional, Sequence

import annotated_types
import yaml
from pydantic import BaseModel

from generation_functions.config import ConfigFile

FieldKind = Literal["text", "secret", "long_text", "url_list", "string_list", "int", "float", "bool", "choice", "yaml"]

# Labels a person reads; the dotted key is shown small beside each one.
LABELS = {
    "API.API_KEY": "API key",
    "API.BASE_URL": "Server URL(s)",
    "API.LARGE_LOGICAL_MODEL": "Conversation model",
    "API.LOGICAL_MODEL": "Model for questions, checks and repair",
    "PATH.INPUT": "Input folder (documents)",
    "PATH.OUTPUT": "Output folder (datasets)",
    "PATH.DEFAULT_PROMPTS": "Default prompt folder",
    "PATH.PROMPTS": "Prompt set",
    "SYSTEM.CHUNK_SIZE": "Chunk size (characters)",
    "SYSTEM.COMPLETION_MODE": "Completion mode (text prompts)",
    "SYSTEM.CONCURRENCY_LIMIT": "Requests in flight at once",
    "SYSTEM.DOUBLE_CHECK_COUNTER": "Votes per check",
    "SYSTEM.FINAL_ASSISTANT_PROMPT_NO_RAG": "System prompt of the conversations (no RAG)",
    "SYSTEM.FINAL_ASSISTANT_PROMPT_RAG": "System prompt with the chunk (RAG)",
    "SYSTEM.MODE": "API kind",
    "SYSTEM.STOP": "Send stop sequences",
    "SYSTEM.STOP_SEQUENCES": "Stop sequences",
    "SYSTEM.SUBSET_SIZE": "Subset size (chunks)",
    "SYSTEM.USE_SUBSET": "Process only a subset",
    "SYSTEM.REQUEST_TIMEOUT": "Request timeout (seconds)",
    "SYSTEM.MAX_RETRY_SECONDS": "Keep retrying a request for (seconds)",
    "SYSTEM.CONSTRAINED_OUTPUT": "Constrained output (keep every output to its format)",
    "SKIP.CHUNK_FILTER": "Skip the chunk filter",
    "SKIP.QUESTION_CHECK": "Skip the question check",
    "SKIP.ANSWER_CHECK": "Skip the answer check",
    "SKIP.CONTEXT_REPAIR": "Skip context repair",
    "BUDGET.MAX_REQUESTS": "Stop after this many requests (0: no cap)",
    "BUDGET.MAX_TOKENS": "Stop after this many tokens (0: no cap)",
    "BUDGET.MAX_COST": "Stop at this cost (0: no cap)",
    "BUDGET.PRICES": "Prices per million tokens, per model",
}
SECTION_TITLES = {
    "API": "Model server",
    "PATH": "Folders",
    "SYSTEM": "Run",
    "SKIP": "Skip steps",
    "BUDGET": "Spend caps",
}
SECRET_KEY = re.compile(r"(^|_)(API_KEY|KEY|SECRET|PASSWORD)$")


@dataclass(frozen=True)
class SettingField:
    """One config key and the kind of widget that edits it."""

    path: tuple[str, ...]  # ("SYSTEM", "CHUNK_SIZE"); deeper for nested sections
    kind: FieldKind
    default: Any
    required: bool
    optional: bool = False  # may be left unset (None): an empty widget leaves the key out
    choices: tuple[str, ...] = ()
    bounds: str = ""
    description: str = ""  # the model's own description, if it has one

    @property
    def name(self) -> str:
        return ".".join(self.path)

    @property
    def section(self) -> str:
        return self.path[0]

    @property
    def label(self) -> str:
        """Its label in LABELS, else its name in words ("Question generation: max tokens" for
        SAMPLING.QUESTION_GENERATION.MAX_TOKENS: a nested key says what it belongs to)."""
        if self.name in LABELS:
            return LABELS[self.name]
        if len(self.path) > 2:
            return f"{humanize(self.path[-2])}: {humanize(self.path[-1]).lower()}"
        return humanize(self.path[-1])

    @property
    def elem_id(self) -> str:
        """A CSS-safe id for the widget (its label gets the key beside it)."""
        return "cfg-" + re.sub(r"[^A-Za-z0-9_-]", "-", self.name)


def humanize(key: str) -> str:
    words = key.replace("_", " ").strip().lower()
    return words[:1].upper() + words[1:]


def section_title(section: str) -> str:
    return SECTION_TITLES.get(section) or humanize(section)


def setting_fields(model: type[BaseModel] = ConfigFile) -> list[SettingField]:
    """Every key of the config file, in the model's order, nested sections flattened."""
    return list(_fields_of(model, ()))


def _fields_of(model: type[BaseModel], prefix: tuple[str, ...]) -> typing.Iterator[SettingField]:
    for key, info in model.model_fields.items():
        annotation, optional = _unwrap_optional(info.annotation)
        if _is_model(annotation):
            yield from _fields_of(annotation, (*prefix, key))
            continue
        default = None if info.is_required() else info.get_default(call_default_factory=True)
        yield SettingField(
            path=(*prefix, key),
            kind=field_kind(key, annotation, default),
            default=default,
            required=info.is_required(),
            optional=optional,
            choices=literal_choices(annotation),
            bounds=describe_bounds(info.metadata),
            description=info.description or "",
        )


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _unwrap_optional(annotation: Any) -> tuple[Any, bool]:
    """(X, True) for Optional[X]; (annotation, False) otherwise."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        if len(args) < len(typing.get_args(annotation)):
            return (args[0] if len(args) == 1 else typing.Union[tuple(args)]), True
    return annotation, False


def _bare(annotation: Any) -> Any:
    """The type without pydantic's Annotated markers (StrictStr -> str)."""
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    return annotation


def field_kind(key: str, annotation: Any, default: Any) -> FieldKind:
    annotation = _bare(annotation)
    if literal_choices(annotation):
        return "choice"
    if annotation is bool:
        return "bool"
    if annotation is int:
        return "int"
    if annotation is float:
        return "float"
    if _is_str_or_list_of_str(annotation):
        return "url_list"
    if typing.get_origin(annotation) is list and [_bare(arg) for arg in typing.get_args(annotation)] == [str]:
        # One per line only for short one-line items (stop sequences); a list that may hold
        # paragraphs (prompt variants) is edited as YAML, where an item can span lines.
        if default and all(isinstance(item, str) and "\n" not in item and len(item) <= 80 for item in default):
            return "string_list"
        return "yaml"
    if annotation is str:
        if SECRET_KEY.search(key):
            return "secret"
        if isinstance(default, str) and ("\n" in default or len(default) > 80):
            return "long_text"
        return "text"
    return "yaml"  # mappings, lists of other things, anything new: edited as YAML


def literal_choices(annotation: Any) -> tuple[str, ...]:
    if typing.get_origin(annotation) is Literal:
        return tuple(str(choice) for choice in typing.get_args(annotation))
    return ()


def _is_str_or_list_of_str(annotation: Any) -> bool:
    if typing.get_origin(annotation) not in (typing.Union, types.UnionType):
        return False
    args = [_bare(arg) for arg in typing.get_args(annotation)]
    return str in args and any(typing.get_origin(arg) is list for arg in args)


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


# ---------------------------------------------------------------- help text

# A row of the README's config table: `SECTION.KEY` (or `SAMPLING.<STEP>.TEMPERATURE`, `.TOP_P`), then its meaning.
_KEY = r"`(?:[A-Z_]+|\.[A-Z_]+)(?:\.(?:[A-Za-z_]+|<[A-Z_]+>))*`"
_README_ROW = re.compile(rf"^\|\s*({_KEY}(?:\s*,\s*{_KEY})*)\s*\|\s*(.+?)\s*\|\s*$")


def help_from_readme(readme_text: str) -> dict[str, str]:
    """SECTION.KEY -> its meaning, from the README's table of config keys. A key written with a
    placeholder (SAMPLING.<STEP>.TEMPERATURE) stands for every key of that shape; `.TOP_P` after it
    shares its prefix."""
    help_texts = {}
    for line in readme_text.splitlines():
        match = _README_ROW.match(line)
        if not match:
            continue
        prefix = ""
        for name in re.findall(r"`([^`]+)`", match.group(1)):
            if name.startswith("."):
                name = prefix + name
            elif "." not in name:
                continue
            prefix = name.rsplit(".", 1)[0]
            help_texts[name] = _plain(match.group(2))
    return help_texts


def help_for(name: str, help_texts: dict[str, str]) -> str:
    if name in help_texts:
        return help_texts[name]
    for pattern, text in help_texts.items():
        if "<" in pattern and re.fullmatch(re.sub(r"<[^>]+>", "[^.]+", re.escape(pattern)), name):
            return text
    return ""


def _plain(markdown: str) -> str:
    """README table text as plain text: no backticks, link text without its target."""
    return re.sub(r"\[([^\]]+)\]\([^)]*\)", r"\1", markdown).replace("`", "")


def widget_info(setting: SettingField, help_texts: dict[str, str]) -> str:
    parts = [help_for(setting.name, help_texts) or setting.description]
    if setting.bounds:
        parts.append(f"Allowed: {setting.bounds}.")
    if setting.kind == "url_list":
        parts.append("Several servers: one URL per line.")
    if setting.kind == "string_list":
        parts.append("One per line.")
    if setting.kind == "yaml":
        parts.append("Written as YAML; leave empty for none.")
    if setting.optional:
        parts.append("Leave empty to use the default.")
    return " ".join(part for part in parts if part)


# ---------------------------------------------------------------- values


def lookup(data: Any, path: Sequence[str]) -> tuple[bool, Any]:
    """(True, value) when the nested mapping holds the key path; (False, None) otherwise."""
    for key in path:
        if not isinstance(data, dict) or key not in data:
            return False, None
        data = data[key]
    return True, data


def values_from_settings(data: dict, fields: Sequence[SettingField]) -> list[Any]:
    """The widget value of each field, from a config dict (missing keys show their defaults).
    A secret never leaves the server: its widget always starts empty."""
    values = []
    for setting in fields:
        found, value = lookup(data, setting.path)
        if setting.kind == "secret":
            values.append("")
            continue
        values.append(to_widget_value(setting, value if found else setting.default))
    return values


def to_widget_value(setting: SettingField, value: Any) -> Any:
    """A value the widget can show; one it cannot (a word in a number field) shows
    the default, and the load message names the key."""
    if setting.kind == "yaml":
        return _yaml_text(value)
    if value is None and setting.optional:
        return None if setting.kind in ("int", "float") else ""
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


class _BlockDumper(yaml.SafeDumper):
    """Multi-line strings as `|` blocks, readable in a text box."""


_BlockDumper.add_representer(
    str, lambda dumper, value: dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)
)


def _yaml_text(value: Any) -> str:
    if value in (None, {}, []):
        return ""
    return yaml.dump(
        _plain_data(value), Dumper=_BlockDumper, sort_keys=False, allow_unicode=True, default_flow_style=None, width=100
    ).strip()


def _plain_data(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump()
    if isinstance(value, dict):
        return {str(k): _plain_data(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain_data(v) for v in value]
    return value


class FormValueError(ValueError):
    """A widget holds text that is not a value at all (YAML that does not parse)."""

    def __init__(self, setting: SettingField, message: str):
        super().__init__(f"{setting.name}: {message}")
        self.setting = setting


UNSET = object()  # an optional key left empty: not written, so its default applies


def setting_value(setting: SettingField, value: Any) -> Any:
    """A widget's value as the config file would hold it. Nothing is clamped or
    rounded: a bad value goes on to pydantic, so its message is processing.py's."""
    if setting.optional and (value is None or (isinstance(value, str) and not value.strip())):
        return UNSET
    if setting.kind == "yaml":
        return _parse_yaml_value(setting, value)
    if setting.kind == "url_list":
        urls = [line.strip() for line in str(value or "").splitlines() if line.strip()]
        return urls[0] if len(urls) == 1 else urls
    if setting.kind == "string_list":
        # Kept as typed (a stop sequence may start with a space); blank lines are dropped.
        return [line for line in str(value or "").splitlines() if line.strip()]
    if setting.kind == "int" and isinstance(value, float) and value.is_integer():
        return int(value)
    if setting.kind == "float" and isinstance(value, float) and value.is_integer():
        return int(value)  # 180, not 180.0, as a person writes it; a float key accepts it
    if setting.kind in ("text", "secret") and isinstance(value, str):
        return value.strip()
    return value


def _parse_yaml_value(setting: SettingField, text: Any) -> Any:
    if not isinstance(text, str) or not text.strip():
        return setting.default
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        problem = str(exc).splitlines()[0]
        raise FormValueError(setting, f"is not valid YAML ({problem})") from None


def settings_from_values(
    values: Sequence[Any], fields: Sequence[SettingField], stored: Optional[dict] = None
) -> dict[str, Any]:
    """A config dict from widget values, in the shape the config file has.

    `stored` is the config file as saved on the server: an empty secret field
    keeps the secret stored there (the browser never sees it)."""
    if len(values) != len(fields):
        raise ValueError(f"expected {len(fields)} setting values, got {len(values)}")
    data: dict[str, Any] = {}
    for setting, value in zip(fields, values):
        converted = setting_value(setting, value)
        if setting.kind == "secret" and converted == "":
            found, kept = lookup(stored or {}, setting.path)
            converted = kept if found else ""
        if converted is UNSET:
            continue
        place = data
        for key in setting.path[:-1]:
            place = place.setdefault(key, {})
        place[setting.path[-1]] = converted
    return data
