"""app.py end to end in a real browser: Debian's chromium driven by playwright, against
`python app.py` on 127.0.0.1 and the fake model server.

One walk through what a new user does: upload -> settings with BUDGET -> save (comments
kept) -> test the server -> run -> results reloaded five times -> download. Each step
asserts what once went wrong there."""

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
from tests.conftest import REPO
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
SECRET = "sk-browser-test-secret-7341"

pytestmark = [
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="chromium is not installed (apt-get install -y chromium)"),
    pytest.mark.timeout(500),
]
playwright_sync = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
expect = playwright_sync.expect

DOCUMENT = "# Verus currencies\n\n" + " ".join(
    f"Currency number {i} on Verus can be launched as a basket that holds reserves of other currencies." for i in range(10)
) + "\n\n<b>bold?</b> A currency launch on Verus can define its preallocation and its initial supply of coins."

CONFIG = """\
# Verustoolkit configuration for the browser test. This comment must survive Save.
API:
  API_KEY: {secret}   # the stored key: never sent to the browser
  BASE_URL: {url}
  LARGE_LOGICAL_MODEL: large-model
  LOGICAL_MODEL: small-model
PATH:
  INPUT: input
  OUTPUT: output
  DEFAULT_PROMPTS: {prompts}
  PROMPTS: {prompts}
SYSTEM:
  CHUNK_SIZE: 1900
  CONCURRENCY_LIMIT: 2
  REQUEST_TIMEOUT: 180   # an int on purpose: must not become 180.0
  MAX_RETRY_SECONDS: 20
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read().decode("utf-8", "replace")


def wait_for_app(url: str, process: subprocess.Popen, log_path: Path) -> None:
    deadline = time.monotonic() + APP_START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"app.py exited with {process.returncode}:\n{log_path.read_text()}")
        try:
            fetch(f"{url}/config")
            return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f"app.py did not answer at {url} within {APP_START_SECONDS}s:\n{log_path.read_text()}")


def wait_for_run_to_end(status) -> str:
    deadline = time.monotonic() + RUN_SECONDS
    while not status.inner_text().startswith(("Finished", "Failed", "Cancelled")):
        assert time.monotonic() < deadline, f"the run did not end within {RUN_SECONDS}s: {status.inner_text()}"
        time.sleep(0.25)
    return status.inner_text()


@pytest.fixture(scope="module")
def served_app(tmp_path_factory) -> Iterator[tuple[str, Path, FakeLLMServer]]:
    """app.py on 127.0.0.1 (port from GRADIO_SERVER_PORT) with a commented config that points at the fake server."""
    tmp = tmp_path_factory.mktemp("webui")
    (tmp / "input").mkdir()
    (tmp / "gradio").mkdir()
    with FakeLLMServer() as server:
        config = tmp / "config.yaml"
        config.write_text(CONFIG.format(secret=SECRET, url=server.base_url, prompts=REPO / "prompts"), encoding="utf-8")
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.endswith("API_KEY")}
        env.update(
            GRADIO_ANALYTICS_ENABLED="False",
            PYTHONUNBUFFERED="1",
            GRADIO_SERVER_PORT=str(port),  # gradio's own variable, honoured without --port
            GRADIO_TEMP_DIR=str(tmp / "gradio"),
        )
        log_path = tmp / "app.log"
        with open(log_path, "w") as log_file:
            process = subprocess.Popen(
                [sys.executable, str(REPO / "app.py"), "--config", str(config)],
                cwd=str(tmp),
                env=env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        try:
            url = f"http://127.0.0.1:{port}"
            wait_for_app(url, process, log_path)
            yield url, tmp, server
        finally:
            process.terminate()
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)
    # The app removed its download folders when it was stopped.
    assert not list((tmp / "gradio").glob("verustoolkit-downloads-*")), log_path.read_text()


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


def field(page, key: str):
    """The input of the widget for a config key."""
    return page.locator(f"#cfg-{key.replace('.', '-')}").locator("input, textarea").first


def test_the_stored_api_key_is_never_sent_to_the_browser(served_app):
    url, _, _ = served_app
    assert SECRET not in fetch(f"{url}/config")
    page_html = fetch(url)
    assert "gradio_config" in page_html and SECRET not in page_html


def test_upload_settings_save_run_results_and_download(page, served_app, tmp_path):
    url, tmp, server = served_app
    config_path = tmp / "config.yaml"

    # ---- upload: added, then "already there" for the identical file
    document = tmp_path / "verus currencies.md"
    document.write_text(DOCUMENT, encoding="utf-8")
    page.locator("input[type=file]").first.set_input_files(str(document))
    expect(page.locator("#upload-message")).to_contain_text("Added 1 file(s)")
    assert (tmp / "input" / "verus currencies.md").read_text(encoding="utf-8") == DOCUMENT
    page.locator("input[type=file]").first.set_input_files(str(document))
    expect(page.locator("#upload-message")).to_contain_text("Already there with the same content, nothing added")
    assert sorted(p.name for p in (tmp / "input").iterdir()) == ["verus currencies.md"]

    # ---- settings: a problem shows next to its field, without the file's path
    page.get_by_role("tab", name="Settings").click()
    assert field(page, "API.API_KEY").input_value() == ""
    field(page, "SYSTEM.CHUNK_SIZE").fill("50")
    page.get_by_role("button", name="Check settings").click()
    problem = "SYSTEM.CHUNK_SIZE = 50: Input should be greater than or equal to 200"
    expect(page.locator("#cfg-SYSTEM-CHUNK_SIZE")).to_contain_text(problem)
    expect(page.locator("#settings-message")).to_contain_text(problem)
    assert str(config_path) not in page.locator("#settings-message").inner_text()
    before = config_path.read_bytes()
    page.get_by_role("button", name="Save settings to the config file").click()
    expect(page.locator("#settings-message")).to_contain_text("Not saved")
    assert config_path.read_bytes() == before
    field(page, "SYSTEM.CHUNK_SIZE").fill("1900")

    # ---- BUDGET: shown, saved (comments and formats kept), honoured by the run
    field(page, "BUDGET.MAX_REQUESTS").fill("5")
    page.get_by_role("button", name="Save settings to the config file").click()
    expect(page.locator("#settings-message")).to_contain_text("Saved to")
    expect(page.locator("#cfg-SYSTEM-CHUNK_SIZE")).not_to_contain_text(problem)
    saved_text = config_path.read_text(encoding="utf-8")
    assert "# Verustoolkit configuration for the browser test. This comment must survive Save." in saved_text
    assert "  REQUEST_TIMEOUT: 180   # an int on purpose: must not become 180.0" in saved_text
    assert f"  API_KEY: {SECRET}   # the stored key" in saved_text  # the empty field kept it
    assert yaml.safe_load(saved_text)["BUDGET"] == {"MAX_REQUESTS": 5}
    assert SECRET not in fetch(f"{url}/config")

    page.get_by_role("tab", name="Run").click()
    page.get_by_role("button", name="Test server").click()
    expect(page.locator("#check-output")).to_contain_text("reachable")
    expect(page.locator("#check-output")).to_contain_text("large-model: answered")
    made_before = server.count()
    page.get_by_role("button", name="Start run").click()
    status = page.locator("#run-status")
    stopped = wait_for_run_to_end(status)
    assert stopped.startswith("Failed") and "BUDGET.MAX_REQUESTS" in stopped, stopped
    assert server.count() - made_before <= 5 + 2  # the cap, plus what was in flight (CONCURRENCY_LIMIT 2)

    page.get_by_role("tab", name="Settings").click()
    field(page, "BUDGET.MAX_REQUESTS").fill("0")
    page.get_by_role("button", name="Save settings to the config file").click()
    expect(page.locator("#settings-message")).to_contain_text("Saved to")
    page.get_by_role("tab", name="Run").click()
    page.get_by_role("button", name="Start run").click()
    finished = wait_for_run_to_end(status)
    assert finished.startswith("Finished"), finished + "\n" + page.locator("#run-log textarea").input_value()
    conversations = len((tmp / "output" / MASTER_LIST).read_text(encoding="utf-8").splitlines())
    assert conversations > 0 and f"conversations: {conversations}," in finished
    funnel = page.locator("#run-funnel")
    for label in ("pairs generated", "passed question check", "passed answer check", "kept after repair"):
        expect(funnel.locator('[data-funnel="pairs"]')).to_contain_text(label)
    expect(funnel.locator('[data-funnel="chunks"]')).to_contain_text(f"conversations: {conversations}")
    page.get_by_role("button", name="Estimate requests and tokens").click()
    expect(page.locator("#check-output")).to_contain_text("new requests: 0")
    page.screenshot(path=str(tmp_path / "run.png"), full_page=True)

    # ---- results, reloaded five times: never an error, same content each time
    for _ in range(5):
        page.reload()
        page.get_by_role("tab", name="Results").click()
        expect(page.locator("#results-summary")).to_contain_text(f"conversations: {conversations} (from")
        expect(page.locator("#pairs")).to_contain_text("kept")
        assert page.locator(".error, [data-testid=error]").count() == 0
        assert page.get_by_text("Error", exact=True).count() == 0
    # Settings shown after a reload are the saved ones.
    page.get_by_role("tab", name="Settings").click()
    assert field(page, "BUDGET.MAX_REQUESTS").input_value() == "0"
    page.get_by_role("tab", name="Results").click()

    # Model text is text: the "# ..." answer is no heading, the <b> in the document is no markup.
    conversation = page.locator("#conversation")
    expect(conversation).to_contain_text("# Verus currencies")
    assert conversation.locator("h1").count() == 0
    expect(page.locator("#source-chunk")).to_contain_text("<b>bold?</b>")
    assert page.locator("#source-chunk b").count() == 0
    expect(page.locator("#training-rows")).to_contain_text("simplified_data_rag.jsonl")

    # Search the pairs by text and by fate.
    page.locator("#pair-search textarea, #pair-search input").first.fill("currency number 1 on")
    page.locator("#pair-search textarea, #pair-search input").first.press("Enter")
    expect(page.locator("#pairs")).to_contain_text("1 of")

    # ---- one click downloads; nothing offers to remove an output
    downloads = page.locator("#output-files")
    assert downloads.get_by_role("button", name="Remove").count() == 0 and downloads.locator("[aria-label*=emove]").count() == 0
    with page.expect_download() as download_info:
        page.locator(f"#download-{SHAREGPT_NO_RAG.replace('.', '-')}").click()
    download = download_info.value
    assert download.suggested_filename == SHAREGPT_NO_RAG
    saved = tmp_path / SHAREGPT_NO_RAG
    download.save_as(saved)
    assert saved.read_bytes() == (tmp / "output" / SHAREGPT_NO_RAG).read_bytes()
    page.screenshot(path=str(tmp_path / "results.png"), full_page=True)
    if os.environ.get("VERUSTOOLKIT_SCREENSHOTS"):
        for name in ("run.png", "results.png"):
            shutil.copy(tmp_path / name, Path(os.environ["VERUSTOOLKIT_SCREENSHOTS"]) / name)
