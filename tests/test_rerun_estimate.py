"""`--check` estimates only the calls a rerun would still make (generation_functions/rerun_estimate.py)."""

from __future__ import annotations

import re

from tests.conftest import run_processing, write_config
from tests.fake_llm_server import FakeLLMServer

DOCUMENT = "# VerusID\n\n" + " ".join(
    f"VerusID number {i} is a self-sovereign identity that can hold funds and sign messages on the Verus network."
    for i in range(12)
)


def _new_requests(stdout: str) -> tuple[int, int]:
    match = re.search(r"new requests: (\d+)(?: if every vote agrees, up to (\d+))?", stdout)
    assert match, stdout
    return int(match.group(1)), int(match.group(2) or match.group(1))


def test_a_finished_output_estimates_no_new_request_and_an_edit_only_its_own(tmp_path):
    (tmp_path / "input").mkdir()
    for name in ("a", "b", "c"):
        (tmp_path / "input" / f"{name}.md").write_text(DOCUMENT.replace("VerusID", f"Identity {name}"), encoding="utf-8")
    with FakeLLMServer() as server:
        config = write_config(tmp_path / "config.yaml", server.base_url, PATH={"INPUT": "input", "OUTPUT": "output"})
        fresh = run_processing(config, "--check")
        fresh_range = _new_requests(fresh.stdout)
        assert fresh_range[0] > 0 and not (tmp_path / "output").exists()
        assert run_processing(config).returncode == 0
        made = server.count()

        finished = run_processing(config, "--check")
        assert finished.returncode == 0, finished.stdout + finished.stderr
        assert _new_requests(finished.stdout) == (0, 0)
        assert "3 of 3 chunks need no new request" in finished.stdout
        assert server.count() == made + 2  # the check's two pings, nothing else

        (tmp_path / "input" / "c.md").write_text(DOCUMENT.replace("VerusID", "Edited identity"), encoding="utf-8")
        edited = run_processing(config, "--check")
        fewest, most = _new_requests(edited.stdout)
        assert "2 of 3 chunks need no new request" in edited.stdout
        assert 0 < fewest <= most and most * 3 <= fresh_range[1] + 3  # about one chunk's worth, not three
