"""Shared fixtures: the fake model server and config files that point at it."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.fake_llm_server import FakeLLMServer

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


@pytest.fixture
def fake_server():
    with FakeLLMServer() as server:
        yield server


def write_config(path: Path, base_url, **sections) -> Path:
    """A config.yaml for a test run; sections override the defaults below."""
    data = {
        "API": {"API_KEY": "", "BASE_URL": base_url, "LARGE_LOGICAL_MODEL": "large-model", "LOGICAL_MODEL": "small-model"},
        "PATH": {
            "INPUT": str(REPO / "raw_text_input"),
            "OUTPUT": str(path.parent / "output"),
            "DEFAULT_PROMPTS": str(REPO / "prompts"),
            "PROMPTS": str(REPO / "prompts"),
        },
        "SYSTEM": {"CHUNK_SIZE": 1900, "CONCURRENCY_LIMIT": 8, "DOUBLE_CHECK_COUNTER": 3, "MAX_RETRY_SECONDS": 20},
        "SKIP": {"QUESTION_CHECK": False},
    }
    for section, values in sections.items():
        data.setdefault(section, {}).update(values)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def run_processing(config: Path, *extra: str, env: dict | None = None, timeout: float = 240) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if not k.endswith("API_KEY")}
    environment.update(env or {})
    return subprocess.run(
        [sys.executable, str(REPO / "processing.py"), "--config", str(config), "--no-progress", *extra],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=environment,
        cwd=str(config.parent),
    )


@pytest.fixture(autouse=True)
def project_logger_left_as_found():
    """No test may leave the project's logger changed: later tests (and their log capture) must not
    depend on which tests ran before them. Entry points run in-process undo their logging setup."""
    logger = logging.getLogger("verustoolkit")
    before = (logger.handlers[:], logger.level, logger.propagate)
    yield
    after = (logger.handlers[:], logger.level, logger.propagate)
    assert after == before, f"the 'verustoolkit' logger was left changed: {before} -> {after}"
