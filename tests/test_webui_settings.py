"""The WebUI's settings form and config file (webui/settings_form.py, webui/config_file.py), without a browser."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Optional

import pytest
import yaml
from pydantic import BaseModel, Field

from generation_functions.config import ApiSection, BudgetSection, ConfigError, ConfigFile, PathSection, SkipSection, SystemSection, load_config
from tests.conftest import REPO
from tests.webui_helpers import BY_NAME, FIELDS, settings_data, widget_values, with_value
from webui import config_file as cf
from webui import settings_form as form

# ---------------------------------------------------------------- fields read off the config model


def test_every_config_key_gets_a_field_in_config_order():
    expected = [
        f"{section}.{key}"
        for section, model in (
            ("API", ApiSection),
            ("PATH", PathSection),
            ("SYSTEM", SystemSection),
            ("SKIP", SkipSection),
            ("BUDGET", BudgetSection),
        )
        for key in model.model_fields
    ]
    names = [f.name for f in FIELDS]
    assert names[: len(expected)] == expected
    assert set(ConfigFile.model_fields) == {f.section for f in FIELDS}
    # The per-step sampling section that came with the table of steps: every step, every setting.
    from generation_functions.steps import STEPS

    for step in STEPS:
        for key in ("TEMPERATURE", "TOP_P", "MAX_TOKENS"):
            setting = BY_NAME[f"SAMPLING.{step.key.upper()}.{key}"]
            assert setting.optional and setting.kind in ("int", "float")
    assert BY_NAME["SAMPLING.CONVERSATION.MAX_TOKENS"].label == "Conversation: max tokens"


def test_sampling_set_in_the_form_is_saved_under_the_commented_example_and_reaches_the_run(tmp_path):
    """A key the config gained after the WebUI was written: shown, kept and honoured without WebUI changes."""
    shipped = (REPO / "config.yaml").read_text(encoding="utf-8")
    path = tmp_path / "config.yaml"
    path.write_text(shipped.replace("./raw_text_input", str(REPO / "raw_text_input")).replace("./prompts", str(REPO / "prompts")), encoding="utf-8")
    data = yaml.safe_load(path.read_text())
    edited = with_value(data, "SAMPLING.CONVERSATION.TEMPERATURE", 0.3)
    assert cf.save_settings(edited, path, FIELDS).saved
    text = path.read_text(encoding="utf-8")
    assert "# Per-step sampling, optional" in text  # the shipped comments stay
    assert yaml.safe_load(text)["SAMPLING"] == {"CONVERSATION": {"TEMPERATURE": 0.3}}
    config = load_config(path)
    assert config.sampling_overrides("conversation")["temperature"] == 0.3
    cleared = with_value(yaml.safe_load(text), "SAMPLING.CONVERSATION.TEMPERATURE", None)
    assert cf.save_settings(cleared, path, FIELDS).saved
    assert "SAMPLING" not in yaml.safe_load(path.read_text())  # emptied sections go too
    assert "# Per-step sampling, optional" in path.read_text()


@pytest.mark.parametrize(
    "name, kind",
    [
        ("API.API_KEY", "secret"),
        ("API.BASE_URL", "url_list"),
        ("API.LOGICAL_MODEL", "text"),
        ("PATH.INPUT", "text"),
        ("SYSTEM.CHUNK_SIZE", "int"),
        ("SYSTEM.REQUEST_TIMEOUT", "float"),
        ("SYSTEM.COMPLETION_MODE", "bool"),
        ("SYSTEM.MODE", "choice"),
        ("SYSTEM.FINAL_ASSISTANT_PROMPT_RAG", "long_text"),
        ("SKIP.QUESTION_CHECK", "bool"),
        ("SYSTEM.STOP_SEQUENCES", "string_list"),
        ("BUDGET.MAX_REQUESTS", "int"),
        ("BUDGET.MAX_COST", "float"),
        ("BUDGET.PRICES", "yaml"),
    ],
)
def test_each_key_gets_the_widget_that_fits_its_type(name, kind):
    assert BY_NAME[name].kind == kind


def test_choices_bounds_and_labels_come_from_the_models():
    assert BY_NAME["SYSTEM.MODE"].choices == ("api", "cohere")
    assert BY_NAME["SYSTEM.CHUNK_SIZE"].bounds == "at least 200, at most 1000000"
    assert BY_NAME["SYSTEM.REQUEST_TIMEOUT"].bounds == "more than 0, at most 3600"
    assert BY_NAME["API.LOGICAL_MODEL"].required and not BY_NAME["API.API_KEY"].required
    assert BY_NAME["SYSTEM.CHUNK_SIZE"].label == "Chunk size (characters)"
    assert BY_NAME["BUDGET.MAX_REQUESTS"].label.startswith("Stop after this many requests")
    assert form.humanize("MAX_RETRY_SECONDS") == "Max retry seconds"


class _StepSampling(BaseModel):
    TEMPERATURE: Optional[float] = Field(default=None, ge=0, le=2)
    MAX_TOKENS: Optional[int] = Field(default=None, ge=1)


class _Sampling(BaseModel):
    QUESTION_GENERATION: _StepSampling = _StepSampling()


class _Future(BaseModel):
    """A config as the lead may grow it: a nested per-step section, a new switch and a mapping."""

    API: ApiSection
    SYSTEM: SystemSection = SystemSection()
    SAMPLING: _Sampling = _Sampling()
    CONSTRAINED_OUTPUT: Literal["off", "json"] = "off"
    EXTRA: dict[str, int] = Field(default_factory=dict)


def test_keys_added_to_the_model_later_appear_and_round_trip(tmp_path):
    fields = form.setting_fields(_Future)
    by_name = {f.name: f for f in fields}
    assert by_name["SAMPLING.QUESTION_GENERATION.TEMPERATURE"].kind == "float"
    assert by_name["SAMPLING.QUESTION_GENERATION.TEMPERATURE"].optional
    assert by_name["CONSTRAINED_OUTPUT"].choices == ("off", "json")
    assert by_name["EXTRA"].kind == "yaml"
    data = {"API": {"LOGICAL_MODEL": "m", "LARGE_LOGICAL_MODEL": "m"}, "SAMPLING": {"QUESTION_GENERATION": {"MAX_TOKENS": 900}}}
    values = form.values_from_settings(data, fields)
    values[[f.name for f in fields].index("CONSTRAINED_OUTPUT")] = "json"
    values[[f.name for f in fields].index("EXTRA")] = "a: 1"
    settings = form.settings_from_values(values, fields)
    assert settings["SAMPLING"] == {"QUESTION_GENERATION": {"MAX_TOKENS": 900}}  # an empty optional stays unset
    assert settings["CONSTRAINED_OUTPUT"] == "json" and settings["EXTRA"] == {"a": 1}
    assert _Future.model_validate(settings).SAMPLING.QUESTION_GENERATION.MAX_TOKENS == 900
    # Saved into a file with comments: the new keys are written, the comment stays.
    path = tmp_path / "future.yaml"
    path.write_text("# mine\nAPI:\n  LOGICAL_MODEL: m  # small\n  LARGE_LOGICAL_MODEL: m\n", encoding="utf-8")
    text, _ = cf.updated_config_text(settings, path, fields)
    assert "# mine" in text and "# small" in text
    assert yaml.safe_load(text)["SAMPLING"]["QUESTION_GENERATION"] == {"MAX_TOKENS": 900}
    assert yaml.safe_load(text)["CONSTRAINED_OUTPUT"] == "json"


def test_widget_help_comes_from_the_readme_table():
    help_texts = form.help_from_readme((REPO / "README.md").read_text(encoding="utf-8"))
    assert "chunk" in help_texts["SYSTEM.CHUNK_SIZE"].lower()
    assert help_texts["SYSTEM.USE_SUBSET"] == help_texts["SYSTEM.SUBSET_SIZE"]  # one row names both keys
    assert "BUDGET.MAX_REQUESTS" in help_texts and "](" not in help_texts["BUDGET.MAX_REQUESTS"]
    info = form.widget_info(BY_NAME["SYSTEM.CHUNK_SIZE"], help_texts)
    assert info.endswith("Allowed: at least 200, at most 1000000.")


# ---------------------------------------------------------------- values


def test_shipped_config_round_trips_through_the_widgets_unchanged():
    config_path = REPO / "config.yaml"
    data = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    round_tripped = form.settings_from_values(widget_values(data), FIELDS, stored=data)
    assert cf.validate_settings(round_tripped, config_path) == load_config(config_path)


def test_widget_values_become_config_values():
    url = BY_NAME["API.BASE_URL"]
    assert form.setting_value(url, " http://a/v1 \n") == "http://a/v1"
    assert form.setting_value(url, "http://a/v1\n\nhttp://b/v1") == ["http://a/v1", "http://b/v1"]
    assert form.setting_value(BY_NAME["SYSTEM.CHUNK_SIZE"], 1900.0) == 1900
    assert isinstance(form.setting_value(BY_NAME["SYSTEM.CHUNK_SIZE"], 1900.0), int)
    assert form.setting_value(BY_NAME["SYSTEM.CHUNK_SIZE"], 2.5) == 2.5  # not rounded: pydantic says why it is wrong
    assert form.setting_value(BY_NAME["SYSTEM.REQUEST_TIMEOUT"], 180.0) == 180  # as a person writes it
    assert form.setting_value(BY_NAME["SYSTEM.REQUEST_TIMEOUT"], 0.5) == 0.5
    stops = BY_NAME["SYSTEM.STOP_SEQUENCES"]
    assert form.setting_value(stops, "<end_of_turn>\n\n ###\n") == ["<end_of_turn>", " ###"]
    prices = BY_NAME["BUDGET.PRICES"]
    assert form.setting_value(prices, "m: {PROMPT: 0.15, COMPLETION: 0.6}") == {"m": {"PROMPT": 0.15, "COMPLETION": 0.6}}
    assert form.setting_value(prices, "") == {}
    with pytest.raises(form.FormValueError, match="BUDGET.PRICES: is not valid YAML"):
        form.setting_value(prices, "m: {PROMPT: [")


def test_values_the_widgets_cannot_show_fall_back_to_defaults():
    data = {"SYSTEM": {"CHUNK_SIZE": "big", "MODE": "openai", "STOP": "yes"}, "API": {"BASE_URL": ["http://a", "http://b"]}}
    values = dict(zip(BY_NAME, widget_values(data)))
    assert values["SYSTEM.CHUNK_SIZE"] == 1900
    assert values["SYSTEM.MODE"] == "api"
    assert values["API.BASE_URL"] == "http://a\nhttp://b"
    assert values["API.LOGICAL_MODEL"] == ""  # required, no default: validation names it


def test_the_stored_api_key_never_reaches_a_widget_and_an_empty_field_keeps_it(tmp_path):
    data, _ = settings_data(tmp_path, API={"API_KEY": "sk-stored-secret"})
    values = widget_values(data)
    assert "sk-stored-secret" not in repr(values)
    assert form.settings_from_values(values, FIELDS, stored=data)["API"]["API_KEY"] == "sk-stored-secret"
    assert with_value(data, "API.API_KEY", " sk-new ")["API"]["API_KEY"] == "sk-new"
    assert cf.stored_secret_names(data, FIELDS) == ["API.API_KEY"]


# ---------------------------------------------------------------- validation, problems next to their field


@pytest.mark.parametrize(
    "name, value, expected",
    [
        ("SYSTEM.CHUNK_SIZE", 50, "SYSTEM.CHUNK_SIZE = 50: Input should be greater than or equal to 200"),
        ("SYSTEM.CHUNK_SIZE", 2.5, "SYSTEM.CHUNK_SIZE = 2.5: Input should be a valid integer"),
        ("SYSTEM.DOUBLE_CHECK_COUNTER", 0, "SYSTEM.DOUBLE_CHECK_COUNTER"),
        ("API.BASE_URL", "localhost:8080", "API.BASE_URL"),
        ("API.LOGICAL_MODEL", "", "API.LOGICAL_MODEL"),
        ("PATH.INPUT", "no_such_folder", "PATH.INPUT folder"),
        ("BUDGET.MAX_REQUESTS", -1, "BUDGET.MAX_REQUESTS = -1"),
    ],
)
def test_validation_gives_processing_py_s_message_next_to_the_field(tmp_path, name, value, expected):
    """The message is the one `python processing.py` prints for the same file, without the file's name
    (it is the form that was checked), and it is filed under the field it concerns."""
    data, config_path = settings_data(tmp_path)
    broken = with_value(data, name, value)
    problem = cf.settings_problem(broken, config_path)
    assert problem.startswith(expected) and str(config_path) not in problem.split(" folder ")[0]
    assert cf.split_problems(problem, FIELDS).by_field == {name: [problem]}
    config_path.write_text(yaml.safe_dump(broken), encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        load_config(config_path)
    assert str(raised.value) == f"{config_path}: {problem}"


def test_several_problems_each_go_to_their_own_field(tmp_path):
    data, config_path = settings_data(tmp_path)
    broken = with_value(with_value(data, "SYSTEM.CHUNK_SIZE", 5), "BUDGET.PRICES", "m: {PROMPT: -1, COMPLETION: 1}")
    problems = cf.split_problems(cf.settings_problem(broken, config_path), FIELDS)
    assert set(problems.by_field) == {"SYSTEM.CHUNK_SIZE", "BUDGET.PRICES"}
    assert problems.by_field["BUDGET.PRICES"][0].startswith("BUDGET.PRICES.m.PROMPT = -1")
    assert not problems.general


@pytest.mark.parametrize(
    "text,problem",
    [
        ("SKIP:\n  CHUNK_FILTER: true\nSKIP:\n  QUESTION_CHECK: true\n", "the key 'SKIP' is given twice"),
        ("EXTRA: " + "[" * 5000 + "]" * 5000 + "\n", "EXTRA is nested more than 50 levels deep"),
    ],
    ids=["duplicate-key", "5000-deep"],
)
def test_a_config_file_processing_refuses_opens_the_ui_with_the_same_problem_and_can_be_saved_over(tmp_path, text, problem):
    data, config_path = settings_data(tmp_path)
    config_path.write_text(text, encoding="utf-8")
    shown, message = cf.read_settings_file(config_path)
    assert shown == {} and problem in message and message.startswith("cannot read")
    assert cf.save_settings(data, config_path, FIELDS).saved  # written anew from the form
    assert load_config(config_path).api.LOGICAL_MODEL == data["API"]["LOGICAL_MODEL"]


def test_reading_the_config_file_reports_problems_but_still_opens(tmp_path):
    data, missing = cf.read_settings_file(tmp_path / "absent.yaml")
    assert data == {} and "does not exist" in missing
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("API: [unclosed", encoding="utf-8")
    assert cf.read_settings_file(bad_yaml)[1].startswith("cannot read")
    _, config_path = settings_data(tmp_path, SYSTEM={"CHUNK_SZE": 100})
    data, problem = cf.read_settings_file(config_path)
    assert data["SYSTEM"]["CHUNK_SZE"] == 100
    assert problem == f"{config_path}: SYSTEM.CHUNK_SZE is not a known key (did you mean CHUNK_SIZE?)"


# ---------------------------------------------------------------- saving keeps the user's file

COMMENTED = """\
# My Verus run. Comments here must survive a save.
API:
  API_KEY: sk-stored-secret   # kept out of the browser
  BASE_URL: {url}
  LARGE_LOGICAL_MODEL: large-model
  LOGICAL_MODEL: small-model
PATH:
  INPUT: input
  OUTPUT: output
  DEFAULT_PROMPTS: {prompts}
  PROMPTS: {prompts}
SYSTEM:
  # smaller chunks for the API docs
  CHUNK_SIZE: 1900
  REQUEST_TIMEOUT: 180        # seconds, an int on purpose
  MAX_RETRY_SECONDS: 6.0e+2
  CONCURRENCY_LIMIT: 8
BUDGET:
  MAX_REQUESTS: 5             # a trial run
  PRICES:
    small-model: {{PROMPT: 0.15, COMPLETION: 0.6}}
"""


def _commented_config(tmp_path: Path) -> tuple[dict, Path]:
    path = tmp_path / "config.yaml"
    path.write_text(COMMENTED.format(url="http://127.0.0.1:9/v1", prompts=REPO / "prompts"), encoding="utf-8")
    (tmp_path / "input").mkdir(exist_ok=True)
    return yaml.safe_load(path.read_text()), path


def test_saving_unchanged_settings_leaves_the_file_byte_identical(tmp_path):
    data, path = _commented_config(tmp_path)
    before = path.read_bytes()
    result = cf.save_settings(form.settings_from_values(widget_values(data), FIELDS, stored=data), path, FIELDS)
    assert result.saved, result.message
    assert path.read_bytes() == before


def test_saving_changes_only_the_changed_lines_and_keeps_comments_order_and_numbers(tmp_path):
    data, path = _commented_config(tmp_path)
    before = path.read_text().splitlines()
    edited = with_value(data, "SYSTEM.CHUNK_SIZE", 1200.0)
    edited = with_value(edited, "BUDGET.MAX_TOKENS", 50000.0)
    assert cf.save_settings(edited, path, FIELDS).saved
    after = path.read_text().splitlines()
    changed = [line for line in after if line not in before]
    assert changed == ["  CHUNK_SIZE: 1200", "  MAX_TOKENS: 50000"]
    assert [line for line in before if line not in after] == ["  CHUNK_SIZE: 1900"]
    assert "  REQUEST_TIMEOUT: 180        # seconds, an int on purpose" in after  # not 180.0
    assert "  MAX_RETRY_SECONDS: 6.0e+2" in after
    assert "  API_KEY: sk-stored-secret   # kept out of the browser" in after  # the empty key field kept it
    saved = load_config(path)
    assert saved.budget.MAX_REQUESTS == 5 and saved.budget.MAX_TOKENS == 50000 and saved.system.CHUNK_SIZE == 1200


def test_saving_writes_multi_line_text_as_a_block_and_lists_as_lists(tmp_path):
    data, path = settings_data(tmp_path)
    edited = with_value(data, "SYSTEM.FINAL_ASSISTANT_PROMPT_RAG", "Line one.\nLine two:\n\n{data}")
    edited = with_value(edited, "API.BASE_URL", "http://127.0.0.1:1/v1\nhttp://127.0.0.1:2/v1")
    result = cf.save_settings(edited, path, FIELDS)
    assert result.message == f"Saved to {path}."
    saved = load_config(path)
    assert saved.system.FINAL_ASSISTANT_PROMPT_RAG == "Line one.\nLine two:\n\n{data}"
    assert saved.base_urls == ["http://127.0.0.1:1/v1", "http://127.0.0.1:2/v1"]
    assert "FINAL_ASSISTANT_PROMPT_RAG: |" in path.read_text(encoding="utf-8")


def test_a_list_of_paragraphs_is_edited_as_yaml_and_saved_as_blocks(tmp_path):
    """System prompt variants may span lines: one-per-line editing would cut them apart."""
    variants = BY_NAME["SYSTEM.FINAL_ASSISTANT_PROMPT_RAG_VARIANTS"]
    assert variants.kind == "yaml" and BY_NAME["SYSTEM.STOP_SEQUENCES"].kind == "string_list"
    data, path = settings_data(tmp_path)
    typed = "- |-\n  Use this about Verus:\n\n  {data}\n- 'Answer from this text: {data}'"
    assert cf.save_settings(with_value(data, variants.name, typed), path, FIELDS).saved
    assert load_config(path).system.FINAL_ASSISTANT_PROMPT_RAG_VARIANTS == [
        "Use this about Verus:\n\n{data}",
        "Answer from this text: {data}",
    ]
    assert "- |-" in path.read_text()
    assert form.to_widget_value(variants, yaml.safe_load(path.read_text())["SYSTEM"][variants.path[-1]]) == typed


def test_a_typed_key_replaces_the_stored_one(tmp_path):
    data, path = _commented_config(tmp_path)
    assert cf.save_settings(with_value(data, "API.API_KEY", "sk-replaced"), path, FIELDS).saved
    assert load_config(path).api_key == "sk-replaced"


def test_invalid_settings_are_not_saved_and_say_which_field(tmp_path):
    data, path = settings_data(tmp_path)
    before = path.read_bytes()
    result = cf.save_settings(with_value(data, "SYSTEM.CHUNK_SIZE", 5), path, FIELDS)
    assert not result.saved and result.message.startswith("Not saved: SYSTEM.CHUNK_SIZE = 5")
    assert list(result.problems.by_field) == ["SYSTEM.CHUNK_SIZE"]
    assert path.read_bytes() == before


def test_a_missing_config_file_is_created_with_only_what_differs_from_the_defaults(tmp_path):
    data, path = settings_data(tmp_path)
    path.unlink()
    assert cf.save_settings(form.settings_from_values(widget_values(data), FIELDS), path, FIELDS).saved
    written = yaml.safe_load(path.read_text())
    assert "BUDGET" not in written and written["SYSTEM"]["CONCURRENCY_LIMIT"] == 8
    assert path.read_text().startswith("# Verustoolkit configuration")


def test_relative_paths_resolve_from_the_config_folder(tmp_path):
    assert cf.resolve_setting_path("./docs", tmp_path / "c.yaml") == (tmp_path / "docs").resolve()
    assert cf.resolve_setting_path("/abs/x", tmp_path / "c.yaml") == Path("/abs/x")
