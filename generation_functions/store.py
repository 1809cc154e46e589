"""Atomic, content-addressed storage of finished work in OUTPUT.

Every model call is stored under a key made from what determines it (step,
model, rendered prompt, sampling, slot), as a readable JSON file in a folder per
step. A rerun finds the file and makes no request; a changed document or prompt
changes the key and so redoes only what it changes. Writes go to a temporary
file in the same folder and are then renamed, so a killed run never leaves a
half-written record; an unreadable record is treated as missing, never as done.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Optional

CALLS_DIR = "calls"


def work_key(*parts: Any) -> str:
    """A stable hash of JSON-serialisable parts."""
    payload = json.dumps(parts, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def atomic_write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        try:
            os.unlink(temporary)
        except FileNotFoundError:
            pass
        raise


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, ensure_ascii=False, indent=2) + "\n")


def read_json(path: Path) -> Optional[Any]:
    """The stored value, or None when absent or unreadable (a cache miss)."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


class CallStore:
    """Model calls of one run, one file per call under OUTPUT/calls/<step>/."""

    def __init__(self, output_dir: Path):
        self.root = Path(output_dir) / CALLS_DIR
        self.hits = 0

    def path(self, step: str, key: str) -> Path:
        return self.root / step / f"{key}.json"

    def load(self, step: str, key: str) -> Optional[dict]:
        record = read_json(self.path(step, key))
        if not isinstance(record, dict) or record.get("key") != key or not isinstance(record.get("response"), str):
            return None
        self.hits += 1
        return record

    def save(self, step: str, key: str, record: dict) -> None:
        atomic_write_json(self.path(step, key), {"key": key, **record})
