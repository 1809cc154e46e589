"""app.py, the WebUI's entry point: command line, password, and what the page carries (no browser)."""

from __future__ import annotations

import json

import pytest

from app import AUTH_ENV, exposure_warning, is_local, parse_args
from tests.webui_helpers import settings_data

pytest.importorskip("gradio")


def test_host_and_port_come_from_the_command_line_then_gradio_s_variables_then_defaults():
    assert (parse_args([], {}).host, parse_args([], {}).port) == ("127.0.0.1", 7860)
    env = {"GRADIO_SERVER_NAME": "0.0.0.0", "GRADIO_SERVER_PORT": "8123"}
    assert (parse_args([], env).host, parse_args([], env).port) == ("0.0.0.0", 8123)
    assert (parse_args(["--host", "127.0.0.2", "--port", "9000"], env).host, parse_args(["--port", "9000"], env).port) == (
        "127.0.0.2",
        9000,
    )
    with pytest.raises(SystemExit):
        parse_args([], {"GRADIO_SERVER_PORT": "eighty"})


def test_a_password_comes_from_auth_or_its_variable_and_must_be_user_colon_password():
    assert parse_args(["--auth", "ann:s3:cret"], {}).auth == ("ann", "s3:cret")
    assert parse_args([], {AUTH_ENV: "bob:pw"}).auth == ("bob", "pw")
    assert parse_args([], {}).auth is None
    for bad in ("nocolon", ":pw", "user:"):
        with pytest.raises(SystemExit):
            parse_args(["--auth", bad], {})


def test_listening_beyond_this_machine_without_a_password_is_warned_about():
    assert is_local("127.0.0.1") and is_local("localhost") and is_local("::1")
    assert not is_local("0.0.0.0") and not is_local("192.168.1.5")
    assert exposure_warning("127.0.0.1", None) == ""
    assert exposure_warning("0.0.0.0", ("a", "b")) == ""
    warning = exposure_warning("0.0.0.0", None)
    assert "without a password" in warning and AUTH_ENV in warning


def _page_config(tmp_path, config_path) -> str:
    """What gradio sends to the browser (GET /config, and inside the page's HTML)."""
    from tests.conftest import REPO
    from webui.downloads import DownloadStage
    from webui.page import build_app

    stage = DownloadStage(tmp_path / "served")
    try:
        app, css = build_app(config_path, REPO, stage)
        return json.dumps(app.get_config_file(), default=str)
    finally:
        stage.close()


def test_the_page_never_carries_a_stored_api_key(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
    _, config_path = settings_data(tmp_path, API={"API_KEY": "sk-do-not-leak-4242"})
    config = _page_config(tmp_path, config_path)
    assert "sk-do-not-leak-4242" not in config
    assert "A key is saved in the config file" in config  # but says that one is set


def test_building_the_app_writes_nothing_to_the_config(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
    _, config_path = settings_data(tmp_path)
    before = config_path.read_bytes(), config_path.stat().st_mtime_ns
    config = _page_config(tmp_path, config_path)
    assert (config_path.read_bytes(), config_path.stat().st_mtime_ns) == before
    for label in ("Chunk size (characters)", "Stop after this many requests", "Prices per million tokens"):
        assert label in config  # every key, BUDGET included, has its widget
