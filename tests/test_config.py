"""config.yaml: typed parsing, and a catalogue of mistakes that stop the run with exit 2."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from generation_functions.config import ConfigError, check_output_folder, config_from_dict, config_warnings, load_config
from tests.conftest import REPO, run_processing


def base(tmp_path: Path) -> dict:
    (tmp_path / "in").mkdir(exist_ok=True)
    return {
        "API": {"API_KEY": "", "BASE_URL": "http://127.0.0.1:9/v1", "LARGE_LOGICAL_MODEL": "l", "LOGICAL_MODEL": "s"},
        "PATH": {"INPUT": "in", "OUTPUT": "out", "DEFAULT_PROMPTS": str(REPO / "prompts"), "PROMPTS": str(REPO / "prompts")},
        "SYSTEM": {"CHUNK_SIZE": 1900, "MODE": "api"},
        "SKIP": {"QUESTION_CHECK": False},
    }


def test_the_shipped_config_parses():
    config = load_config(REPO / "config.yaml")
    assert config.system.DOUBLE_CHECK_COUNTER >= 1
    assert config.input_dir == (REPO / "raw_text_input").resolve()
    assert config.prompt_dirs == [(REPO / "prompts").resolve()]


def test_relative_paths_are_taken_from_the_config_folder(tmp_path):
    config = config_from_dict(base(tmp_path), base_dir=tmp_path)
    assert config.input_dir == tmp_path / "in"
    assert config.output_dir == tmp_path / "out"


def test_override_folder_comes_before_the_defaults(tmp_path):
    data = base(tmp_path)
    (tmp_path / "override").mkdir()
    data["PATH"]["PROMPTS"] = "override"
    config = config_from_dict(data, base_dir=tmp_path)
    assert config.prompt_dirs == [tmp_path / "override", (REPO / "prompts").resolve()]


def test_empty_key_falls_back_to_the_environment(tmp_path):
    config = config_from_dict(base(tmp_path), base_dir=tmp_path, environ={"OPENAI_API_KEY": "from-env"})
    assert config.api_key == "from-env"
    cohere = base(tmp_path)
    cohere["SYSTEM"]["MODE"] = "cohere"
    config = config_from_dict(cohere, base_dir=tmp_path, environ={"COHERE_API_KEY": "co-key", "OPENAI_API_KEY": "x"})
    assert config.api_key == "co-key"
    assert "co-key" not in repr(config)


def test_base_url_may_list_replicas(tmp_path):
    data = base(tmp_path)
    data["API"]["BASE_URL"] = ["http://127.0.0.1:1/v1", "http://127.0.0.1:2/v1"]
    assert len(config_from_dict(data, base_dir=tmp_path).base_urls) == 2


def _set(data, dotted, value):
    section, key = dotted.split(".")
    data[section][key] = value


def _drop(data, dotted):
    section, key = dotted.split(".")
    del data[section][key]


# (how to break the config, text the message must contain)
MISTAKES = [
    (lambda d: _set(d, "SYSTEM.CHUNK_SZE", 100), "SYSTEM.CHUNK_SZE is not a known key (did you mean CHUNK_SIZE?)"),
    (lambda d: _set(d, "API.BASE_ULR", "http://x"), "API.BASE_ULR is not a known key (did you mean BASE_URL?)"),
    (lambda d: d.update(SYSTEMS={}), "SYSTEMS is not a known key (did you mean SYSTEM?)"),
    (lambda d: _set(d, "SYSTEM.CHUNK_SIZE", "big"), "SYSTEM.CHUNK_SIZE"),
    (lambda d: _set(d, "SYSTEM.CHUNK_SIZE", -5), "SYSTEM.CHUNK_SIZE"),
    (lambda d: _set(d, "SYSTEM.CHUNK_SIZE", 10), "SYSTEM.CHUNK_SIZE"),
    (lambda d: _set(d, "SYSTEM.CONCURRENCY_LIMIT", 0), "SYSTEM.CONCURRENCY_LIMIT"),
    (lambda d: _set(d, "SYSTEM.CONCURRENCY_LIMIT", 2.5), "SYSTEM.CONCURRENCY_LIMIT"),
    (lambda d: _set(d, "SYSTEM.DOUBLE_CHECK_COUNTER", -1), "SYSTEM.DOUBLE_CHECK_COUNTER"),
    (lambda d: _set(d, "SYSTEM.DOUBLE_CHECK_COUNTER", "three"), "SYSTEM.DOUBLE_CHECK_COUNTER"),
    (lambda d: _set(d, "SYSTEM.MODE", "anthropic"), "SYSTEM.MODE"),
    (lambda d: _set(d, "SYSTEM.COMPLETION_MODE", "yes"), "SYSTEM.COMPLETION_MODE"),
    (lambda d: _set(d, "SYSTEM.STOP", 1), "SYSTEM.STOP"),
    (lambda d: _set(d, "SYSTEM.STOP_SEQUENCES", "### Instruction:"), "SYSTEM.STOP_SEQUENCES"),
    (lambda d: _set(d, "SYSTEM.STOP_SEQUENCES", ["</s>", ""]), "an empty stop sequence"),
    (lambda d: _set(d, "SYSTEM.USE_SUBSET", "true"), "SYSTEM.USE_SUBSET"),
    (lambda d: _set(d, "SYSTEM.SUBSET_SIZE", 0), "SYSTEM.SUBSET_SIZE"),
    (lambda d: _set(d, "SKIP.QUESTION_CHECK", "no"), "SKIP.QUESTION_CHECK"),
    (lambda d: _set(d, "SKIP.ANSWER_RELEVANCY_CHECK", True), "SKIP.ANSWER_RELEVANCY_CHECK is not a known key"),
    (lambda d: _drop(d, "API.LOGICAL_MODEL"), "API.LOGICAL_MODEL is required"),
    (lambda d: _set(d, "API.LARGE_LOGICAL_MODEL", ""), "API.LARGE_LOGICAL_MODEL"),
    (lambda d: _set(d, "API.BASE_URL", "localhost:8080"), "API.BASE_URL"),
    (lambda d: _set(d, "API.BASE_URL", []), "API.BASE_URL"),
    (lambda d: _set(d, "PATH.INPUT", "missing-folder"), "PATH.INPUT folder"),
    (lambda d: _set(d, "PATH.PROMPTS", "no-such-prompts"), "PATH.PROMPTS folder"),
    (lambda d: _set(d, "PATH.DEFAULT_PROMPTS", "nowhere"), "PATH.DEFAULT_PROMPTS folder"),
    (lambda d: _set(d, "SYSTEM.FINAL_ASSISTANT_PROMPT_RAG", ["a"]), "SYSTEM.FINAL_ASSISTANT_PROMPT_RAG"),
    (lambda d: _set(d, "SYSTEM.MAX_RETRY_SECONDS", -1), "SYSTEM.MAX_RETRY_SECONDS"),
    (lambda d: _set(d, "PATH.OUTPUT", "in/out"), "PATH.OUTPUT"),
    (lambda d: d.update(BUDGET={"MAX_COST": 1.0}), "BUDGET.MAX_COST needs a price"),
    (lambda d: d.update(BUDGET={"MAX_TOKENS": -5}), "BUDGET.MAX_TOKENS"),
    (lambda d: (_set(d, "SYSTEM.MODE", "cohere"), _set(d, "SYSTEM.COMPLETION_MODE", True)), "SYSTEM.COMPLETION_MODE"),
    # Almost certainly mistakes: a string or a boolean where a number belongs, an empty path.
    (lambda d: _set(d, "SYSTEM.REQUEST_TIMEOUT", True), "SYSTEM.REQUEST_TIMEOUT = True: Input should be a valid number"),
    (lambda d: _set(d, "SYSTEM.REQUEST_TIMEOUT", "10"), "SYSTEM.REQUEST_TIMEOUT = '10': Input should be a valid number"),
    (lambda d: _set(d, "SYSTEM.MAX_RETRY_SECONDS", "600"), "SYSTEM.MAX_RETRY_SECONDS = '600'"),
    (lambda d: d.update(BUDGET={"MAX_COST": "5"}), "BUDGET.MAX_COST = '5'"),
    (lambda d: _set(d, "PATH.OUTPUT", ""), "PATH.OUTPUT = '': an empty path"),
    (lambda d: _set(d, "PATH.INPUT", "  "), "PATH.INPUT = '  ': an empty path"),
    (lambda d: _set(d, "PATH.OUTPUT", "out\x00put"), "PATH.OUTPUT = 'out\\x00put': a path cannot hold a NUL character"),
    # URLs a client would choke on when the run starts.
    (lambda d: _set(d, "API.BASE_URL", "http://127.0.0.1:99999/v1"), "API.BASE_URL = 'http://127.0.0.1:99999/v1': "),
    (lambda d: _set(d, "API.BASE_URL", "http://[::1/v1"), "API.BASE_URL = 'http://[::1/v1': 'http://[::1/v1' is not a valid URL"),
    (lambda d: _set(d, "API.BASE_URL", "http://127.0.0.1:-1/v1"), "API.BASE_URL"),
    (lambda d: _set(d, "API.BASE_URL", "http:///v1"), "names no host"),
    (lambda d: _set(d, "API.BASE_URL", "http://my server:8080/v1"), "holds a space or a control character"),
    (lambda d: _set(d, "API.BASE_URL", ["http://127.0.0.1:1/v1", "http://127.0.0.1:70000/v1"]), "API.BASE_URL"),
    (lambda d: d.update(RETRIEVAL={"EMBEDDING_BASE_URL": "http://[::1/v1", "EMBEDDING_MODEL": "e"}), "RETRIEVAL.EMBEDDING_BASE_URL"),
    (
        lambda d: d.update(EVALUATION={"CANDIDATES": [{"NAME": "a", "BASE_URL": "http://h:99999/v1", "MODEL": "m"}]}),
        "EVALUATION.CANDIDATES.0.BASE_URL",
    ),
    # A key that cannot go into an HTTP header.
    (lambda d: _set(d, "API.API_KEY", "sk-clé-secrète"), "API.API_KEY = (hidden): an API key holds printable ASCII"),
    (lambda d: _set(d, "API.API_KEY", "sk-abc\ndef"), "API.API_KEY = (hidden)"),
    (lambda d: d.update(RETRIEVAL={"EMBEDDING_API_KEY": "ключ"}), "RETRIEVAL.EMBEDDING_API_KEY = (hidden)"),
]


@pytest.mark.parametrize("breaker,message", MISTAKES, ids=[m for _, m in MISTAKES])
def test_mistakes_name_the_key(tmp_path, breaker, message):
    data = base(tmp_path)
    breaker(data)
    with pytest.raises(ConfigError) as info:
        config_from_dict(data, base_dir=tmp_path)
    assert message in str(info.value)


def test_numbers_may_be_written_as_integers(tmp_path):
    data = base(tmp_path)
    data["SYSTEM"].update(REQUEST_TIMEOUT=30, MAX_RETRY_SECONDS=0)
    data["BUDGET"] = {"MAX_COST": 2, "PRICES": {"s": {"PROMPT": 1, "COMPLETION": 2}, "l": {"PROMPT": 0, "COMPLETION": 0.5}}}
    config = config_from_dict(data, base_dir=tmp_path)
    assert config.system.REQUEST_TIMEOUT == 30.0 and config.budget.MAX_COST == 2.0


def test_a_key_from_the_environment_that_cannot_be_sent_names_its_variable(tmp_path):
    with pytest.raises(ConfigError) as info:
        config_from_dict(base(tmp_path), base_dir=tmp_path, environ={"OPENAI_API_KEY": "sk-naïve-secret"})
    assert "OPENAI_API_KEY" in str(info.value) and "printable ASCII" in str(info.value)
    assert "naïve" not in str(info.value)


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs /proc")
def test_an_output_folder_that_cannot_be_created_is_a_config_error(tmp_path):
    data = base(tmp_path)
    data["PATH"]["OUTPUT"] = "/proc/x"
    with pytest.raises(ConfigError, match=r"PATH.OUTPUT /proc/x cannot be written"):
        check_output_folder(config_from_dict(data, base_dir=tmp_path))
    (tmp_path / "a_file").write_text("x")
    data["PATH"]["OUTPUT"] = "a_file/out"
    with pytest.raises(ConfigError, match=r"PATH.OUTPUT .*a_file/out cannot be created"):
        check_output_folder(config_from_dict(data, base_dir=tmp_path))
    (tmp_path / "loop_a").symlink_to(tmp_path / "loop_b")
    (tmp_path / "loop_b").symlink_to(tmp_path / "loop_a")
    data["PATH"]["OUTPUT"] = "loop_a/out"
    with pytest.raises(ConfigError, match=r"PATH.OUTPUT .*loop_a/out cannot be created"):
        check_output_folder(config_from_dict(data, base_dir=tmp_path))
    data["PATH"]["OUTPUT"] = "new/deeper/out"
    check_output_folder(config_from_dict(data, base_dir=tmp_path))
    assert sorted(path.name for path in tmp_path.iterdir()) == ["a_file", "in", "loop_a", "loop_b"]  # the check leaves nothing


def test_more_stop_sequences_than_openai_takes_is_a_warning(tmp_path):
    data = base(tmp_path)
    data["SYSTEM"]["STOP_SEQUENCES"] = ["a", "b", "c", "d", "e"]
    assert config_warnings(config_from_dict(data, base_dir=tmp_path)) == []  # a local server takes any number
    data["API"]["BASE_URL"] = "https://api.openai.com/v1"
    (warning,) = config_warnings(config_from_dict(data, base_dir=tmp_path))
    assert "SYSTEM.STOP_SEQUENCES has 5 stop sequences" in warning and "at most 4" in warning
    data["SYSTEM"]["STOP"] = False
    assert config_warnings(config_from_dict(data, base_dir=tmp_path)) == []


def test_secret_values_are_not_echoed(tmp_path):
    data = base(tmp_path)
    data["API"]["API_KEY"] = ["sk-secret-value"]
    with pytest.raises(ConfigError) as info:
        config_from_dict(data, base_dir=tmp_path)
    assert "sk-secret-value" not in str(info.value)


@pytest.mark.parametrize(
    "content,message",
    [
        ("API: [unclosed", "not valid YAML"),
        ("- just\n- a list\n", "expected a mapping"),
        ("", "expected a mapping"),
        ("SKIP:\n  CHUNK_FILTER: true\nSKIP:\n  QUESTION_CHECK: true\n", r"the key 'SKIP' is given twice \(lines 1 and 3\)"),
        ("API:\n  LOGICAL_MODEL: a\n  LOGICAL_MODEL: b\n", "the key 'LOGICAL_MODEL' is given twice"),
        ("EXTRA: " + "[" * 5000 + "]" * 5000 + "\n", "EXTRA is nested more than 50 levels deep"),
        ("SYSTEM:\n  STOP_SEQUENCES: " + "{a: " * 3000 + "1" + "}" * 3000 + "\n", "SYSTEM.STOP_SEQUENCES is nested"),
        ("\xff\xfe bytes", "cannot read config file"),
    ],
    ids=["malformed", "a-list", "empty", "duplicate-section", "duplicate-key", "deep-list", "deep-mapping", "not-utf8"],
)
def test_unreadable_config_files(tmp_path, content, message):
    path = tmp_path / "config.yaml"
    path.write_bytes(content.encode("latin-1") if content.startswith("\xff") else content.encode("utf-8"))
    with pytest.raises(ConfigError, match=message):
        load_config(path)


def test_yaml_merge_keys_are_not_duplicates(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(base(tmp_path)) + "BUDGET:\n  PRICES:\n    s: &p {PROMPT: 1, COMPLETION: 1}\n    l:\n      <<: *p\n      PROMPT: 2\n")
    assert load_config(path).budget.PRICES["l"].PROMPT == 2


@pytest.mark.parametrize("breaker,message", MISTAKES, ids=[m for _, m in MISTAKES])
def test_processing_exits_2_naming_the_key(tmp_path, capsys, breaker, message):
    """Every mistake of the catalogue, through processing.py's own entry point."""
    import processing

    data = base(tmp_path)
    breaker(data)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    assert processing.main(["--config", str(path), "--no-progress"]) == 2
    stderr = capsys.readouterr().err
    assert message in stderr and stderr.startswith("error: ")
    assert "Traceback" not in stderr


@pytest.mark.parametrize(
    "breaker,message",
    [MISTAKES[0], MISTAKES[4], MISTAKES[10], MISTAKES[21]],
    ids=["misspelt", "negative", "unknown-mode", "missing-input"],
)
def test_processing_exits_2_without_traceback(tmp_path, breaker, message):
    """A few of them as a user meets them: a separate process."""
    data = base(tmp_path)
    breaker(data)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data))
    result = run_processing(path)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_config_file_exits_2(tmp_path):
    result = run_processing(tmp_path / "nope.yaml")
    assert result.returncode == 2 and "does not exist" in result.stderr


# The mistakes that used to end in a traceback (or in "rerun to resume"), as a user meets them.
def _set_output_proc(d):
    _set(d, "PATH.OUTPUT", "/proc/x")


TRACEBACKS_BEFORE = [
    (lambda d: _set(d, "API.BASE_URL", "http://127.0.0.1:99999/v1"), "", "API.BASE_URL"),
    (lambda d: _set(d, "API.BASE_URL", "http://[::1/v1"), "", "API.BASE_URL"),
    (lambda d: _set(d, "API.API_KEY", "sk-clé"), "", "API.API_KEY"),
    (lambda d: None, "EXTRA: " + "[" * 5000 + "]" * 5000 + "\n", "EXTRA is nested more than 50 levels deep"),
    (_set_output_proc, "", "PATH.OUTPUT /proc/x cannot be written"),
    (lambda d: _set(d, "SYSTEM.REQUEST_TIMEOUT", True), "", "SYSTEM.REQUEST_TIMEOUT"),
    (lambda d: None, "SKIP:\n  CHUNK_FILTER: true\n", "the key 'SKIP' is given twice"),
]


@pytest.mark.parametrize("check", [False, True], ids=["run", "check"])
@pytest.mark.parametrize(
    "breaker,appended,message",
    TRACEBACKS_BEFORE,
    ids=["port-out-of-range", "broken-ipv6", "non-ascii-key", "5000-deep-yaml", "output-in-proc", "bool-timeout", "duplicate-section"],
)
def test_config_mistakes_exit_2_naming_the_key_in_the_run_and_the_check(tmp_path, breaker, appended, message, check):
    if "/proc" in message and not Path("/proc/self").is_dir():
        pytest.skip("needs /proc")
    data = base(tmp_path)
    breaker(data)
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(data) + appended, encoding="utf-8")
    result = run_processing(path, *(["--check"] if check else []))
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()
