"""The Run tab's "Test server" and "Estimate": the same checks as `processing.py --check`,
for the settings in the form, generating nothing."""

from __future__ import annotations

import asyncio

from generation_functions.config import Config
from generation_functions.preflight import CheckResult, plan_check, server_check


def test_server(config: Config) -> CheckResult:
    """Is there a server at BASE_URL, does it take the key, and does each model answer (8 tokens at most)?"""
    result = CheckResult()
    asyncio.run(server_check(config, result))
    return result


def estimate(config: Config, prompts: dict) -> CheckResult:
    """Documents, chunks, and the requests and tokens a run would still need (stored calls are reused)."""
    result = CheckResult()
    asyncio.run(plan_check(config, prompts, result))
    return result
