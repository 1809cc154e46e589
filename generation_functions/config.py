"""config.yaml, parsed once into a typed, validated object.

Unknown or misspelt keys, wrong types and out-of-range values are errors that
name the key (as SECTION.KEY). Relative paths are taken from the folder that
holds the config file, so a run does not depend on the current directory.
"""

from __future__ import annotations

import difflib
import io
import os
import tempfile
from pathlib import Path
from typing import Any, Literal, Optional
from urllib.parse import urlsplit

import httpx
import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)

from generation_functions.errors import ConfigError
from generation_functions.steps import STEPS

# Where an empty API.API_KEY is looked up, first match wins.
# Sent as stop sequences while SYSTEM.STOP is true: the completion prompts'
# next-instruction marker and the end-of-turn tokens of common chat formats
# (Llama 3, ChatML, Llama 2 / Mistral). OpenAI's API accepts at most four.
DEFAULT_STOP_SEQUENCES = ("### Instruction:", "<|eot_id|>", "<|im_end|>", "</s>")

API_KEY_ENV_VARS = {
    "api": ("VERUSTOOLKIT_API_KEY", "OPENAI_API_KEY"),
    "cohere": ("VERUSTOOLKIT_API_KEY", "COHERE_API_KEY", "CO_API_KEY"),
}


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def check_url(url: str) -> str:
    """A server URL that every HTTP client of the project can open, or ValueError saying why not.

    Checked here so that a typo is a config error naming the key, not an
    OverflowError or InvalidURL from deep inside a client when the run starts."""
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"{url!r} is not an http:// or https:// URL")
    if any(char.isspace() or ord(char) < 32 or ord(char) == 127 for char in url):
        raise ValueError(f"{url!r} holds a space or a control character")
    try:
        parts = urlsplit(url)
        port = parts.port
        httpx.URL(url)
    except (ValueError, httpx.InvalidURL) as exc:
        raise ValueError(f"{url!r} is not a valid URL ({exc})") from None
    if not parts.hostname:
        raise ValueError(f"{url!r} names no host")
    if port == 0:
        raise ValueError(f"{url!r}: port 0 is not a port a server listens on")
    return url


def check_api_key(key: str) -> str:
    """An API key goes into an HTTP header, which holds printable ASCII only (no spaces)."""
    if any(not (33 <= ord(char) <= 126) for char in key.strip()):
        raise ValueError("an API key holds printable ASCII characters only (no accents, spaces or line breaks)")
    return key


def _no_empty_path(value: str) -> str:
    if not value.strip():
        raise ValueError("an empty path (write '.' for the config file's own folder)")
    if "\x00" in value:
        raise ValueError("a path cannot hold a NUL character")
    return value


class ApiSection(_Section):
    API_KEY: StrictStr = ""
    BASE_URL: StrictStr | list[StrictStr] = "http://127.0.0.1:8080/v1"
    LARGE_LOGICAL_MODEL: StrictStr = Field(min_length=1)
    LOGICAL_MODEL: StrictStr = Field(min_length=1)

    @field_validator("BASE_URL")
    @classmethod
    def _urls_look_like_urls(cls, value: str | list[str]) -> str | list[str]:
        urls = [value] if isinstance(value, str) else value
        if not urls:
            raise ValueError("give at least one URL")
        for url in urls:
            check_url(url)
        return value

    @field_validator("API_KEY")
    @classmethod
    def _key_fits_a_header(cls, value: str) -> str:
        return check_api_key(value)


class PathSection(_Section):
    INPUT: StrictStr = "./raw_text_input"
    OUTPUT: StrictStr = "./output"
    DEFAULT_PROMPTS: StrictStr = "./prompts"
    PROMPTS: StrictStr = "./prompts"

    # An empty path would mean the config file's folder: OUTPUT '' writes the datasets among the project's files.
    _paths_are_given = field_validator("INPUT", "OUTPUT", "DEFAULT_PROMPTS", "PROMPTS")(_no_empty_path)


class SystemSection(_Section):
    CHUNK_SIZE: StrictInt = Field(default=1900, ge=200, le=1_000_000)
    COMPLETION_MODE: StrictBool = False
    CONCURRENCY_LIMIT: StrictInt = Field(default=50, ge=1, le=10_000)
    DOUBLE_CHECK_COUNTER: StrictInt = Field(default=3, ge=1, le=100)
    FINAL_ASSISTANT_PROMPT_NO_RAG: StrictStr = (
        "You are a helpful AI assistant who knows the Verus project well. Answer questions about Verus accurately."
    )
    FINAL_ASSISTANT_PROMPT_RAG: StrictStr = (
        "You are a helpful AI assistant who knows the Verus project well. "
        "Use this information to answer the user's questions:\n\n{data}"
    )
    # More wordings of the two system prompts: each conversation gets one of the prompt and its
    # variants, picked by the conversation's content, so a model does not learn one fixed wording.
    FINAL_ASSISTANT_PROMPT_NO_RAG_VARIANTS: list[StrictStr] = Field(default_factory=list)
    FINAL_ASSISTANT_PROMPT_RAG_VARIANTS: list[StrictStr] = Field(default_factory=list)
    # RAG rows like real retrieval (generation_functions/rag_rows.py).
    RAG_NEIGHBOURS: StrictInt = Field(default=2, ge=0, le=10)
    RAG_DISTRACTOR_SHARE: StrictFloat = Field(default=0.1, ge=0, le=0.5)
    RAG_DISTRACTOR_ANSWER: Literal["decline", "knowledge"] = "decline"
    RAG_DECLINE_ANSWER: StrictStr = Field(
        default="The information I was given does not cover that, so I can't answer it reliably from it.", min_length=1
    )
    MODE: Literal["api", "cohere"] = "api"
    STOP: StrictBool = True
    STOP_SEQUENCES: list[StrictStr] = Field(default_factory=lambda: list(DEFAULT_STOP_SEQUENCES))
    SUBSET_SIZE: StrictInt = Field(default=20, ge=1)
    USE_SUBSET: StrictBool = False
    # Strict: `REQUEST_TIMEOUT: true` or '10' is a mistake, not a number (an int is fine).
    REQUEST_TIMEOUT: StrictFloat = Field(default=180.0, gt=0, le=3600)
    MAX_RETRY_SECONDS: StrictFloat = Field(default=600.0, ge=0, le=86_400)
    # Each step's output format sent as a decoding constraint (README: "Constrained output").
    # Off when the key is absent, so configs written before it behave as they did.
    CONSTRAINED_OUTPUT: Literal["auto", "grammar", "json_schema", "off"] = "off"

    @field_validator("FINAL_ASSISTANT_PROMPT_RAG", "FINAL_ASSISTANT_PROMPT_RAG_VARIANTS")
    @classmethod
    def _rag_prompts_have_data(cls, value: str | list[str]) -> str | list[str]:
        for prompt in [value] if isinstance(value, str) else value:
            if "{data}" not in prompt:
                raise ValueError("a RAG system prompt needs {data}, where the retrieved text goes")
        return value

    @field_validator("FINAL_ASSISTANT_PROMPT_NO_RAG_VARIANTS")
    @classmethod
    def _no_empty_variant(cls, value: list[str]) -> list[str]:
        if any(not prompt.strip() for prompt in value):
            raise ValueError("an empty system prompt variant")
        return value

    @property
    def no_rag_prompts(self) -> tuple[str, ...]:
        return (self.FINAL_ASSISTANT_PROMPT_NO_RAG, *self.FINAL_ASSISTANT_PROMPT_NO_RAG_VARIANTS)

    @property
    def rag_prompts(self) -> tuple[str, ...]:
        return (self.FINAL_ASSISTANT_PROMPT_RAG, *self.FINAL_ASSISTANT_PROMPT_RAG_VARIANTS)

    @field_validator("STOP_SEQUENCES")
    @classmethod
    def _no_empty_stop(cls, value: list[str]) -> list[str]:
        if any(not stop for stop in value):
            raise ValueError("an empty stop sequence would stop every answer at once")
        return value


class SkipSection(_Section):
    CHUNK_FILTER: StrictBool = False
    QUESTION_CHECK: StrictBool = False
    # Off, every pair that reaches the step goes on as it is: for a model too small to judge
    # (every pair tossed) or to spend less; the data is then only as good as the generator.
    ANSWER_CHECK: StrictBool = False
    CONTEXT_REPAIR: StrictBool = False


class PriceEntry(_Section):
    PROMPT: StrictFloat = Field(ge=0)  # per million prompt tokens
    COMPLETION: StrictFloat = Field(ge=0)  # per million completion tokens


class BudgetSection(_Section):
    """Optional caps; 0 means no cap."""

    MAX_REQUESTS: StrictInt = Field(default=0, ge=0)
    MAX_TOKENS: StrictInt = Field(default=0, ge=0)
    MAX_COST: StrictFloat = Field(default=0.0, ge=0)
    PRICES: dict[str, PriceEntry] = Field(default_factory=dict)


class StepSampling(_Section):
    """One step's sampling. A key left out keeps the step's default (generation_functions/steps.py)."""

    TEMPERATURE: Optional[StrictFloat] = Field(default=None, ge=0, le=2)
    TOP_P: Optional[StrictFloat] = Field(default=None, gt=0, le=1)
    MAX_TOKENS: Optional[StrictInt] = Field(default=None, ge=1, le=1_000_000)

    def overrides(self) -> dict[str, Any]:
        """As Sampling's field names; None means the step's default."""
        return {"temperature": self.TEMPERATURE, "top_p": self.TOP_P, "max_tokens": self.MAX_TOKENS}


# SAMPLING.<STEP KEY>: one optional entry per row of the table of steps.
SamplingSection = create_model(
    "SamplingSection",
    __base__=_Section,
    **{step.key.upper(): (StepSampling, StepSampling()) for step in STEPS},
)


class CandidateEntry(_Section):
    """A model to evaluate: any OpenAI-compatible endpoint."""

    NAME: StrictStr = Field(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_.-]+$")
    BASE_URL: StrictStr
    MODEL: StrictStr = Field(min_length=1)
    API_KEY_ENV: StrictStr = ""  # the environment variable that holds its key; empty: no key

    @field_validator("BASE_URL")
    @classmethod
    def _is_url(cls, value: str) -> str:
        return check_url(value)


class EvaluationSection(_Section):
    """evaluate.py: which models to ask, how, and who judges."""

    CANDIDATES: list[CandidateEntry] = Field(default_factory=list)
    JUDGE_MODEL: StrictStr = ""  # empty: API.LARGE_LOGICAL_MODEL, served at API.BASE_URL
    CONDITIONS: list[Literal["closed_book", "rag", "oracle"]] = Field(
        default_factory=lambda: ["closed_book", "rag", "oracle"], min_length=1
    )
    TOP_K: StrictInt = Field(default=4, ge=1, le=50)
    VOTES: StrictInt = Field(default=3, ge=1, le=15)
    MAX_TOKENS: StrictInt = Field(default=600, ge=16, le=32_000)
    OUTPUT: StrictStr = "./evaluation_results"

    _output_is_given = field_validator("OUTPUT")(_no_empty_path)

    @field_validator("CANDIDATES")
    @classmethod
    def _unique_names(cls, value: list[CandidateEntry]) -> list[CandidateEntry]:
        names = [candidate.NAME for candidate in value]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            raise ValueError(f"candidate names must differ: {', '.join(repeated)} appears more than once")
        return value


class RetrievalSection(_Section):
    """Optional: the search index that chat.py (and evaluation) use to find chunks for a question."""

    INDEX: StrictStr = ""  # the index file; empty: PATH.OUTPUT/retrieval.sqlite
    SOURCE: Literal["input", "output"] = "input"  # index PATH.INPUT's documents, or a finished OUTPUT's chunks
    TOP_K: StrictInt = Field(default=5, ge=1, le=50)
    EMBEDDING_BASE_URL: StrictStr = ""  # an OpenAI-compatible /embeddings server; empty: lexical search only
    EMBEDDING_MODEL: StrictStr = ""
    EMBEDDING_API_KEY: StrictStr = ""  # empty: the same key as the chat models
    EMBEDDING_BATCH_SIZE: StrictInt = Field(default=64, ge=1, le=2048)

    @field_validator("EMBEDDING_BASE_URL")
    @classmethod
    def _embedding_url_looks_like_a_url(cls, value: str) -> str:
        return check_url(value) if value else value

    @field_validator("EMBEDDING_API_KEY")
    @classmethod
    def _key_fits_a_header(cls, value: str) -> str:
        return check_api_key(value)


class _Root(_Section):
    API: ApiSection
    PATH: PathSection = PathSection()
    SYSTEM: SystemSection = SystemSection()
    SKIP: SkipSection = SkipSection()
    BUDGET: BudgetSection = BudgetSection()
    SAMPLING: SamplingSection = SamplingSection()
    EVALUATION: EvaluationSection = EvaluationSection()
    RETRIEVAL: RetrievalSection = RetrievalSection()

    @model_validator(mode="after")
    def _costs_need_prices(self) -> "_Root":
        if self.BUDGET.MAX_COST > 0:
            for model in {self.API.LOGICAL_MODEL, self.API.LARGE_LOGICAL_MODEL}:
                if model not in self.BUDGET.PRICES:
                    raise ValueError(f"BUDGET.MAX_COST needs a price for model {model!r} in BUDGET.PRICES")
        return self

    @model_validator(mode="after")
    def _embedding_model_with_its_server(self) -> "_Root":
        if self.RETRIEVAL.EMBEDDING_BASE_URL and not self.RETRIEVAL.EMBEDDING_MODEL.strip():
            raise ValueError("RETRIEVAL.EMBEDDING_MODEL is required when RETRIEVAL.EMBEDDING_BASE_URL is set")
        return self

    @model_validator(mode="after")
    def _cohere_has_no_completion_mode(self) -> "_Root":
        if self.SYSTEM.MODE == "cohere" and self.SYSTEM.COMPLETION_MODE:
            raise ValueError("SYSTEM.COMPLETION_MODE must be false with SYSTEM.MODE cohere (Cohere serves chat only)")
        return self

    @model_validator(mode="after")
    def _cohere_takes_no_grammar(self) -> "_Root":
        if self.SYSTEM.MODE == "cohere" and self.SYSTEM.CONSTRAINED_OUTPUT == "grammar":
            raise ValueError(
                "SYSTEM.CONSTRAINED_OUTPUT: grammar is not available with SYSTEM.MODE cohere "
                "(Cohere constrains JSON only): use json_schema or auto"
            )
        return self


# The shape of the config file, for tools that walk its keys (the WebUI's settings form).
ConfigFile = _Root


class Config(BaseModel):
    """The validated configuration with resolved paths and the effective API key."""

    model_config = ConfigDict(frozen=True)

    api: ApiSection
    system: SystemSection
    skip: SkipSection
    budget: BudgetSection = BudgetSection()
    sampling: SamplingSection = SamplingSection()
    evaluation: EvaluationSection = EvaluationSection()
    retrieval: RetrievalSection = RetrievalSection()
    input_dir: Path
    output_dir: Path
    evaluation_dir: Path = Path("evaluation_results")
    default_prompts_dir: Path
    prompts_dir: Path
    api_key: str = Field(repr=False)
    embedding_api_key: str = Field(default="", repr=False)
    retrieval_index: Optional[Path] = None  # RETRIEVAL.INDEX resolved; None: the default place

    @property
    def retrieval_index_path(self) -> Path:
        """Where the search index lives: RETRIEVAL.INDEX, else PATH.OUTPUT/retrieval.sqlite."""
        return self.retrieval_index or self.output_dir / "retrieval.sqlite"

    @property
    def base_urls(self) -> list[str]:
        url = self.api.BASE_URL
        return [url] if isinstance(url, str) else list(url)

    def sampling_overrides(self, step_key: str) -> dict[str, Any]:
        """What SAMPLING.<STEP> changes of a step's default sampling (None: unchanged)."""
        return getattr(self.sampling, step_key.upper()).overrides()

    @property
    def prompt_dirs(self) -> list[Path]:
        """Override folder first, then the defaults (once if they are the same folder)."""
        dirs = [self.prompts_dir]
        if self.default_prompts_dir.resolve() != self.prompts_dir.resolve():
            dirs.append(self.default_prompts_dir)
        return dirs


def load_config(path: Path | str, environ: Optional[dict[str, str]] = None, check_input: bool = True) -> Config:
    """check_input=False accepts a missing PATH.INPUT (a chat over a finished OUTPUT needs none)."""
    path = Path(path)
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None
    data = parse_yaml(raw, f"config file {path}")
    return config_from_dict(data, base_dir=path.resolve().parent, environ=environ, source=str(path), check_input=check_input)


class _StrictLoader(yaml.SafeLoader):
    """yaml.safe_load, except that a key given twice in one mapping is an error.

    PyYAML keeps the last value silently, so of two `SKIP:` sections one would
    be ignored without a word."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":  # `<<: *defaults` may be overridden below it
                continue
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                first = seen.get(key)
            except TypeError:  # an unhashable key: the constructor below says so
                continue
            if first is not None:
                raise yaml.constructor.ConstructorError(
                    None, None, f"the key {key!r} is given twice (lines {first} and {line})", key_node.start_mark
                )
            seen[key] = line
        return super().construct_mapping(node, deep)


def parse_yaml(raw: str, source: str) -> Any:
    """The YAML text as Python values; ConfigError (never a traceback) for what cannot be a config."""
    stream = io.StringIO(raw)
    stream.name = source  # named in PyYAML's messages
    try:
        return yaml.load(stream, Loader=_StrictLoader)  # noqa: S506 (a SafeLoader)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source} is not valid YAML: {exc}") from None
    except RecursionError:  # PyYAML builds nested values recursively
        raise ConfigError(f"{source}: {_too_deep(raw)}") from None


_SANE_DEPTH = 50  # a config nests 4 levels; anything past this is a mistake


def _too_deep(raw: str) -> str:
    """Where the YAML nests too deeply, found from its event stream (which does not recurse)."""
    containers = (yaml.MappingStartEvent, yaml.SequenceStartEvent)
    # Per open container: is it a mapping, the key being filled, children finished (keys and values alike).
    stack: list[list[Any]] = []
    try:
        events = list(yaml.parse(raw, Loader=yaml.SafeLoader))
    except (yaml.YAMLError, RecursionError):
        events = []
    for event in events:
        if isinstance(event, (*containers, yaml.ScalarEvent, yaml.AliasEvent)):
            parent = stack[-1] if stack else None
            if parent and parent[0] and parent[2] % 2 == 0 and isinstance(event, yaml.ScalarEvent):
                parent[1] = event.value  # a key: its value comes next
            if isinstance(event, containers):
                if len(stack) >= _SANE_DEPTH:
                    keys = [str(key) for mapping, key, _ in stack if mapping and key is not None][:2]  # SECTION.KEY
                    return f"{'.'.join(keys) or 'the file'} is nested more than {_SANE_DEPTH} levels deep (line {event.start_mark.line + 1})"
                stack.append([isinstance(event, yaml.MappingStartEvent), None, 0])
                continue
        elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
            stack.pop()
        else:
            continue
        if stack:
            stack[-1][2] += 1  # a child finished
    return f"nested more than {_SANE_DEPTH} levels deep"


def config_from_dict(
    data: Any,
    base_dir: Path,
    environ: Optional[dict[str, str]] = None,
    source: str = "config",
    check_input: bool = True,
) -> Config:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping with the sections API, PATH, SYSTEM and SKIP")
    try:
        root = _Root.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(f"{source}: " + _describe(exc)) from None
    environ = dict(os.environ) if environ is None else environ
    api_key = _effective_api_key(root.API.API_KEY, root.SYSTEM.MODE, environ)
    config = Config(
        api=root.API,
        system=root.SYSTEM,
        skip=root.SKIP,
        budget=root.BUDGET,
        sampling=root.SAMPLING,
        evaluation=root.EVALUATION,
        evaluation_dir=_resolve(base_dir, root.EVALUATION.OUTPUT),
        retrieval=root.RETRIEVAL,
        retrieval_index=_resolve(base_dir, root.RETRIEVAL.INDEX) if root.RETRIEVAL.INDEX.strip() else None,
        input_dir=_resolve(base_dir, root.PATH.INPUT),
        output_dir=_resolve(base_dir, root.PATH.OUTPUT),
        default_prompts_dir=_resolve(base_dir, root.PATH.DEFAULT_PROMPTS),
        prompts_dir=_resolve(base_dir, root.PATH.PROMPTS),
        api_key=api_key,
        embedding_api_key=root.RETRIEVAL.EMBEDDING_API_KEY.strip() or api_key,
    )
    _check_paths(config, source, check_input)
    return config


def _resolve(base_dir: Path, value: str) -> Path:
    path = Path(os.path.expanduser(value))
    return path if path.is_absolute() else _real(base_dir / path)


def _real(path: Path) -> Path:
    """Links resolved; unlike Path.resolve, never raises (a link loop stays as it is, and is reported where used)."""
    return Path(os.path.realpath(path))


def _effective_api_key(configured: str, mode: str, environ: dict[str, str]) -> str:
    if configured.strip():
        return configured.strip()
    for name in API_KEY_ENV_VARS[mode]:
        if environ.get(name, "").strip():
            key = environ[name].strip()
            try:
                return check_api_key(key)
            except ValueError as exc:
                raise ConfigError(f"the environment variable {name} (the API key): {exc}") from None
    return ""


def _check_paths(config: Config, source: str, check_input: bool) -> None:
    if check_input and not config.input_dir.is_dir():
        raise ConfigError(f"{source}: PATH.INPUT folder {config.input_dir} does not exist")
    for key, folder in (("PATH.DEFAULT_PROMPTS", config.default_prompts_dir), ("PATH.PROMPTS", config.prompts_dir)):
        if not folder.is_dir():
            raise ConfigError(f"{source}: {key} folder {folder} does not exist")
    if _real(config.output_dir).is_relative_to(_real(config.input_dir)):
        # A rerun would read its own datasets back in as documents.
        raise ConfigError(f"{source}: PATH.OUTPUT {config.output_dir} is inside PATH.INPUT {config.input_dir}")
    if config.output_dir.exists() and not config.output_dir.is_dir():
        raise ConfigError(f"{source}: PATH.OUTPUT {config.output_dir} exists and is not a folder")


def check_output_folder(config: Config, source: str = "config") -> None:
    """ConfigError naming PATH.OUTPUT when the run could not write there (`OUTPUT: /proc/x`).

    Tried for real, in the folder that would hold it: a permission bit says
    little to root or on a read-only mount. Leaves nothing behind."""
    target = config.output_dir
    existing = _nearest_existing(target)
    if existing is None or not existing.is_dir():
        raise ConfigError(f"{source}: PATH.OUTPUT {target} cannot be created ({existing or target} is not a folder)")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".verustoolkit-check-", dir=existing))
    except OSError as exc:
        raise ConfigError(
            f"{source}: PATH.OUTPUT {target} cannot be written ({exc.strerror or exc} in {existing})"
        ) from None


def _nearest_existing(path: Path) -> Optional[Path]:
    """The path or its nearest ancestor that is there (a dangling or looping link counts: it is in the way)."""
    for candidate in (path, *path.parents):
        if os.path.lexists(candidate):
            return candidate
    return None


def config_warnings(config: Config) -> list[str]:
    """Settings that are allowed but almost certainly not what was meant."""
    warnings = []
    stops = config.system.STOP_SEQUENCES if config.system.STOP else []
    openai = [url for url in config.base_urls if (urlsplit(url).hostname or "").endswith("api.openai.com")]
    if openai and len(stops) > 4:
        warnings.append(
            f"SYSTEM.STOP_SEQUENCES has {len(stops)} stop sequences, but OpenAI's API ({openai[0]}) "
            "accepts at most 4 and refuses the request otherwise; keep 4 or fewer"
        )
    return warnings


def _model_at(path: list[str]) -> Optional[type[BaseModel]]:
    """The section model that holds the key at `path` (SAMPLING.CONVERSATION -> StepSampling)."""
    model: type[BaseModel] = _Root
    for part in path:
        field = model.model_fields.get(part)
        annotation = field.annotation if field is not None else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        model = annotation
    return model


def _describe(exc: ValidationError) -> str:
    return "; ".join(_describe_one(error) for error in exc.errors())


def _describe_one(error: dict[str, Any]) -> str:
    loc = [str(part) for part in error["loc"]]
    key = ".".join(loc) or "(top level)"
    kind = error["type"]
    if not loc and kind == "value_error":
        return str(error["ctx"]["error"])
    if kind == "extra_forbidden":
        return f"{key} is not a known key" + _suggestion(loc)
    if kind == "missing":
        return f"{key} is required"
    value = error.get("input")
    shown = repr(value) if not isinstance(value, (dict, list)) else type(value).__name__
    if loc[-1:] and loc[-1].endswith("API_KEY"):
        shown = "(hidden)"
    return f"{key} = {shown}: {error['msg'].removeprefix('Value error, ')}"


def _suggestion(loc: list[str]) -> str:
    model = _model_at(loc[:-1])
    if model is None:
        return ""
    candidates = list(model.model_fields)
    close = difflib.get_close_matches(loc[-1].upper(), candidates, n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else f" (known keys: {', '.join(candidates)})"
