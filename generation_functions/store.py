"""Atomic, content-addressed storage of finished work in OUTPUT.

Every model call is stored under a key made from what determines it (step,
model, rendered prompt, sampling, slot), as a readable JSON file in a folder per
step. A rerun finds the file and makes no request; a changed document or prompt
changes the key and so redoes only what it changes. Writes go to a temporary
file in the same folder and are then renamed, so a killed run never leaves a
half-written record; an unreadable record is treated as missing, never as done.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Optional

import orjson

CALLS_DIR = "calls"


def work_key(*parts: Any) -> str:
    """A stable hash of JSON-serialisable parts."""
    return hashlib.sha256(orjson.dumps(parts, option=orjson.OPT_SORT_KEYS)).hexdigest()


def atomic_write_text(path: Path, text: str, durable: bool = False) -> None:
    """Write to a temporary file beside path, then rename over it.

    The rename alone protects against a killed process. `durable` also syncs to
    disk (against power loss); per-call records skip it because a record lost
    that way reads as missing, which costs one repeated request, not bad data.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except FileNotFoundError:
            pass
        raise


def dumps_readable(data: Any) -> str:
    """Indented JSON for files people read; orjson, because the standard
    library's indenting encoder is pure Python and costs a millisecond a call."""
    return orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE).decode("utf-8")


def atomic_write_json(path: Path, data: Any, durable: bool = False) -> None:
    atomic_write_text(path, dumps_readable(data), durable)


def read_json(path: Path) -> Optional[Any]:
    """The stored value, or None when absent or unreadable (a cache miss)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


class BackgroundWriter:
    """Writes files on a worker thread so the event loop keeps feeding the model
    server; callers await the write, so nothing is reported done before it is."""

    def __init__(self) -> None:
        self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="writer")

    async def write_json(self, path: Path, data: Any) -> None:
        await asyncio.get_running_loop().run_in_executor(self._executor, atomic_write_json, path, data)

    def close(self) -> None:
        self._executor.shutdown(wait=True)


class CallStore:
    """Model calls of one run, one file per call under OUTPUT/calls/<step>/."""

    def __init__(self, output_dir: Path, writer: Optional[BackgroundWriter] = None):
        self.root = Path(output_dir) / CALLS_DIR
        self.hits = 0
        self.writer = writer or BackgroundWriter()

    def path(self, step: str, key: str) -> Path:
        return self.root / step / f"{key}.json"

    def load(self, step: str, key: str) -> Optional[dict]:
        record = read_json(self.path(step, key))
        if not isinstance(record, dict) or record.get("key") != key or not isinstance(record.get("response"), str):
            return None
        self.hits += 1
        return record

    async def save(self, step: str, key: str, record: dict) -> None:
        await self.writer.write_json(self.path(step, key), {"key": key, **record})
