"""app.py end to end in a real browser: Debian's chromium driven by playwright,
against `python app.py` on 127.0.0.1 and the fake model server."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest
import yaml

from generation_functions.datasets import MASTER_LIST, SHAREGPT_NO_RAG
from tests.conftest import REPO, write_config
from tests.fake_llm_server import FakeLLMServer

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
APP_START_SECONDS = 120
RUN_SECONDS = 120

pytestmark = [
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium is not installed (apt-get install -y chromium)"),
    pytest.mark.timeout(400),
]
playwright_sync = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")

DOCUMENT = "# Verus currencies\n\n" + " ".join(
    f"Currency number {i} on Verus can be launched as a basket that holds reserves of other currencies." for i in range(10)
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_app(url: str, process: subprocess.Popen, log_path: Path) -> None:
    deadline = time.monotonic() + APP_START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"app.py exited with {process.returncode}:\n{log_path.read_text()}")
        try:
            with urllib.request.urlopen(f"{url}/config", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"app.py did not answer at {url} within {APP_START_SECONDS}s:\n{log_path.read_text()}")


def wait_for_run_to_end(status) -> None:
    deadline = time.monotonic() + RUN_SECONDS
    while not status.inner_text().startswith(("Finished", "Failed", "Cancelled")):
        assert time.monotonic() < deadline, f"the run did not end within {RUN_SECONDS}s: {status.inner_text()}"
        time.sleep(0.25)


@pytest.fixture(scope="module")
def served_app(tmp_path_factory) -> Iterator[tuple[str, Path]]:
    """app.py on 127.0.0.1 with a temp config (empty input folder) that points at the fake server."""
    tmp = tmp_path_factory.mktemp("webui")
    (tmp / "input").mkdir()
    with FakeLLMServer() as server:
        config = write_config(tmp / "config.yaml", server.base_url, PATH={"INPUT": "input", "OUTPUT": "output"})
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.endswith("API_KEY")}
        env.update(GRADIO_ANALYTICS_ENABLED="False", PYTHONUNBUFFERED="1")
        log_path = tmp / "app.log"
        with open(log_path, "w") as log_file:
            process = subprocess.Popen(
                [sys.executable, str(REPO / "app.py"), "--config", str(config), "--port", str(port)],
                cwd=str(tmp),
                env=env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        try:
            url = f"http://127.0.0.1:{port}"
            wait_for_app(url, process, log_path)
            yield url, tmp
        finally:
            process.terminate()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


@pytest.fixture
def page(served_app):
    with playwright_sync.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(viewport={"width": 1300, "height": 1000}, accept_downloads=True)
            page = context.new_page()
            page.set_default_timeout(30_000)
            page.goto(served_app[0])
            page.get_by_role("tab", name="Documents").wait_for()
            yield page
        finally:
            browser.close()


def test_settings_are_checked_with_processing_py_s_messages(page, served_app):
    _, tmp = served_app
    page.get_by_role("tab", name="Settings").click()
    chunk_size = page.get_by_label("SYSTEM.CHUNK_SIZE")
    chunk_size.fill("50")
    page.get_by_role("button", name="Check settings").click()
    page.get_by_text("SYSTEM.CHUNK_SIZE = 50: Input should be greater than or equal to 200").wait_for()
    before = (tmp / "config.yaml").read_bytes()
    page.get_by_role("button", name="Save settings to the config file").click()
    page.get_by_text("Not saved:").wait_for()
    assert (tmp / "config.yaml").read_bytes() == before


def test_upload_run_and_download_a_dataset(page, served_app, tmp_path):
    _, tmp = served_app
    document = tmp_path / "verus currencies.md"
    document.write_text(DOCUMENT, encoding="utf-8")

    page.locator("input[type=file]").first.set_input_files(str(document))
    page.get_by_text("Added 1 file(s)").wait_for()
    assert (tmp / "input" / "verus currencies.md").read_text(encoding="utf-8") == DOCUMENT

    page.get_by_role("tab", name="Run").click()
    page.get_by_role("button", name="Start run").click()
    status = page.locator("#run-status")
    wait_for_run_to_end(status)
    assert status.inner_text().startswith("Finished"), status.inner_text() + "\n" + page.locator("#run-log textarea").input_value()
    conversations = len((tmp / "output" / MASTER_LIST).read_text(encoding="utf-8").splitlines())
    assert conversations > 0
    assert f"conversations: {conversations}," in status.inner_text()
    assert f"conversations: {conversations}" in page.locator("#run-funnel").inner_text()
    page.screenshot(path=str(tmp_path / "run.png"), full_page=True)

    page.get_by_role("tab", name="Results").click()
    playwright_sync.expect(page.locator("#results-summary")).to_contain_text(f"conversations: {conversations} (from")
    with page.expect_download() as download_info:
        page.locator(f'#output-files a[download="{SHAREGPT_NO_RAG}"]').click()
    download = download_info.value
    assert download.suggested_filename == SHAREGPT_NO_RAG
    saved = tmp_path / SHAREGPT_NO_RAG
    download.save_as(saved)
    assert saved.read_bytes() == (tmp / "output" / SHAREGPT_NO_RAG).read_bytes()
    # Nothing was written to the config file by the run.
    assert yaml.safe_load((tmp / "config.yaml").read_text())["SYSTEM"]["CHUNK_SIZE"] == 1900
