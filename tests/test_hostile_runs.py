"""Whole runs (processing.py) against servers that refuse, lie about usage or echo the API key.

A run that cannot work must not "succeed": a server that refuses every request
as configured stops the run with exit 2, its message and the setting to change,
instead of finishing with empty datasets.
"""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest

from generation_functions.steps import CHUNK_FILTER
from tests.conftest import run_processing, write_config
from tests.fake_llm_server import FakeLLMServer
from tests.hostile_server import Exchange, HostileServer, Reply

SECRET = "sk-echoed-5b2f-never-print-me"


def _forward(exchange: Exchange) -> Reply:
    return exchange.upstream


def _refusing_large_model(exchange: Exchange) -> Reply:
    if exchange.body.get("model") == "large-model":
        return Reply(404, {"error": {"message": "The model `large-model` does not exist.", "code": "model_not_found"}})
    return exchange.upstream


def _refusing_long_stop_lists(exchange: Exchange) -> Reply:
    stops = exchange.body.get("stop") or []
    if len(stops) > 2:
        message = f"Invalid 'stop': array too long. Expected an array with maximum length 2, but got an array with length {len(stops)} instead."
        return Reply(400, {"error": {"message": message, "type": "invalid_request_error", "param": "stop"}})
    return exchange.upstream


def _everything_output(tmp_path: Path, result) -> str:
    files = "".join(p.read_text(errors="replace") for p in tmp_path.rglob("*") if p.is_file() and p.suffix != ".yaml")
    return result.stdout + result.stderr + files


@pytest.mark.parametrize(
    "case,setting,server_says",
    [
        ("wrong path", "API.BASE_URL", "no endpoint /v2/chat/completions"),
        ("unknown model, listed", "API.LARGE_LOGICAL_MODEL", "The model `large-model` does not exist"),
        ("unknown model, unlisted", "API.LARGE_LOGICAL_MODEL", "The model `large-model` does not exist"),
        ("stop list refused", "SYSTEM.STOP_SEQUENCES", "Invalid 'stop': array too long"),
    ],
)
def test_a_server_that_refuses_the_configuration_stops_the_run_with_exit_2(tmp_path, case, setting, server_says):
    """Each of these used to exit 0 with empty (or conversation-less) datasets and nothing on stderr."""
    fake = FakeLLMServer(models=["small-model"] if case == "unknown model, listed" else None).start()
    hostile = None
    try:
        url = fake.base_url
        if case == "wrong path":
            url = url.removesuffix("/v1") + "/v2"
        elif case in ("unknown model, unlisted", "stop list refused"):
            reply = _refusing_large_model if case == "unknown model, unlisted" else _refusing_long_stop_lists
            hostile = HostileServer(reply, upstream=fake).start()
            url = hostile.base_url
        config = write_config(tmp_path / "config.yaml", url, SYSTEM={"CONCURRENCY_LIMIT": 4})
        result = run_processing(config)
        sent = fake.count()
    finally:
        if hostile:
            hostile.stop()
        fake.stop()
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert server_says in result.stderr and setting in result.stderr, result.stderr
    assert "To fix it:" in result.stderr
    report = tmp_path / "output" / "run_report.json"
    if case == "unknown model, listed":
        assert not report.exists() and sent == 0  # caught before the run, by the model listing
        return
    data = json.loads(report.read_text())
    assert data["status"].startswith("stopped: the server at")
    refused = sum(step.get("request rejected", 0) for step in data["step_failures"].values())
    # Stopped early: three chunks refused alike, plus what was already in flight (4).
    assert 3 <= refused <= 3 * 2 + 4 + 2


def test_a_refusal_of_one_chunk_only_loses_that_chunk(tmp_path):
    """A chunk too long for the model is refused on every vote and pair, with the same
    message each time: that loses the chunk, not the run (five votes a check)."""
    folder = tmp_path / "input"
    folder.mkdir()
    for number in range(6):
        marker = "OVERSIZED" if number == 2 else f"note {number}"
        (folder / f"doc{number}.md").write_text(
            f"# Verus {marker}\n\nVerusID {number} lets anyone register a self-sovereign identity on chain; "
            f"its revocation and recovery authorities can take it back after a key is lost ({marker}).\n"
        )

    def reply(exchange: Exchange) -> Reply:
        if "OVERSIZED" in orjson.dumps(exchange.body).decode():
            return Reply(400, {"error": {"message": "the request exceeds the available context size, try increasing it"}})
        return exchange.upstream

    with FakeLLMServer() as fake, HostileServer(reply, upstream=fake) as hostile:
        config = write_config(
            tmp_path / "config.yaml",
            hostile.base_url,
            PATH={"INPUT": str(folder)},
            SYSTEM={"CONCURRENCY_LIMIT": 8, "DOUBLE_CHECK_COUNTER": 5},
        )
        result = run_processing(config)
    assert result.returncode == 0, result.stderr
    report = json.loads((tmp_path / "output" / "run_report.json").read_text())
    assert report["funnel"]["conversations"] == 5
    failures = report["step_failures"]
    assert failures[CHUNK_FILTER]["request rejected"] >= 3  # its five votes, three at once


def test_negative_usage_does_not_defeat_the_token_cap(tmp_path):
    """The server reports negative token counts: BUDGET.MAX_TOKENS used to never trigger."""

    def negative_usage(exchange: Exchange) -> Reply:
        body = exchange.upstream.json()
        body["usage"] = {"prompt_tokens": -50_000, "completion_tokens": -50_000, "total_tokens": -100_000}
        return Reply(200, body)

    with FakeLLMServer() as fake, HostileServer(negative_usage, upstream=fake) as hostile:
        config = write_config(tmp_path / "config.yaml", hostile.base_url, BUDGET={"MAX_TOKENS": 20_000})
        result = run_processing(config)
    assert result.returncode == 1, result.stderr
    assert "BUDGET.MAX_TOKENS = 20000" in result.stderr and "Traceback" not in result.stderr
    report = json.loads((tmp_path / "output" / "run_report.json").read_text())
    assert report["budget"]["tokens"] >= 20_000
    assert report["requests"]["estimated_usage"] == report["requests"]["succeeded"] > 0
    assert "implausible token usage" in result.stderr


def test_an_echoed_api_key_appears_nowhere(tmp_path):
    """The server echoes the key in refusals, in transient errors and in answers; none of it
    may reach chunk_results, call logs, the report, the log (--verbose), --check or a stop message."""

    def echo(exchange: Exchange) -> Reply:
        key = exchange.authorization.removeprefix("Bearer ")
        if exchange.number % 9 == 4:
            return Reply(400, {"error": {"message": f"request {exchange.number} refused for key {key}"}})
        if exchange.number % 7 == 3:
            return Reply(500, {"error": {"message": f"internal error, key {key}"}})
        if exchange.number % 4 == 1:
            body = exchange.upstream.json()
            body["choices"][0]["message"]["content"] += f"\n(served for {key})"
            return Reply(200, body)
        return exchange.upstream

    with FakeLLMServer() as fake, HostileServer(echo, upstream=fake) as hostile:
        config = write_config(tmp_path / "config.yaml", hostile.base_url, API={"API_KEY": SECRET})
        run = run_processing(config, "--verbose")
        assert run.returncode == 0, run.stderr
        results = "".join(p.read_text() for p in (tmp_path / "output" / "chunk_results").glob("*.json"))
        assert "refused for key [redacted]" in results  # the refusals are recorded, the key is not
        assert SECRET not in _everything_output(tmp_path, run)

    def refuse_all(exchange: Exchange) -> Reply:
        key = exchange.authorization.removeprefix("Bearer ")
        return Reply(400, {"error": {"message": f"key {key} may not use this model"}})

    with HostileServer(refuse_all, models=["other-model"]) as hostile:
        config = write_config(tmp_path / "config.yaml", hostile.base_url, API={"API_KEY": SECRET})
        check = run_processing(config, "--check")
        stopped = run_processing(config)
    assert check.returncode == 2 and "key [redacted] may not use this model" in check.stdout
    assert stopped.returncode == 2 and "key [redacted] may not use this model" in stopped.stderr
    for result in (check, stopped):
        assert SECRET not in result.stdout + result.stderr
        assert "Traceback" not in result.stderr


def test_a_server_that_lists_another_name_but_serves_any_is_not_refused(tmp_path):
    """llama.cpp lists its model file yet answers whatever model name a request gives: the
    test request for an unlisted model succeeds and the run goes on."""
    with FakeLLMServer() as fake, HostileServer(_forward, upstream=fake, models=["/models/verus-8b.Q4_K_M.gguf"]) as hostile:
        config = write_config(tmp_path / "config.yaml", hostile.base_url)
        result = run_processing(config)
        probes = [e for e in hostile.exchanges if e.body.get("max_tokens") == 1]
    assert result.returncode == 0, result.stderr
    assert sorted(p.body["model"] for p in probes) == ["large-model", "small-model"]
